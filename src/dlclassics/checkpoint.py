"""The one checkpoint format every trained model is saved in.

A checkpoint is one dict, as in nanoGPT: the weights (`model`), what it takes to rebuild the
network (`model_args`), the settings it was trained with (`config`), the package version, and,
where training can resume from it, the optimiser state and the progress. It is written atomically
and read with `weights_only=True`, so loading a file can never run code.
"""

import io
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dlclassics import __version__, distributed
from dlclassics.errors import InputError
from dlclassics.rundir import atomic_write_bytes

CHECKPOINT = "checkpoint.pt"
KEYS = ("model", "model_args", "config", "version")


def save_checkpoint(
    path: Path,
    model: nn.Module,
    model_args: dict[str, Any],
    config: dict[str, Any],
    optimizer: torch.optim.Optimizer | None = None,
    **extra: Any,
) -> Path:
    """Save `model` (on the CPU) with its arguments and config; `extra` holds progress counters,
    a vocabulary or other plain values that `torch.load(weights_only=True)` accepts. In a
    torchrun job only rank 0 writes (every rank holds the same weights)."""
    if not distributed.is_main():
        return path
    checkpoint = {
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "model_args": model_args,
        "config": config,
        "version": __version__,
        **extra,
    }
    if optimizer is not None:
        checkpoint["optimizer"] = optimizer.state_dict()
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def load_checkpoint(path: Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    """The dict `save_checkpoint` wrote; a missing or malformed file is an InputError naming it."""
    try:
        checkpoint = torch.load(path, map_location=device, weights_only=True)
    except Exception as e:  # a malformed file can fail anywhere inside the unpickler
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(f"cannot load a checkpoint from {path}: {first}") from e
    if not isinstance(checkpoint, dict) or any(k not in checkpoint for k in KEYS):
        raise InputError(f"{path} is not a dlclassics checkpoint")
    return checkpoint


def find_checkpoint(path: Path) -> Path:
    """A checkpoint file; a folder holding `checkpoint.pt` (a trial's, or a run's chosen model);
    or a run directory whose study has exactly one trial."""
    from dlclassics.study import TRIALS

    path = Path(path)
    if path.is_file():
        return path
    if (path / CHECKPOINT).is_file():
        return path / CHECKPOINT
    found = sorted((path / TRIALS).glob(f"*/{CHECKPOINT}"))
    if len(found) == 1:
        return found[0]
    if found:
        choices = ", ".join(str(p.parent) for p in found)
        raise InputError(f"{path} holds {len(found)} models: pass one of {choices}")
    raise InputError(f"no model in {path}: it holds no {CHECKPOINT}")
