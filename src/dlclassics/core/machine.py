"""Seeding, device selection, mixed precision and progress bars, shared by every experiment."""

import contextlib
import os
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dlclassics.core.bounds import AUTO_DEVICE, DEVICE_NAME
from dlclassics.core.errors import InputError


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch, and return a torch generator seeded the same way."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA when present, else the CPU; else 'cpu', 'cuda' or 'cuda:N' of this
    machine. Other torch devices (meta, mps, xpu, ...) are refused: the code runs on these two."""
    if name == AUTO_DEVICE:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    match = DEVICE_NAME.fullmatch(name)
    if match is None:
        raise InputError(f"unknown device {name!r} (choose auto, cpu, cuda or cuda:N)")
    if name != "cpu" and not torch.cuda.is_available():
        raise InputError(f"device {name!r} asked for, but CUDA is not available")
    index = match.group(1)
    if index is not None and int(index) >= torch.cuda.device_count():
        raise InputError(f"device {name!r}: this machine has {torch.cuda.device_count()} GPU(s)")
    return torch.device(name)


def resolve_bf16(flag: bool | None, device: torch.device) -> bool:
    """--bf16/--no-bf16 as given; unset, whether `device` computes bfloat16 natively (CUDA, or a
    CPU with AVX512-BF16 or AMX): emulated, bf16 would be slower than float32."""
    if flag is not None:
        return flag
    if device.type == "cuda":
        with torch.cuda.device(device):
            return torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":
        return torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    return False


@dataclass(frozen=True)
class Machine:
    """Where a run computes: facts of the machine that runs it, decided there (never settings of
    the run, which another machine may run on); config.json records them beside the settings."""

    device: str = "cpu"
    bf16: bool = False

    @classmethod
    def here(cls, device: str = AUTO_DEVICE, bf16: bool | None = None) -> "Machine":
        """--device and --bf16 on this machine (`resolve_device`, `resolve_bf16`)."""
        resolved = resolve_device(device)
        return cls(str(resolved), resolve_bf16(bf16, resolved))


def autocast(device: torch.device, bf16: bool) -> contextlib.AbstractContextManager:
    """bf16 autocast: matrix products and convolutions in bfloat16; weights, optimiser and loss
    stay float32."""
    if not bf16:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def data_root() -> Path:
    """Where downloads are cached: $DLCLASSICS_DATA, else ~/.cache/dlclassics."""
    return Path(os.environ.get("DLCLASSICS_DATA") or Path.home() / ".cache" / "dlclassics")


def bar_disabled(quiet: bool) -> bool | None:
    """tqdm's `disable` for a command's progress bar: off with --quiet, and otherwise drawn only
    on a terminal (None: tqdm asks its stream), since piped to a file or a CI log every redraw
    would be written out."""
    return True if quiet else None
