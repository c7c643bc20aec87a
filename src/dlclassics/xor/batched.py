"""The batched trainer of the XOR study: every run of every grid point trained at once.

Tensors keep the run dimension last (innermost, contiguous), so each elementwise operation is one
vectorised loop over all runs. Networks of different widths share one padded shape: the widest
hidden layer, plus two bypass inputs. A fixed 0/1 mask on the output weights removes the units and
bypass inputs a run does not have; masked weights stay exactly zero, so padding never changes the
arithmetic of a run. Gradients of sigmoid + binary cross-entropy are written out by hand, which
keeps an epoch to about thirty small tensor operations whatever the number of runs.

Early stopping is per run: a run that meets the stopping rule has its learning rate masked to
zero, so its weights stay those of its stopping epoch while the other runs go on.

Even so, each operation costs more in dispatch than in arithmetic. The epochs therefore run in
C++ where it can be built (fused.py): `_epochs`' operations in its order, so the same results
bit for bit, at about three times the speed.
"""

import typing
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from dlclassics.core.errors import InputError
from dlclassics.core.logs import Log
from dlclassics.core.machine import bar_disabled
from dlclassics.xor.config import GridPoint
from dlclassics.xor.data import VAL_INPUTS, VAL_TARGETS
from dlclassics.xor.fused import Epochs, load_epochs


class StoppingRule(typing.Protocol):
    """The early-stopping settings the trainer reads (a `SweepConfig` has them)."""

    max_epochs: int
    patience: int
    min_delta: float
    goal: float


class Weights(nn.Module):
    """Weights of R runs, run dimension last, padded to H hidden units.

    hidden: (3, H, R), rows x1, x2, bias.  out_hidden: (H, R).  out_direct: (3, R), rows x1 and
    x2 (the bypass), then the output bias. A module (of buffers) so that its state dict is what a
    checkpoint saves.
    """

    hidden: torch.Tensor
    out_hidden: torch.Tensor
    out_direct: torch.Tensor

    def __init__(
        self, hidden: torch.Tensor, out_hidden: torch.Tensor, out_direct: torch.Tensor
    ) -> None:
        super().__init__()
        self.register_buffer("hidden", hidden)
        self.register_buffer("out_hidden", out_hidden)
        self.register_buffer("out_direct", out_direct)

    def run(self, r: int) -> dict[str, torch.Tensor]:
        """One run's weights in nn.Linear layout (bypass inputs first in the output layer)."""
        return {
            "hidden_weight": self.hidden[:2, :, r].T,
            "hidden_bias": self.hidden[2, :, r],
            "out_weight": torch.cat([self.out_direct[:2, r], self.out_hidden[:, r]]),
            "out_bias": self.out_direct[2, r],
        }


def masks(points: list[GridPoint], width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """1 where a run has a weight: (hidden units, H x R) and (bypass inputs + bias, 3 x R)."""
    hidden = torch.tensor([[float(j < c.hidden) for c in points] for j in range(width)])
    direct = torch.tensor([[float(c.bypass) for c in points]] * 2 + [[1.0] * len(points)])
    return hidden, direct


def xavier_init(points: list[GridPoint], generator: torch.Generator) -> Weights:
    """Xavier-uniform weights with each run's own fan-in and fan-out, zero biases."""
    runs, width = len(points), max(c.hidden for c in points)
    hidden_mask, direct_mask = masks(points, width)
    hidden = torch.tensor([float(c.hidden) for c in points])
    out_fan_in = hidden + torch.tensor([2.0 * c.bypass for c in points])
    bound1 = torch.sqrt(6 / (2 + hidden))
    bound2 = torch.sqrt(6 / (out_fan_in + 1))
    w1 = (torch.rand(2, width, runs, generator=generator) * 2 - 1) * bound1 * hidden_mask
    w2 = (torch.rand(2 + width, runs, generator=generator) * 2 - 1) * bound2
    return Weights(
        hidden=torch.cat([w1, torch.zeros(1, width, runs)]),
        out_hidden=w2[2:] * hidden_mask,
        out_direct=torch.cat([w2[:2] * direct_mask[:2], torch.zeros(1, runs)]),
    )


@dataclass
class RunResults:
    """Per run: whether it met the stopping rule, its last epoch, its losses and weights there."""

    succeeded: torch.Tensor
    epochs: torch.Tensor
    train_loss: torch.Tensor
    val_loss: torch.Tensor
    weights: Weights


def train_batched(
    points: list[GridPoint],
    init: Weights,
    rule: StoppingRule,
    dtype: torch.dtype = torch.float32,
    quiet: bool = True,
    log: Log | None = None,
    fused: bool = True,
) -> RunResults:
    """Full-batch SGD on binary cross-entropy for every run at once (`points[r]` is run r's
    configuration), with per-run early stopping.

    An epoch is one step on the four XOR points, then the validation loss, as a one-run loop does
    it. The XOR points are the first four validation points, so one forward pass over the
    validation set gives both this epoch's validation loss and the next epoch's training pass.
    Losses are kept as sums over points (8x the mean), so the thresholds are scaled by 8, which
    is exact in floating point. `log` gets the number of stopped runs every 500 epochs.

    `fused` runs the epochs in compiled code (fused.py) where it can be built, with the same
    results; otherwise, or with `fused=False`, in Python (`_epochs`).
    """
    if any(c.lr <= 0 for c in points):
        raise InputError("learning rates must be positive")
    if any(c.hidden < 1 for c in points):
        raise InputError("hidden units must be at least 1")
    # Every operation here is tiny: extra threads add only synchronisation, which turns into
    # long stalls when the other cores are busy.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.inference_mode():
            epochs = (fused and load_epochs()) or _epochs
            return _train(points, init, rule, dtype, quiet, log, epochs)
    finally:
        torch.set_num_threads(threads)


def _train(
    points: list[GridPoint],
    init: Weights,
    rule: StoppingRule,
    dtype: torch.dtype,
    quiet: bool,
    log: Log | None,
    epochs: Epochs,
) -> RunResults:
    runs, width = len(points), init.out_hidden.shape[0]
    hidden_mask, direct_mask = masks(points, width)
    out_mask = torch.cat([direct_mask, hidden_mask]).to(dtype)
    w1 = init.hidden.to(dtype).clone()  # (3, H, R)
    w2 = torch.cat([init.out_direct, init.out_hidden]).to(dtype)  # (3 + H, R)

    x = torch.cat([VAL_INPUTS, torch.ones(len(VAL_INPUTS), 1)], dim=1).to(dtype)  # bias input
    n, n_train = len(x), 4
    # The output layer's inputs, per run: x1, x2, 1 (for the bias), then the hidden units.
    a = torch.cat([x.unsqueeze(2).expand(n, 3, runs), torch.zeros(n, width, runs)], 1).to(dtype)
    # BCE(sigmoid(z), y) = softplus(s z) and sigmoid(z) - y = s sigmoid(s z), with s = 1 - 2y.
    sign = (1 - 2 * VAL_TARGETS).to(dtype)
    lr = torch.tensor([c.lr for c in points], dtype=dtype)
    step = sign[:n_train] / n_train * lr  # (4, R); a stopped run's column becomes zero

    delta = torch.tensor(n * rule.min_delta, dtype=dtype)
    goal = torch.tensor(n * (rule.goal - rule.min_delta), dtype=dtype)
    threshold = torch.full((runs,), float("inf"), dtype=dtype)  # best loss - delta
    last_improved = torch.zeros(runs, dtype=torch.int64)

    result = _Results(runs, width)
    ids = torch.arange(runs)
    terms, signed_logits = _forward(x, w1, w2, a, sign)
    epoch, check_every = 0, 500
    with tqdm(
        total=rule.max_epochs, desc="xor sweep", unit="epoch", disable=bar_disabled(quiet)
    ) as bar:
        while epoch < rule.max_epochs:
            # The epochs up to the next check, in fused.cpp where it built, else in Python.
            first, epoch = epoch + 1, min(epoch + check_every, rule.max_epochs)
            terms, signed_logits, threshold = epochs(
                x, w1, w2, a, terms, signed_logits, step, out_mask, sign,
                threshold, last_improved, delta, goal, rule.patience, first, epoch,
            )  # fmt: skip
            if epoch % check_every == 0:
                bar.update(check_every)
                running = step.any(0)
                if log is not None:
                    log({"runs_stopped": runs - int(running.sum())}, epoch)
                if not running.any():
                    break
                # Fewer columns make every operation cheaper: once half the runs have
                # stopped, record them and carry on with the rest only.
                if running.sum() <= len(ids) // 2:
                    done = ~running
                    result.record(
                        ids[done],
                        signed_logits[:, done],
                        w1[:, :, done],
                        w2[:, done],
                        torch.ones_like(ids[done], dtype=torch.bool),
                        last_improved[done] + rule.patience,
                    )
                    ids, w1, w2, a, step, out_mask, threshold, last_improved = (
                        t[..., running].contiguous()
                        for t in (ids, w1, w2, a, step, out_mask, threshold, last_improved)
                    )
                    terms, signed_logits = _forward(x, w1, w2, a, sign)
        bar.update(epoch - bar.n)

    stopped = ~step.any(0)
    epochs_run = torch.where(stopped, last_improved + rule.patience, epoch)
    result.record(ids, signed_logits, w1, w2, stopped, epochs_run)
    return result.finish()


def _forward(
    x: torch.Tensor, w1: torch.Tensor, w2: torch.Tensor, a: torch.Tensor, sign: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every run's output-layer terms (each input times its weight) and signed logits on the
    validation points; the hidden units go into `a`."""
    n, width, runs = len(x), w1.shape[1], w1.shape[2]
    h = torch.mm(x, w1.view(3, width * runs)).view(n, width, runs)
    torch.sigmoid(h, out=a[:, 3:])
    terms = a * w2
    return terms, terms.sum(1).mul_(sign)


def _epochs(
    x: torch.Tensor,
    w1: torch.Tensor,
    w2: torch.Tensor,
    a: torch.Tensor,
    terms: torch.Tensor,
    signed_logits: torch.Tensor,
    step: torch.Tensor,
    out_mask: torch.Tensor,
    sign: torch.Tensor,
    threshold: torch.Tensor,
    last_improved: torch.Tensor,
    delta: torch.Tensor,
    goal: torch.Tensor,
    patience: int,
    first: int,
    last: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Epochs `first` to `last`, in Python: the reference that fused.cpp follows line by line,
    and the fallback where it cannot be built.

    Updates w1, w2, a, step and last_improved in place; returns the new terms, signed logits
    and thresholds.
    """
    n_train = len(step)
    x_train_t = x[:n_train].T.contiguous()
    for epoch in range(first, last + 1):
        g = torch.sigmoid(signed_logits[:n_train]).mul_(step).unsqueeze(1)  # lr * dL/dz
        hv = terms[:n_train, 3:]  # hidden unit times its output weight
        dh = (hv - hv * a[:n_train, 3:]).mul_(g)
        w2.sub_((a[:n_train] * g).sum(0)).mul_(out_mask)
        w1.view(3, -1).addmm_(x_train_t, dh.view(n_train, -1), alpha=-1)

        terms, signed_logits = _forward(x, w1, w2, a, sign)
        val = F.softplus(signed_logits).sum(0)
        improved = val < threshold
        threshold = torch.where(improved, val.sub_(delta), threshold)
        last_improved.masked_fill_(improved, epoch)
        stop = (last_improved <= epoch - patience) & (threshold < goal)
        step.masked_fill_(stop, 0)
    return terms, signed_logits, threshold


class _Results:
    """Collects each run's outcome as the batch retires it."""

    def __init__(self, runs: int, width: int) -> None:
        self.succeeded = torch.zeros(runs, dtype=torch.bool)
        self.epochs = torch.zeros(runs, dtype=torch.int64)
        self.train_loss = torch.zeros(runs)
        self.val_loss = torch.zeros(runs)
        self.w1 = torch.zeros(3, width, runs)
        self.w2 = torch.zeros(3 + width, runs)

    def record(
        self,
        ids: torch.Tensor,
        signed_logits: torch.Tensor,
        w1: torch.Tensor,
        w2: torch.Tensor,
        succeeded: torch.Tensor,
        epochs: torch.Tensor,
    ) -> None:
        losses = F.softplus(signed_logits)
        self.train_loss[ids] = losses[:4].mean(0).float()
        self.val_loss[ids] = losses.mean(0).float()
        self.w1[..., ids] = w1.float()
        self.w2[:, ids] = w2.float()
        self.succeeded[ids] = succeeded
        self.epochs[ids] = epochs

    def finish(self) -> RunResults:
        weights = Weights(self.w1, self.w2[3:], self.w2[:3])
        return RunResults(self.succeeded, self.epochs, self.train_loss, self.val_loss, weights)
