"""One training loop for every model: Adam on cross-entropy over in-memory index batches.

The running loss stays a tensor between validation checks, so a step never waits on the host.
With `bf16`, the forward passes of training and of its validation checks run under bf16 autocast,
as nanoGPT's do: the checks judge the model as training computes it.

Under torchrun every rank draws the same batches and trains on its own rows of each
(`distributed.part`), its loss weighted by its share of the global batch, so the gradients DDP
sums are those of the whole batch; the checks are sharded over the ranks.
"""

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from dlclassics.core import distributed
from dlclassics.core.errors import diverged
from dlclassics.core.logs import Log
from dlclassics.core.machine import autocast
from dlclassics.core.progress import Bar
from dlclassics.mnist.data import MnistData, epoch_batches, normalize
from dlclassics.mnist.evaluate import balanced_accuracy, predict


@dataclass
class Check:
    """Validation after `iteration` steps; `train_loss` averages the steps since the last check."""

    iteration: int
    epoch: float
    train_loss: float
    val_loss: float
    val_accuracy: float
    val_balanced_accuracy: float


@dataclass
class TrainResult:
    """What a training run did: its steps, wall time and validation checks."""

    iterations: int = 0
    seconds: float = 0.0
    reached_target: bool = False
    checks: list[Check] = field(default_factory=list)
    kept: int = -1  # index in `checks` of the weights the model ends with
    # With `restore_best`: the weights the last step left, which the kept ones replaced.
    last_weights: dict[str, torch.Tensor] | None = None

    @property
    def best_val_accuracy(self) -> float:
        return max(c.val_accuracy for c in self.checks)

    @property
    def kept_check(self) -> Check:
        return self.checks[self.kept]


def train(
    model: nn.Module,
    data: MnistData,
    *,
    batch_size: int,
    lr: float,
    max_iterations: int,
    eval_every: int,
    generator: torch.Generator,
    target_accuracy: float | None = None,
    quiet: bool = True,
    desc: str = "train",
    on_check: Callable[[Check], None] | None = None,
    restore_best: bool = False,
    bf16: bool = False,
) -> TrainResult:
    """Train until `max_iterations` or until a check reaches `target_accuracy`.

    With `restore_best`, the model ends with the weights of its most accurate validation check
    rather than its last: runs that never reach the target (Fashion-MNIST for 20 epochs, say)
    overfit in their last epochs, and the best check is the model the study reports on. With
    `bf16`, training and the checks run under bf16 autocast (see the module docstring). `desc`
    labels the progress bar (the trial's name).
    """
    # The fused kernel is the same update in one pass over the weights: about 10% off a step here.
    opt = torch.optim.Adam(model.parameters(), lr=lr, fused=True)
    ddp = distributed.wrap(model)
    rows, _ = distributed.part(batch_size)  # the batch size is at least the number of ranks
    share = (rows.stop - rows.start) / batch_size
    per_epoch = len(data.train) // batch_size
    device = data.train.labels.device
    result, running, steps = TrainResult(), torch.zeros((), device=device), 0
    best_state: dict[str, torch.Tensor] | None = None
    model.train()
    start = time.perf_counter()
    with Bar(desc, max_iterations, quiet) as bar:
        while result.iterations < max_iterations and not result.reached_target:
            for idx in epoch_batches(len(data.train), batch_size, generator):
                idx = idx[rows].to(device)
                with autocast(device, bf16):  # the loss itself autocasts to float32
                    loss = nn.functional.cross_entropy(
                        ddp(normalize(data.train.images[idx])), data.train.labels[idx]
                    )
                # This rank's part of the global batch's mean loss (all of it in one process)...
                loss = loss * share
                opt.zero_grad(set_to_none=True)
                # ... times the ranks, whose gradients DDP averages (see `distributed.wrap`).
                (loss * distributed.ranks()).backward()
                opt.step()
                running += loss.detach()
                steps += 1
                result.iterations += 1
                if bar.advance():  # a device sync, then only: every `progress.EVERY` seconds
                    bar.show(loss=(running / steps).item() / share)
                last = result.iterations == max_iterations
                if result.iterations % eval_every == 0 or last:
                    with autocast(device, bf16):
                        check = _check(model, data, result.iterations, per_epoch, running / steps)
                    result.checks.append(check)
                    if restore_best and (
                        best_state is None or check.val_accuracy > result.kept_check.val_accuracy
                    ):
                        result.kept = len(result.checks) - 1
                        best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                    running.zero_()
                    steps = 0
                    bar.show(val_acc=check.val_accuracy)
                    if on_check is not None:
                        on_check(check)
                    if target_accuracy is not None and check.val_accuracy >= target_accuracy:
                        result.reached_target = True
                if last or result.reached_target:
                    break
    if best_state is not None:
        result.last_weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict(best_state)
    result.seconds = time.perf_counter() - start
    return result


def _check(
    model: nn.Module, data: MnistData, iteration: int, per_epoch: int, train_loss: torch.Tensor
) -> Check:
    """The validation check; an InputError if a loss is not finite (the training losses stay on
    the device between checks: this is the first time they are looked at)."""
    loss = distributed.sum_over_ranks(train_loss).item()
    preds, val_loss = predict(model, data.val, sharded=True)
    for value in (loss, val_loss):
        if not math.isfinite(value):
            raise diverged(iteration, value)
    return Check(
        iteration=iteration,
        epoch=iteration / per_epoch,
        train_loss=loss,
        val_loss=val_loss,
        val_accuracy=(preds == data.val.labels).float().mean().item(),
        val_balanced_accuracy=balanced_accuracy(data.val.labels, preds),
    )


def log_checks(log: Log) -> Callable[[Check], None]:
    """An `on_check` callback writing each check to `log` (a `study.tensorboard` logger). The
    tags carry no trial name: each trial logs into its own folder, so TensorBoard overlays them."""

    def on_check(check: Check) -> None:
        values = {
            "loss/train": check.train_loss,
            "loss/val": check.val_loss,
            "accuracy/val": check.val_accuracy,
            "balanced_accuracy/val": check.val_balanced_accuracy,
        }
        log(values, check.iteration)

    return on_check
