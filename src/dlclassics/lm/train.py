"""The training loop: Adam over length-bucketed batches, Ctrl-C checkpoints, and resume.

A Ctrl-C is only acted on between optimiser steps, so the saved state is always a consistent one
and a resumed run takes exactly the steps the uninterrupted run would have taken.
"""

import math
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from tqdm import tqdm

from dlclassics.lm.batches import Batch, bucket_batches
from dlclassics.lm.evaluate import perplexity
from dlclassics.lm.model import LanguageModel
from dlclassics.runtime import autocast, bar_disabled
from dlclassics.study import Log

if TYPE_CHECKING:
    from dlclassics.lm.experiment import LmConfig


@dataclass
class Progress:
    epoch: int = 0  # the epoch in progress
    batch: int = 0  # the next batch of that epoch
    step: int = 0  # optimiser steps taken
    tokens: int = 0  # real target tokens trained on
    seconds: float = 0.0  # time spent in training steps
    epoch_nll: float = 0.0  # summed loss of the epoch in progress, for its train perplexity
    epoch_tokens: int = 0

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during training, after the state was saved to `path`."""

    def __init__(self, path: Path) -> None:
        super().__init__(str(path))
        self.path = path


@contextmanager
def _sigint_flag() -> Iterator[list[bool]]:
    flag = [False]

    def handler(signum: int, frame: object) -> None:
        flag[0] = True

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


def epoch_batches(rows: list[list[int]], config: "LmConfig", epoch: int) -> list[Batch]:
    # Each epoch's order depends on (seed, epoch) only, so a resumed run replays it exactly.
    generator = torch.Generator().manual_seed(config.seed * 1_000_003 + epoch)
    return bucket_batches(rows, config.batch_size, generator)


def train(
    model: LanguageModel,
    optimizer: torch.optim.Optimizer,
    progress: Progress,
    train_rows: list[list[int]],
    val_rows: list[list[int]],
    config: "LmConfig",
    device: torch.device,
    log: Log,
    save_state: Callable[[Progress], Path],
    quiet: bool = False,
    samples: Callable[[], list[str]] | None = None,
    desc: str = "train",
) -> Progress:
    """Train in place from `progress` on; on Ctrl-C call `save_state` and raise Interrupted.

    `log` gets the loss of every step and, after each epoch, the train and validation
    perplexities and the `samples`.
    """
    model.train()
    total = config.epochs * math.ceil(len(train_rows) / config.batch_size)
    if config.max_steps is not None:
        total = min(total, config.max_steps)
    bar_options = {
        "total": total,
        "initial": progress.step,
        "disable": bar_disabled(quiet),
        "unit": "step",
    }
    # The handler is in place before the progress bar shows, so a Ctrl-C after it always saves.
    with _sigint_flag() as interrupted, tqdm(desc=desc, **bar_options) as bar:
        while progress.epoch < config.epochs and not _done(progress, config):
            batches = epoch_batches(train_rows, config, progress.epoch)
            for batch in batches[progress.batch :]:
                loss = _step(model, optimizer, batch, config, device, progress)
                log({"loss/batch": loss}, progress.step)
                bar.update()
                if interrupted[0]:
                    raise Interrupted(save_state(progress))
                if _done(progress, config):
                    break
            else:
                _end_epoch(model, val_rows, device, progress, log, samples)
    return progress


def _done(progress: Progress, config: "LmConfig") -> bool:
    return config.max_steps is not None and progress.step >= config.max_steps


def _step(
    model: LanguageModel,
    optimizer: torch.optim.Optimizer,
    batch: Batch,
    config: "LmConfig",
    device: torch.device,
    progress: Progress,
) -> float:
    start = time.perf_counter()
    inputs, targets, mask = (t.to(device) for t in (batch.inputs, batch.targets, batch.mask))
    with autocast(device, config.bf16):
        nll = model.loss_sum(inputs, targets, mask)
    loss = nll / batch.tokens
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    value = float(loss.detach())
    progress.seconds += time.perf_counter() - start
    progress.step += 1
    progress.batch += 1
    progress.tokens += batch.tokens
    progress.epoch_nll += value * batch.tokens
    progress.epoch_tokens += batch.tokens
    return value


def _end_epoch(
    model: LanguageModel,
    val_rows: list[list[int]],
    device: torch.device,
    progress: Progress,
    log: Log,
    samples: Callable[[], list[str]] | None,
) -> None:
    epoch = progress.epoch + 1
    log(
        {
            "perplexity/train": math.exp(progress.epoch_nll / max(progress.epoch_tokens, 1)),
            "perplexity/val": perplexity(model, val_rows, device),
        },
        epoch,
    )
    if samples is not None:
        log({"samples": "\n\n".join(samples())}, epoch)
    model.train()
    progress.epoch += 1
    progress.batch = 0
    progress.epoch_nll, progress.epoch_tokens = 0.0, 0
