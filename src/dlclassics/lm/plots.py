"""The language-model figures: each model's training loss, read back from its TensorBoard
events, and its perplexity per split."""

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from dlclassics.core.plots import (
    MARKERS_BELOW,
    count_axis,
    legend_outside,
    markers,
    plt,
    save_figure,
)
from dlclassics.core.rundir import TENSORBOARD, RunDir
from dlclassics.protocol import Trial

LOSS_TAG = "loss/batch"  # what `lm.train.train` logs at every step
SPLITS = ("train", "val", "test")
Curve = tuple[list[int], list[float]]


def read_losses(tensorboard: Path, root: Path) -> Curve:
    """The steps and batch losses logged in the folder `tensorboard` of the run directory `root`.

    A resumed run writes another event file and logs again the steps after its last save: the
    later file's value of a step wins. Event files that are links or lie outside `root` are
    skipped, so no figure shows another file's numbers."""
    losses: dict[int, float] = {}
    inside = Path(root).resolve()
    files = sorted(tensorboard.glob("events.out.tfevents.*")) if tensorboard.is_dir() else []
    for path in files:
        if path.is_symlink() or not path.is_file() or not path.resolve().is_relative_to(inside):
            continue
        events = EventAccumulator(str(path), size_guidance={"scalars": 0}).Reload()
        if LOSS_TAG in events.Tags()["scalars"]:
            losses |= {e.step: e.value for e in events.Scalars(LOSS_TAG)}
    steps = sorted(losses)
    return steps, [losses[s] for s in steps]


def _smoothed(values: list[float]) -> np.ndarray:
    """A moving average over about a fiftieth of the curve, shorter at its start."""
    window = max(1, len(values) // 50)
    sums = np.cumsum(np.concatenate([[0.0], values]))
    ends = np.arange(1, len(values) + 1)
    starts = np.maximum(ends - window, 0)
    return (sums[ends] - sums[starts]) / (ends - starts)


def loss_curves(curves: Mapping[str, Curve], path: Path) -> Path:
    """One curve per model, labelled by its name: a long one's batch losses faint, their moving
    average over them."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name, (steps, losses) in curves.items():
        if len(steps) < MARKERS_BELOW:
            ax.plot(steps, losses, label=name, **markers(len(steps)))
            continue
        (raw,) = ax.plot(steps, losses, alpha=0.25, linewidth=0.8, zorder=1)
        ax.plot(steps, _smoothed(losses), color=raw.get_color(), label=name, zorder=3)
    count_axis(ax)
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("cross-entropy (nats per word)")
    ax.set_title("Training loss per batch (and its moving average)")
    ax.grid(alpha=0.3)
    legend_outside(ax)
    return save_figure(fig, path)


def perplexities(models: Mapping[str, Mapping[str, float | None]], path: Path) -> Path:
    """Grouped bars, one group per split, one bar per model; a diverged model's bar is empty and
    labelled so."""
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(models) + 4), 4.5))
    width = 0.8 / len(models)
    x = np.arange(len(SPLITS))
    for i, (name, values) in enumerate(models.items()):
        shown = [math.nan if values[s] is None else values[s] for s in SPLITS]
        heights = [v if math.isfinite(v) else 0.0 for v in shown]
        labels = [f"{v:,.1f}" if math.isfinite(v) else "diverged" for v in shown]
        bars = ax.bar(x + (i - (len(models) - 1) / 2) * width, heights, width, label=name)
        ax.bar_label(bars, labels, fontsize=7, padding=2)
    ax.margins(y=0.12)  # room above the tallest bar for its label
    ax.set_xticks(x, list(SPLITS))
    ax.set_xlabel("split")
    ax.set_ylabel("perplexity (lower is better)")
    ax.set_title("Perplexity per split")
    ax.grid(axis="y", alpha=0.3)
    legend_outside(ax)
    return save_figure(fig, path)


def write_plots(
    run: RunDir, trials: Sequence[Trial], results: Sequence[Mapping[str, float | None]]
) -> list[Path]:
    """`plots/perplexity.png` of every model's `results` (its perplexity per split), and
    `plots/loss_curves.png` of the losses its trial logged, where any were."""
    names = [t.name for t in trials]
    paths = [perplexities(dict(zip(names, results, strict=True)), run.plots / "perplexity.png")]
    curves = {t.name: read_losses(run.trial(t.name) / TENSORBOARD, run.path) for t in trials}
    curves = {name: curve for name, curve in curves.items() if curve[0]}
    if curves:
        paths.append(loss_curves(curves, run.plots / "loss_curves.png"))
    return paths
