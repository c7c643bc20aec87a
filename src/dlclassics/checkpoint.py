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
from dlclassics.rundir import atomic_write_bytes, read_run_file

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


def load_checkpoint(
    path: Path, device: torch.device | str = "cpu", root: Path | None = None
) -> dict[str, Any]:
    """The dict `save_checkpoint` wrote; a missing or malformed file is an InputError naming it.
    With `root`, the file is one of that run directory's, and read as `read_run_file` reads
    (never through a symbolic link)."""
    source = path if root is None else io.BytesIO(read_run_file(root, Path(path)))
    try:
        checkpoint = torch.load(source, map_location=device, weights_only=True)
    except Exception as e:  # a malformed file can fail anywhere inside the unpickler
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(f"cannot load a checkpoint from {path}: {first}") from e
    if not isinstance(checkpoint, dict) or any(k not in checkpoint for k in KEYS):
        raise InputError(f"{path} is not a dlclassics checkpoint")
    weights = checkpoint["model"]
    if not isinstance(weights, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in weights.items()
    ):
        raise InputError(f"{path} is not a dlclassics checkpoint: its weights are not tensors")
    for key in ("model_args", "config"):
        if not isinstance(checkpoint[key], dict):
            raise InputError(f"{path} is not a dlclassics checkpoint: its {key} is not a dict")
    return checkpoint


def check_weights(
    path: Path,
    skeleton: nn.Module,
    weights: dict[str, torch.Tensor],
    what: str = "the model it describes",
) -> None:
    """That `weights` are exactly `skeleton`'s (`what`) tensors, of its shapes, and finite: an
    InputError naming `path` otherwise. Build `skeleton` on the meta device: checking allocates
    nothing."""
    expected = {k: v.shape for k, v in skeleton.state_dict().items()}
    missing, extra = expected.keys() - weights.keys(), weights.keys() - expected.keys()
    if missing or extra:
        names = ", ".join(sorted(missing | extra)[:3])
        raise InputError(f"{path}: its weights do not fit {what} ({names})")
    for name, shape in expected.items():
        if weights[name].shape != shape:
            raise InputError(
                f"{path}: weight {name} has shape {tuple(weights[name].shape)}, "
                f"{what}'s is {tuple(shape)}"
            )
        if weights[name].is_floating_point() and not torch.isfinite(weights[name]).all():
            raise InputError(f"{path}: weight {name} is not finite (NaN or infinite values)")


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
