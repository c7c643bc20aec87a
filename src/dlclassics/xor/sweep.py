"""`xor sweep`: the hyperparameter study, learning rate x hidden units x bypass.

Every configuration gets `max_runs` candidate runs, and all of them train together as one batch
(`batched.py`): that is what makes the study fast, so the study is one trial, `study`. Its result
holds each run's figures; `summarize` then applies the one-after-another protocol ("until N
successes or M runs") to them, and reads the lone hidden units from the trial's checkpoint.
"""

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from dlclassics.core.checkpoint import find_checkpoint, load_checkpoint, save_checkpoint
from dlclassics.core.errors import InputError, diverged
from dlclassics.core.logs import tensorboard
from dlclassics.core.machine import seed_everything
from dlclassics.core.rundir import CHECKPOINT, RunDir
from dlclassics.core.tables import table
from dlclassics.protocol import Study, Summary
from dlclassics.study import trial_dir
from dlclassics.xor import plots
from dlclassics.xor.analysis import count_functions
from dlclassics.xor.batched import Weights, train_batched, xavier_init
from dlclassics.xor.config import GridPoint, SweepConfig, grid
from dlclassics.xor.fused import load_epochs


@dataclass(frozen=True)
class StudyTrial:
    """The whole study: one batch."""

    @property
    def name(self) -> str:
        return "study"


@dataclass(frozen=True)
class StudyResult:
    """Per candidate run (grid point by grid point, `max_runs` each): whether it met the
    stopping rule, its last epoch and its losses there; and the training time."""

    seconds: float
    succeeded: list[bool]
    epochs: list[int]
    train_loss: list[float]
    val_loss: list[float]


def trials(config: SweepConfig) -> list[StudyTrial]:
    return [StudyTrial()]


def run_trial(
    config: SweepConfig, trial: StudyTrial, directory: Path, quiet: bool = False
) -> StudyResult:
    """Train every candidate run of every grid point at once; save their final weights."""
    points = grid(config)
    candidates = [p for p in points for _ in range(config.max_runs)]
    init = xavier_init(candidates, seed_everything(config.seed))
    load_epochs()  # its one-time build (on a machine's first study) is not training time
    with tensorboard(directory) as log:
        start = time.perf_counter()
        runs = train_batched(candidates, init, config, quiet=quiet, log=log)
        seconds = time.perf_counter() - start
    # Before the checkpoint and result.json: NaN is no JSON. The validation points include the
    # training ones, so the validation loss is finite only where both are.
    failed = (~runs.val_loss.isfinite()).nonzero()
    if len(failed):
        r = int(failed[0])
        raise diverged(int(runs.epochs[r]), float(runs.val_loss[r]), "--lrs")
    model_args = {"grid": [asdict(p) for p in points], "max_runs": config.max_runs}
    save_checkpoint(directory / CHECKPOINT, runs.weights, model_args, asdict(config))
    return StudyResult(
        seconds,
        runs.succeeded.tolist(),
        runs.epochs.tolist(),
        runs.train_loss.tolist(),
        runs.val_loss.tolist(),
    )


def load_weights(path: Path) -> Weights:
    """The final weights of every run of an `xor sweep` (its checkpoint, trial or run folder)."""
    path = find_checkpoint(path)
    try:
        return Weights(**load_checkpoint(path)["model"])
    except TypeError as e:
        raise InputError(f"{path} is not an xor sweep checkpoint") from e


def runs_used(succeeded: list[bool], successes: int) -> int:
    """How many runs the one-after-another protocol makes: it stops at the N-th success."""
    count = 0
    for i, ok in enumerate(succeeded):
        count += ok
        if count == successes:
            return i + 1
    return len(succeeded)


def protocol_runs(config: SweepConfig, result: StudyResult) -> list[list[int]]:
    """Per grid point, the indices of the candidate runs the protocol makes."""
    used = []
    for k in range(len(grid(config))):
        candidates = list(range(k * config.max_runs, (k + 1) * config.max_runs))
        succeeded = [result.succeeded[i] for i in candidates]
        used.append(candidates[: runs_used(succeeded, config.successes)])
    return used


def run_epochs(config: SweepConfig, result: StudyResult) -> int:
    """The epochs the one-after-another protocol trains, over all its runs."""
    return sum(
        result.epochs[i] if result.succeeded[i] else config.max_epochs
        for used in protocol_runs(config, result)
        for i in used
    )


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def _point_summary(point: GridPoint, result: StudyResult, used: list[int]) -> dict:
    ok = [i for i in used if result.succeeded[i]]
    epochs = [result.epochs[i] for i in ok]
    return asdict(point) | {
        "runs": len(used),
        "successes": len(ok),
        "failures": len(used) - len(ok),
        "epochs": epochs,
        "mean_epochs": _mean(epochs),
        "std_epochs": float(np.std(epochs)) if epochs else None,
        "mean_train_loss": _mean([result.train_loss[i] for i in ok]),
        "mean_val_loss": _mean([result.val_loss[i] for i in ok]),
    }


def _lone_unit(point: GridPoint, result: StudyResult, used: list[int], weights: Weights) -> dict:
    """What the one hidden unit of the successful runs of `point` computes."""
    units = [
        (weights.hidden[:2, 0, i], float(weights.hidden[2, 0, i]))
        for i in used
        if result.succeeded[i]
    ]
    return {
        "lr": point.lr,
        "bypass": point.bypass,
        "functions": count_functions(units),
        "units": [{"weight": w.tolist(), "bias": b} for w, b in units],
    }


COLUMNS = {
    "lr": "lr",
    "hidden": "hidden",
    "bypass": "bypass",
    "successes": "successes",
    "failures": "failures",
    "mean epochs": "mean_epochs",
    "std epochs": "std_epochs",
    "mean train loss": "mean_train_loss",
    "mean val loss": "mean_val_loss",
}


def summarize(config: SweepConfig, results: list[StudyResult], run: RunDir) -> Summary:
    """The per-configuration table, the lone-hidden-unit analysis and the plots."""
    (result,) = results
    weights = load_weights(trial_dir(run.path, StudyTrial()))
    points, used = grid(config), protocol_runs(config, result)
    configs = [_point_summary(p, result, u) for p, u in zip(points, used, strict=True)]
    hidden_units = [
        _lone_unit(p, result, u, weights)
        for p, u in zip(points, used, strict=True)
        if p.hidden == 1
    ]
    total = run_epochs(config, result)
    md = "# XOR hyperparameter study\n\n" + table(configs, COLUMNS)
    md += (
        f"\n{total:,} run-epochs in {result.seconds:.2f} s "
        f"({total / result.seconds:,.0f} run-epochs/s).\n"
    )
    plots.sweep_plots(configs, run.plots)
    for analysis in hidden_units:
        md += f"\n## Lone hidden unit (lr {analysis['lr']}, bypass {analysis['bypass']})\n\n"
        rows = [{"function": f, "runs": n} for f, n in analysis["functions"].items()]
        md += table(rows, {"function": "function", "runs": "runs"})
        tag = "bypass" if analysis["bypass"] else "plain"
        plots.separating_lines(analysis["units"], run.plots / f"hidden_unit_lines_{tag}.png")
    results_json = {"seconds": result.seconds, "run_epochs": total, "configs": configs}
    return Summary(results_json | {"hidden_unit": hidden_units}, md)


def lines(config: SweepConfig, summary: Summary) -> list[str]:
    return [summary.markdown]


STUDY = Study(trials, run_trial, StudyResult, summarize, lines)
