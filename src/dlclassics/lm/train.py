"""The training loop: Adam over length-bucketed batches, checkpoints as it goes, and resume.

`fit` is one trial's training: the optimiser, the resume from what an earlier run of the same
settings saved, the training state saved as it goes and the finished model saved at the end;
`train` is the loop itself. The loop reads its own small config, `LoopConfig`.

The training state is saved between optimiser steps only (every `checkpoint_every` steps, at the
end of every epoch, and on Ctrl-C), so a saved state is always a consistent one and a resumed run
takes exactly the steps the uninterrupted run would have taken. Each save is atomic: a kill at any
moment leaves the previous state or the new one.

Under torchrun every rank builds the same batches and trains on its own rows of each
(`distributed.part`); the loss is normalised by the batch's count of real target tokens, not the
rank's, so the gradients DDP sums are those of the whole batch, as in one process. The ranks
agree on a Ctrl-C before they stop, so they stop after the same step.
"""

import math
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from dlclassics.core import distributed
from dlclassics.core.bounds import Int, Real, Rules, validate
from dlclassics.core.checkpoint import check_weights, load_checkpoint
from dlclassics.core.errors import InputError, Interrupted, diverged
from dlclassics.core.logs import Log, tensorboard
from dlclassics.core.machine import autocast
from dlclassics.core.progress import Bar
from dlclassics.core.rundir import CHECKPOINT, STATE
from dlclassics.lm.batches import Batch, bucket_batches
from dlclassics.lm.corpus import Vocabulary
from dlclassics.lm.evaluate import exp, perplexity
from dlclassics.lm.model import LanguageModel, save_model

# An evaluation's number and value, for `tune`'s pruning: here each epoch's validation perplexity.
OnEval = Callable[[int, float], None]


@dataclass(frozen=True)
class LoopConfig:
    """What the loop reads: a run's settings (`lm.config.LmConfig` has them all) and whether its
    machine computes in bfloat16."""

    epochs: int
    batch_size: int
    lr: float
    max_steps: int | None
    checkpoint_every: int
    seed: int
    bf16: bool

    @classmethod
    def of(cls, settings: Any, bf16: bool) -> "LoopConfig":
        """The loop's fields of `settings`, a run's config, on a machine with `bf16` or not."""
        names = [f.name for f in fields(cls) if f.name != "bf16"]
        return cls(**{name: getattr(settings, name) for name in names}, bf16=bf16)


@dataclass
class Progress:
    epoch: int = 0  # the epoch in progress
    batch: int = 0  # the next batch of that epoch
    step: int = 0  # optimiser steps taken
    tokens: int = 0  # real target tokens trained on
    seconds: float = 0.0  # time spent in training steps
    epoch_nll: float = 0.0  # summed loss of the epoch in progress, for its train perplexity
    epoch_tokens: int = 0

    # A resumed state's counters are checked as a config is: they come from a file.
    COUNT: ClassVar = Int(0, 2**63 - 1)  # an int64, as torch keeps them
    RULES: ClassVar[Rules] = {
        "epoch": COUNT,
        "batch": COUNT,
        "step": COUNT,
        "tokens": COUNT,
        "seconds": Real(0),
        "epoch_nll": Real(0),
        "epoch_tokens": COUNT,
    }

    def __post_init__(self) -> None:
        validate(self)

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0


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


class _LossSum(nn.Module):
    """`model.loss_sum` as a module's forward, the call DistributedDataParallel hooks into."""

    def __init__(self, model: LanguageModel) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, inputs: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        return self.model.loss_sum(inputs, targets, mask)


def epoch_batches(rows: list[list[int]], config: LoopConfig, epoch: int) -> list[Batch]:
    # Each epoch's order depends on (seed, epoch) only, so a resumed run replays it exactly.
    generator = torch.Generator().manual_seed(config.seed * 1_000_003 + epoch)
    return bucket_batches(rows, config.batch_size, generator)


def train(
    model: LanguageModel,
    optimizer: torch.optim.Optimizer,
    progress: Progress,
    rows: tuple[list[list[int]], list[list[int]]],
    config: LoopConfig,
    device: torch.device,
    log: Log,
    save_state: Callable[[Progress], Path],
    quiet: bool = False,
    samples: Callable[[], list[str]] | None = None,
    desc: str = "train",
    on_eval: OnEval | None = None,
) -> Progress:
    """Train in place from `progress` on, calling `save_state` every `config.checkpoint_every`
    steps and after each epoch; on Ctrl-C call it and raise Interrupted. After each epoch's save,
    `on_eval` gets the number of epochs done and the validation perplexity.

    `rows` are the training and the validation sentences; `log` gets the loss of every step and,
    after each epoch, the train and validation perplexities and the `samples`.
    """
    train_rows, val_rows = rows
    model.train()
    loss_sum = distributed.wrap(_LossSum(model))

    def save(progress: Progress) -> Path:
        check_finite(model, progress.step)  # a diverged model is never saved
        return save_state(progress)

    total = config.epochs * math.ceil(len(train_rows) / config.batch_size)
    if config.max_steps is not None:
        total = min(total, config.max_steps)
    # The handler is in place before the progress bar shows, so a Ctrl-C after it always saves.
    with (
        _sigint_flag() as interrupted,
        Bar(desc, total, quiet, initial=progress.step, leave=True) as bar,
    ):
        while progress.epoch < config.epochs and not _done(progress, config):
            batches = epoch_batches(train_rows, config, progress.epoch)
            for batch in batches[progress.batch :]:
                loss = _step(loss_sum, optimizer, batch, config, device, progress)
                log({"loss/batch": loss}, progress.step)
                if bar.advance():
                    bar.show(loss=progress.epoch_nll / progress.epoch_tokens)  # the epoch's so far
                if distributed.any_rank(interrupted[0]):
                    path = save(progress)
                    distributed.barrier()  # torchrun ends the job once any rank has stopped
                    raise Interrupted(path)
                if _done(progress, config):
                    break
                if progress.step % config.checkpoint_every == 0:
                    save(progress)
            else:
                with bar.doing("evaluating val"):
                    val = _end_epoch(model, val_rows, device, progress, log, samples)
                save(progress)
                if on_eval is not None:
                    on_eval(progress.epoch, val)
    return progress


def fit(
    model: LanguageModel,
    vocab: Vocabulary,
    rows: tuple[list[list[int]], list[list[int]]],
    config: LoopConfig,
    settings: dict[str, Any],
    directory: Path,
    device: torch.device,
    quiet: bool = False,
    desc: str = "train",
    samples: Callable[[], list[str]] | None = None,
    on_eval: OnEval | None = None,
) -> Progress:
    """Train `model` on `rows` (train, validation) in the trial folder `directory`, on from what
    a run of the same `settings` saved there (its training state, else its finished model), and
    save it as `checkpoint.pt` with its progress; its progress.

    The training state (`train_state.pt`, with `settings`, the vocabulary and the optimiser) is
    saved as training goes, and removed once the model is saved; `directory/tensorboard` gets the
    loop's logs. Under torchrun every rank calls it; rank 0 alone reads and writes the files.
    """
    # The fused Adam kernel is the same update in one pass over the weights (about 5% faster).
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, fused=True)
    progress = _resume(directory, model, optimizer, settings)
    state = directory / STATE

    def save_state(progress: Progress) -> Path:
        return save_model(state, model, vocab, settings, optimizer, **asdict(progress))

    with tensorboard(directory) as log:
        train(
            model,
            optimizer,
            progress,
            rows,
            config,
            device,
            log,
            save_state,
            quiet=quiet,
            samples=samples,
            desc=desc,
            on_eval=on_eval,
        )
    # The finished model keeps its progress counters: a run killed before its result.json is
    # written resumes from it without training again.
    check_finite(model, progress.step)
    save_model(directory / CHECKPOINT, model, vocab, settings, **asdict(progress))
    state.unlink(missing_ok=True)
    return progress


def _resume(
    directory: Path,
    model: LanguageModel,
    optimizer: torch.optim.Optimizer,
    settings: dict[str, Any],
) -> Progress:
    """The last progress saved in `directory`, loaded into `model` and `optimizer`: the training
    state, else a finished model; a fresh start when there is none, or when it was saved by a run
    with other settings. Under torchrun rank 0 reads it and sends it to the others."""

    def read() -> tuple[Path, dict] | None:
        for path in (directory / STATE, directory / CHECKPOINT):
            if path.is_file() or path.is_symlink():
                state = load_checkpoint(path, root=directory.parent.parent)
                if state["config"] == settings and "step" in state:
                    return path, state
        return None

    found = distributed.from_main(read)
    if found is None:
        return Progress()
    path, state = found
    if state["model_args"] != asdict(model.config):
        raise InputError(f"{path}: a model other than this run's settings make")
    check_weights(path, model, state["model"])
    model.load_state_dict(state["model"])
    if "optimizer" in state:  # a finished model has none, and takes no more steps
        _load_optimizer(path, optimizer, state["optimizer"])
    return _progress(path, state)


def _load_optimizer(path: Path, optimizer: torch.optim.Optimizer, state: Any) -> None:
    """The saved optimiser state, refused unless each of its tensors fits its parameter."""
    try:
        optimizer.load_state_dict(state)
    except (ValueError, TypeError, KeyError, AttributeError, RuntimeError) as e:
        raise InputError(f"{path}: its optimiser state does not fit the model ({e})") from None
    for group in optimizer.param_groups:
        for param in group["params"]:
            for value in optimizer.state[param].values():
                if isinstance(value, torch.Tensor) and value.dim() and value.shape != param.shape:
                    raise InputError(f"{path}: its optimiser state does not fit the model")


def _progress(path: Path, state: dict) -> Progress:
    """The saved progress counters, each checked by `Progress.RULES`."""
    try:
        return Progress(**{f.name: state.get(f.name) for f in fields(Progress)})
    except InputError as e:
        raise InputError(f"{path}: its progress counter {e}") from None


def check_finite(model: nn.Module, step: int) -> None:
    """An InputError if a weight is NaN or infinite: a step whose loss was finite can still have
    overflowed the update."""
    if not all(torch.isfinite(p).all() for p in model.parameters()):
        raise diverged(step, "finite but the weights are not")


def _done(progress: Progress, config: LoopConfig) -> bool:
    return config.max_steps is not None and progress.step >= config.max_steps


def _step(
    loss_sum: nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: Batch,
    config: LoopConfig,
    device: torch.device,
    progress: Progress,
) -> float:
    """One optimiser step on `batch`; its mean loss per real target token."""
    start = time.perf_counter()
    rows, weight = distributed.part(len(batch.inputs))
    inputs, targets, mask = (t[rows].to(device) for t in (batch.inputs, batch.targets, batch.mask))
    with autocast(device, config.bf16):
        nll = loss_sum(inputs, targets, mask) * weight
    # Over the whole batch's count of real target tokens, which every rank holds, not the rank's
    # own; times the ranks, whose gradients DDP averages (see `distributed.wrap`).
    loss = nll / batch.tokens * distributed.ranks()
    value = float(distributed.sum_over_ranks(nll.detach()) / batch.tokens)
    if not math.isfinite(value):  # stopped before the step: the saved state stays finite
        raise diverged(progress.step + 1, value)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
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
) -> float:
    """Log the epoch's perplexities and samples, and count it done; its validation perplexity."""
    epoch = progress.epoch + 1
    val = perplexity(model, val_rows, device, sharded=True)
    train_ppl = exp(progress.epoch_nll / max(progress.epoch_tokens, 1))
    log({"perplexity/train": train_ppl, "perplexity/val": val}, epoch)
    if samples is not None:
        log({"samples": "\n\n".join(samples())}, epoch)
    model.train()
    progress.epoch += 1
    progress.batch = 0
    progress.epoch_nll, progress.epoch_tokens = 0.0, 0
    return val
