"""What the two MNIST studies (`fc.py`, `cnn.py`) share: settings, data, and a trial's training.

Every trial is seeded alike (`seed_everything(seed)` before the model is built, batches ordered
by `batch_generator(seed)`), so a trial's result depends on its config and itself only, not on
which trials ran before it in the process.
"""

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from torch import nn

from dlclassics import distributed
from dlclassics.checkpoint import CHECKPOINT
from dlclassics.errors import InputError
from dlclassics.mnist.data import MnistData, batch_generator, load_cached
from dlclassics.mnist.models import build, save_model, to_device
from dlclassics.mnist.train import Check, TrainResult, log_checks, train
from dlclassics.runtime import AUTO_DEVICE, resolve_bf16, resolve_device, seed_everything
from dlclassics.study import tensorboard


@dataclass(frozen=True)
class MnistConfig:
    """The settings both commands have; each command's config adds its own."""

    dataset: str = "mnist"
    data_dir: str = ""  # "": the dataset's files, found or downloaded (see `data.locate`)
    lr: float = 0.001
    # The command stores the device it resolved, and whether bf16 is used there.
    device: str = AUTO_DEVICE
    bf16: bool | None = None
    seed: int = 0


def load_data(config: MnistConfig, batch_size: int) -> MnistData:
    """The config's data, on the CPU; an InputError if it is missing or malformed, or has fewer
    training images than `batch_size`."""
    data = load_cached(config.dataset, config.data_dir, config.seed)
    if batch_size > len(data.train):
        raise InputError(f"batch size {batch_size} exceeds the {len(data.train)} training images")
    return data


def train_trial(
    config: MnistConfig,
    trial: Any,
    batch_size: int,
    directory: Path,
    quiet: bool,
    dropout: float | None = None,
    on_check: Callable[[Check], None] | None = None,
    **options: Any,
) -> tuple[nn.Module, MnistData, TrainResult]:
    """Train `trial.arch` at `batch_size` (with this `dropout` rate, if given), logging its checks
    to `directory/tensorboard` and then giving them to `on_check`, and save it as
    `directory/checkpoint.pt`. `options` go to `train`. Returns the model, the data (on the
    config's device) and what training did. Under torchrun every rank calls it, each process on
    its own GPU where there are GPUs."""
    device = distributed.local(resolve_device(config.device))
    data = load_data(config, batch_size).to(device)
    seed_everything(config.seed)
    model = to_device(build(trial.arch, dropout), device)
    with tensorboard(directory / "tensorboard") as log:
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
            on_check=checked,
            bf16=resolve_bf16(config.bf16, device),
            **options,
        )
    settings = asdict(config) | asdict(trial) | {"batch_size": batch_size}
    save_model(directory / CHECKPOINT, model, trial.arch, settings, list(data.classes))
    return model, data, result
