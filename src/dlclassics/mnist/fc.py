"""`mnist fc`: logistic regression and a 784-200-200-10 MLP, one trial each."""

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TypedDict

from dlclassics.core.machine import Machine
from dlclassics.core.rundir import RunDir
from dlclassics.core.tables import table
from dlclassics.mnist import plots
from dlclassics.mnist.config import FC_ARCHS, FcConfig
from dlclassics.mnist.data import SOURCES
from dlclassics.mnist.evaluate import SplitMetrics, balanced_accuracy, predict
from dlclassics.mnist.experiment import load_data, train_trial, with_data_sha256
from dlclassics.mnist.figures import evaluate_splits, first_look, model_section
from dlclassics.mnist.models import parameter_count
from dlclassics.protocol import Study, Summary

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class FcTrial:
    arch: str

    @property
    def name(self) -> str:
        return self.arch


class Splits(TypedDict):
    train: SplitMetrics
    val: SplitMetrics
    test: SplitMetrics


class LossCurves(TypedDict):
    """One value per check."""

    epoch: list[float]
    train: list[float]
    val: list[float]


@dataclass(frozen=True)
class FcResult:
    name: str
    parameters: int
    splits: Splits  # `split_metrics` of the kept model
    kept_iteration: int  # that of the most accurate validation check, whose weights are kept
    # The test figures of the weights the last step left: what one step's luck would report.
    last_test_accuracy: float
    last_test_balanced_accuracy: float
    seconds: float
    loss_curves: LossCurves


def trials(config: FcConfig) -> list[FcTrial]:
    return [FcTrial(arch) for arch in FC_ARCHS]


def run_trial(
    config: FcConfig,
    trial: FcTrial,
    directory: Path,
    quiet: bool = False,
    machine: Machine | None = None,
) -> FcResult:
    """Train for `config.iterations` on `machine` (None: this one's default), checking once an
    epoch, and keep the weights of the most accurate check (as `mnist cnn` does): Adam's loss
    spikes can leave the last step's weights much worse than a check before. The metrics of
    every split for the kept weights, and the test metrics of the last step's beside them."""
    per_epoch = len(load_data(config, config.batch_size).train) // config.batch_size
    model, data, result = train_trial(
        config,
        trial,
        config.batch_size,
        directory,
        quiet,
        machine or Machine.here(),
        max_iterations=config.iterations,
        eval_every=per_epoch,
        restore_best=True,
    )
    checks, kept = result.checks, evaluate_splits(model, data)
    model.load_state_dict(result.last_weights)
    preds, _ = predict(model, data.test)
    return FcResult(
        name=trial.name,
        parameters=parameter_count(model),
        splits=kept,
        kept_iteration=result.kept_check.iteration,
        last_test_accuracy=(preds == data.test.labels).float().mean().item(),
        last_test_balanced_accuracy=balanced_accuracy(data.test.labels, preds),
        seconds=result.seconds,
        loss_curves={
            "epoch": [c.epoch for c in checks],
            "train": [c.train_loss for c in checks],
            "val": [c.val_loss for c in checks],
        },
    )


COLUMNS = {"model": "name", "parameters": "parameters", "kept (iteration)": "kept_iteration"}
COLUMNS |= {"train acc": "train", "val acc": "val", "test acc": "test"}
COLUMNS |= {"test balanced acc": "test_balanced", "last step's test acc": "last_test_accuracy"}
COLUMNS |= {"seconds": "seconds"}


def summarize(
    config: FcConfig, results: list[FcResult], run: RunDir, machine: Machine | None = None
) -> Summary:
    """Every model's metrics (results.json), the results table and a report per model."""
    data = load_data(config, config.batch_size)
    md = f"# {SOURCES[config.dataset].title}, fully connected\n\n" + first_look(data, run.plots)
    plots.loss_curves({r.name: r.loss_curves for r in results}, run.plots / "loss_curves.png")
    rows = [
        {k: getattr(r, k) for k in ("name", "parameters", "kept_iteration", "seconds")}
        | {"last_test_accuracy": r.last_test_accuracy}
        | {split: r.splits[split]["accuracy"] for split in SPLITS}
        | {"test_balanced": r.splits["test"]["balanced_accuracy"]}
        for r in results
    ]
    md += "\n## Results\n\n" + table(rows, COLUMNS) + "\n"
    md += "".join(model_section(r.name, r.splits, data.classes, run.plots) for r in results)
    return Summary({"models": [asdict(r) for r in results]}, md)


def _checked(config: FcConfig) -> FcConfig:
    return with_data_sha256(config, config.batch_size)


def lines(config: FcConfig, summary: Summary) -> list[str]:
    return [
        f"{model['name']}: test accuracy {model['splits']['test']['accuracy']:.4f}"
        for model in summary.results["models"]
    ]


STUDY = Study(
    trials,
    run_trial,
    FcResult,
    summarize,
    lines,
    prepare=_checked,
)
