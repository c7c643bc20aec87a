"""What the two MNIST studies (`fc.py`, `cnn.py`) share: settings, data, and a trial's training.

Every trial is seeded alike (`seed_everything(seed)` before the model is built, batches ordered
by `batch_generator(seed)`), so a trial's result depends on its config and itself only, not on
which trials ran before it in the process.
"""

import functools
import hashlib
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from dlclassics.core import distributed
from dlclassics.core.errors import InputError
from dlclassics.core.logs import tensorboard
from dlclassics.core.machine import Machine, seed_everything
from dlclassics.core.rundir import CHECKPOINT, file_sha256
from dlclassics.mnist.config import MnistConfig
from dlclassics.mnist.data import MnistData, batch_generator, load_cached, locate
from dlclassics.mnist.models import build, save_model, to_device
from dlclassics.mnist.train import Check, TrainResult, log_checks, train

C = TypeVar("C", bound=MnistConfig)


def load_data(config: MnistConfig, batch_size: int) -> MnistData:
    """The config's data, on the CPU; an InputError if it is missing or malformed, has fewer
    training images than `batch_size`, or is not the data `config.data_sha256` records."""
    data = load_cached(config.dataset, config.data_dir, config.seed)
    if batch_size > len(data.train):
        raise InputError(f"batch size {batch_size} exceeds the {len(data.train)} training images")
    if config.data_sha256 is not None and config.data_sha256 != data_sha256(config):
        where = config.data_dir or f"the {config.dataset} cache"
        raise InputError(
            f"the image files in {where} are not those this run was trained on (sha256 "
            f"{config.data_sha256[:12]}..., now {data_sha256(config)[:12]}...): restore them, or "
            "start a new run"
        )
    return data


def with_data_sha256(config: C, batch_size: int) -> C:
    """`config` with its data's sha256 recorded, after `load_data` checked the data."""
    load_data(config, batch_size)
    return replace(config, data_sha256=data_sha256(config))


def data_sha256(config: MnistConfig) -> str:
    """One sha256 over the four IDX files the config reads (each file's, in turn)."""
    paths = locate(config.dataset, Path(config.data_dir) if config.data_dir else None)
    stamps = tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in paths.values())
    return _files_sha256(stamps)


@functools.lru_cache(maxsize=2)
def _files_sha256(stamps: tuple[tuple[str, int, int], ...]) -> str:
    # Keyed on the files' times and sizes: hashed once per process, again if a file changes.
    return hashlib.sha256("".join(file_sha256(Path(p)) for p, _, _ in stamps).encode()).hexdigest()


def train_trial(
    config: MnistConfig,
    trial: Any,
    batch_size: int,
    directory: Path,
    quiet: bool,
    machine: Machine,
    dropout: float | None = None,
    on_check: Callable[[Check], None] | None = None,
    **options: Any,
) -> tuple[nn.Module, MnistData, TrainResult]:
    """Train `trial.arch` at `batch_size` (with this `dropout` rate, if given) on `machine`,
    logging its checks to `directory/tensorboard` and then giving them to `on_check`, and save
    it as `directory/checkpoint.pt`. `options` go to `train`. Returns the model, the data (on
    the machine's device) and what training did. Under torchrun every rank calls it, each
    process on its own GPU where there are GPUs."""
    device = distributed.local(torch.device(machine.device))
    data = load_data(config, batch_size).to(device)
    seed_everything(config.seed)
    model = to_device(build(trial.arch, dropout), device)
    with tensorboard(directory) as log:
        log_check = log_checks(log)

        def checked(check: Check) -> None:
            log_check(check)
            if on_check is not None:
                on_check(check)

        result = train(
            model,
            data,
            batch_size=batch_size,
            lr=config.lr,
            generator=batch_generator(config.seed),
            quiet=quiet,
            desc=trial.name,
            on_check=checked,
            bf16=machine.bf16,
            **options,
        )
    settings = asdict(config) | asdict(trial) | {"batch_size": batch_size}
    save_model(directory / CHECKPOINT, model, trial.arch, settings, list(data.classes))
    return model, data, result
