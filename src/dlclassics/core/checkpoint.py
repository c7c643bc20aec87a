"""The one checkpoint format every trained model is saved in.

A checkpoint is one dict, as in nanoGPT: the weights (`model`), what it takes to rebuild the
network (`model_args`), the settings it was trained with (`config`), the package version, and,
where training can resume from it, the optimiser state and the progress. It is written atomically
and read with `weights_only=True`, so loading a file can never run code.
"""

import io
import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dlclassics import __version__
from dlclassics.core import distributed
from dlclassics.core.bounds import MAX_PARAMETERS
from dlclassics.core.errors import InputError, first_line
from dlclassics.core.rundir import CHECKPOINT, TRIALS, atomic_write_bytes, read_run_file

KEYS = ("model", "model_args", "config", "version")
# The largest model's float32 weights and Adam's two moments, and 1 GiB for the rest (an LM's
# vocabulary, the counters).
MAX_CHECKPOINT_BYTES = 3 * 4 * MAX_PARAMETERS + 2**30
# Trained and hand-set weights are a few units; a diverged run's can be finite but huge, and
# outputs that overflow would be NaN, which is no JSON. Within this bound no input overflows
# float32 in the demo's networks: at 1e6 the largest value is about 7e32 (the double CNN's
# logits), 1e17 (an LSTM gate's input at the widest sizes).
MAX_WEIGHT = 1e6


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
    path: Path,
    device: torch.device | str = "cpu",
    root: Path | None = None,
    data: bytes | None = None,
) -> dict[str, Any]:
    """The dict `save_checkpoint` wrote; a missing or malformed file is an InputError naming it.
    With `root`, the file is one of that run directory's, and read as `read_run_file` reads
    (never through a symbolic link). With `data`, the file's bytes read already: a caller that
    also copies them copies what was checked."""
    if data is None and root is not None:
        data = read_run_file(root, Path(path), MAX_CHECKPOINT_BYTES)
    source = path if data is None else io.BytesIO(data)
    try:
        checkpoint = torch.load(source, map_location=device, weights_only=True)
    except Exception as e:  # a malformed file can fail anywhere inside the unpickler
        raise InputError(f"cannot load a checkpoint from {path}: {first_line(e)}") from e
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
    path: Path | str,
    skeleton: nn.Module,
    weights: dict[str, torch.Tensor],
    what: str = "the model it describes",
    bound: float = math.inf,
) -> None:
    """That `weights` are exactly `skeleton`'s (`what`) tensors, of its shapes, finite and at
    most `bound` in magnitude: an InputError naming `path` (or what they are of) otherwise.
    Build `skeleton` on the meta device: checking allocates nothing."""
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
        weight = weights[name]
        if weight.is_floating_point() and not (weight.isfinite() & (weight.abs() <= bound)).all():
            within = f" within ±{bound:g}" if math.isfinite(bound) else ""
            raise InputError(f"{path}: weight {name} is not finite{within} (NaN or larger values)")


def find_checkpoint(path: Path) -> Path:
    """A checkpoint file; a folder holding `checkpoint.pt` (a trial's, or a run's chosen model);
    or a run directory whose study has exactly one trial."""
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
