"""Seeding and device selection shared by every experiment."""

import os
import random
from pathlib import Path

import numpy as np
import torch

from dlclassics.errors import InputError


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch, and return a torch generator seeded the same way."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA when present, else the CPU; anything else must be a usable torch device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise InputError(f"unknown device {name!r}") from e
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {name!r} asked for, but CUDA is not available")
    return device


def data_root() -> Path:
    """Where downloads are cached: $DLCLASSICS_DATA, else ~/.cache/dlclassics."""
    return Path(os.environ.get("DLCLASSICS_DATA") or Path.home() / ".cache" / "dlclassics")
