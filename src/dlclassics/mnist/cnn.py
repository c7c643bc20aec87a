"""`mnist cnn`: each small CNN at each batch size, trained until a validation accuracy target;
the study keeps the one with the best balanced validation accuracy."""

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TypedDict

import torch

from dlclassics.core.checkpoint import MAX_CHECKPOINT_BYTES
from dlclassics.core.machine import Machine
from dlclassics.core.rundir import CHECKPOINT, RunDir, atomic_write_bytes, read_run_file
from dlclassics.core.tables import table
from dlclassics.mnist import plots
from dlclassics.mnist.config import DROPOUT_ARCH, CnnConfig
from dlclassics.mnist.data import SOURCES
from dlclassics.mnist.evaluate import predict, split_metrics
from dlclassics.mnist.experiment import load_data, train_trial, with_data_sha256
from dlclassics.mnist.figures import conv_pictures, first_look
from dlclassics.mnist.models import load_classifier
from dlclassics.mnist.train import Check
from dlclassics.protocol import Study, Summary
from dlclassics.study import trial_dir


@dataclass(frozen=True)
class CnnTrial:
    arch: str
    batch_size: int

    @property
    def name(self) -> str:
        return f"{self.arch}_b{self.batch_size}"


class ValCurve(TypedDict):
    """One value per check."""

    iteration: list[int]
    accuracy: list[float]


@dataclass(frozen=True)
class CnnResult:
    arch: str
    batch_size: int
    reached_target: bool
    iterations: int
    seconds: float
    best_val_accuracy: float
    val_balanced_accuracy: float  # of the kept weights, those of the most accurate check
    kept_iteration: int
    val_curve: ValCurve


def trials(config: CnnConfig) -> list[CnnTrial]:
    return [CnnTrial(arch, b) for arch in config.archs for b in config.batch_sizes]


def run_trial(
    config: CnnConfig,
    trial: CnnTrial,
    directory: Path,
    quiet: bool = False,
    machine: Machine | None = None,
    on_eval: Callable[[int, float], None] | None = None,
) -> CnnResult:
    """Train until the target or `max_epochs` on `machine` (None: this one's default), keeping
    the weights of the most accurate check. `on_eval` is for `tune`'s pruning: it gets each
    check's number and balanced validation accuracy (the last check may come early, at the
    budget's end: it is numbered as the next)."""

    def on_check(check: Check) -> None:
        if on_eval is not None:
            on_eval(math.ceil(check.iteration / config.eval_every), check.val_balanced_accuracy)

    per_epoch = len(load_data(config, trial.batch_size).train) // trial.batch_size
    _, _, result = train_trial(
        config,
        trial,
        trial.batch_size,
        directory,
        quiet,
        machine or Machine.here(),
        config.dropout if trial.arch == DROPOUT_ARCH else None,
        on_check,
        max_iterations=config.max_epochs * per_epoch,
        eval_every=config.eval_every,
        target_accuracy=config.target_accuracy,
        restore_best=True,
    )
    return CnnResult(
        arch=trial.arch,
        batch_size=trial.batch_size,
        reached_target=result.reached_target,
        iterations=result.iterations,
        seconds=result.seconds,
        best_val_accuracy=result.best_val_accuracy,
        val_balanced_accuracy=result.kept_check.val_balanced_accuracy,
        kept_iteration=result.kept_check.iteration,
        val_curve={
            "iteration": [c.iteration for c in result.checks],
            "accuracy": [c.val_accuracy for c in result.checks],
        },
    )


COLUMNS = {"arch": "arch", "batch": "batch_size", "reached target": "reached_target"}
COLUMNS |= {"iterations": "iterations", "seconds": "seconds", "best val acc": "best_val_accuracy"}
COLUMNS |= {"kept (iteration)": "kept_iteration", "kept val balanced acc": "val_balanced_accuracy"}


def summarize(
    config: CnnConfig, results: list[CnnResult], run: RunDir, machine: Machine | None = None
) -> Summary:
    """The runs, and the best one by balanced validation accuracy (the first of equals): its test
    metrics and what its first conv layer sees. Its checkpoint is copied to the run directory."""
    data = load_data(config, max(config.batch_sizes))
    md = f"# {SOURCES[config.dataset].title}, convolutional\n\n" + first_look(data, run.plots)
    curves = {
        CnnTrial(r.arch, r.batch_size).name: (r.val_curve["iteration"], r.val_curve["accuracy"])
        for r in results
    }
    plots.val_accuracy_curves(curves, run.plots / "val_accuracy.png")
    best = max(results, key=lambda r: r.val_balanced_accuracy)
    best_file = trial_dir(run.path, CnnTrial(best.arch, best.batch_size)) / CHECKPOINT
    device = torch.device((machine or Machine.here()).device)
    # Read once, never through a link, and the bytes checked are the bytes copied: only a model
    # of this run's lands in <run>/checkpoint.pt.
    saved = read_run_file(run.path, best_file, MAX_CHECKPOINT_BYTES)
    model, data = load_classifier(best_file, device, data=saved), data.to(device)
    atomic_write_bytes(run.path / CHECKPOINT, saved)
    preds, _ = predict(model, data.test)
    test = split_metrics(data.test.labels, preds)
    conv_pictures(model, data, run.plots)
    runs = [{k: v for k, v in asdict(r).items() if k != "val_curve"} for r in results]
    md += "\n## Runs\n\n" + table(runs, COLUMNS)
    md += (
        f"\nBest by balanced validation accuracy: {best.arch} at batch {best.batch_size}; "
        f"test accuracy {test['accuracy']:.4f}, balanced {test['balanced_accuracy']:.4f}.\n"
    )
    best_summary = {
        "arch": best.arch,
        "batch_size": best.batch_size,
        "test_accuracy": test["accuracy"],
        "test_balanced_accuracy": test["balanced_accuracy"],
    }
    return Summary({"runs": runs, "best": best_summary, "best_test": test}, md)


def _checked(config: CnnConfig) -> CnnConfig:
    # Bad data or settings, or for --resume other data than the run's, fail here.
    return with_data_sha256(config, max(config.batch_sizes))


def lines(config: CnnConfig, summary: Summary) -> list[str]:
    return [summary.markdown]


STUDY = Study(
    trials,
    run_trial,
    CnnResult,
    summarize,
    lines,
    prepare=_checked,
)
