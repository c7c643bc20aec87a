"""`dlclassics tune mnist-cnn|lm`: a search over given ranges with Optuna's default sampler (TPE).

Each Optuna trial is one run of the existing trial code (`mnist.cnn.run_trial`,
`lm.experiment.run_trial`) on settings the sampler picks, for a fixed budget of epochs, in
trials/<number>/ of the run directory. Every validation check the loop makes anyway (a CNN's every
`eval_every` iterations, a language model's at each epoch's end) is reported to the study, and a
median pruner stops the trials that do worse than the median of earlier trials at the same check.

The study lives in `--storage` (an SQLite file in the run directory by default), so a search can
be watched live with optuna-dashboard, and more processes started on the same storage share it.
Optuna is imported only when a search runs: the one-process commands never need it.
"""

import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dlclassics.core.machine import Machine
from dlclassics.core.rundir import RunDir
from dlclassics.core.tables import fmt, table
from dlclassics.lm import experiment as lm_experiment
from dlclassics.lm.config import LmTrainConfig
from dlclassics.lm.corpus import default_corpus
from dlclassics.lm.experiment import LmTrial
from dlclassics.mnist import cnn as cnn_study
from dlclassics.mnist.cnn import CnnTrial
from dlclassics.mnist.config import DROPOUT_ARCH, CnnConfig, MnistConfig
from dlclassics.mnist.experiment import load_data as load_images
from dlclassics.options import make_config
from dlclassics.scale import Scale
from dlclassics.tune.config import PER_PROCESS, CnnSearch, LmSearch, SearchConfig

if TYPE_CHECKING:
    import optuna


def _pruning(trial: "optuna.Trial") -> Callable[[int, float], None]:
    """Report a check's value to the study; stop the trial when the pruner says so."""
    import optuna

    def report(check: int, value: float) -> None:
        trial.report(value, check)
        if trial.should_prune():
            raise optuna.TrialPruned(f"pruned at check {check}")

    return report


def _cnn_objective(
    config: CnnSearch, root: Path, quiet: bool, machine: Machine
) -> Callable[..., float]:
    def objective(trial: "optuna.Trial") -> float:
        arch = trial.suggest_categorical("arch", config.archs)
        lr = trial.suggest_float("lr", *config.lr, log=True)
        batch_size = trial.suggest_categorical("batch_size", config.batch_sizes)
        dropout = (
            trial.suggest_float("dropout", *config.dropout)
            if arch == DROPOUT_ARCH
            else CnnConfig.dropout
        )
        # The search's data, machine and seed, and the sampled settings; the budget, not a
        # target, ends a trial.
        cnn = make_config(
            CnnConfig,
            asdict(config),
            lr=lr,
            archs=(arch,),
            batch_sizes=(batch_size,),
            dropout=dropout,
            target_accuracy=1.0,
            max_epochs=config.epochs,
        )
        result = cnn_study.run_trial(
            cnn,
            CnnTrial(arch, batch_size),
            RunDir(root).trial(str(trial.number)),
            quiet,
            machine,
            on_eval=_pruning(trial),
        )
        return result.val_balanced_accuracy  # of the kept weights, the most accurate check's

    return objective


def lm_config(config: LmSearch, **sampled: Any) -> LmTrainConfig:
    """The `lm train` config of one trial: the search's corpus, sizes, budget, machine and seed,
    and the `sampled` settings (which must give each field the search holds a range of)."""
    return make_config(LmTrainConfig, asdict(config), **sampled)


def _lm_objective(
    config: LmSearch, root: Path, quiet: bool, machine: Machine
) -> Callable[..., float]:
    def objective(trial: "optuna.Trial") -> float:
        lm = lm_config(
            config,
            lr=trial.suggest_float("lr", *config.lr, log=True),
            embedding_size=trial.suggest_categorical("embedding_size", config.embedding_sizes),
            hidden_size=trial.suggest_categorical("hidden_size", config.hidden_sizes),
            layers=trial.suggest_categorical("layers", config.layers),
        )
        trial_folder = RunDir(root).trial(str(trial.number))
        lm_trial = LmTrial(lm.layers, lm.direction)
        result = lm_experiment.run_trial(
            lm, lm_trial, trial_folder, quiet, machine, on_eval=_pruning(trial)
        )
        return result.perplexity["val"]

    return objective


def _check_cnn(config: CnnSearch) -> CnnSearch:
    """The data readable, with images enough for the largest batch."""
    load_images(MnistConfig(config.dataset, config.data_dir), max(config.batch_sizes))
    return config


def _check_lm(config: LmSearch) -> LmSearch:
    """On its corpus (the default one downloaded now), and the largest model of the ranges
    within this machine's memory."""
    if config.corpus is None:
        config = replace(config, corpus=str(default_corpus().resolve()))
    largest = lm_config(
        config,
        lr=config.lr[0],
        embedding_size=max(config.embedding_sizes),
        hidden_size=max(config.hidden_sizes),
        layers=max(config.layers),
    )
    lm_experiment.check_cost(
        largest, lm_experiment.load_data(largest), lm_experiment.train_trials(largest)
    )
    return config


@dataclass(frozen=True)
class Target:
    """What `tune` searches for one command: its objective, metric and direction, and the checks
    its settings pass before the run directory exists (`prepare`)."""

    command: str
    metric: str
    direction: str  # "maximize" or "minimize"
    objective: Callable[[Any, Path, bool, Machine], Callable[..., float]]
    prepare: Callable[[Any], Any]


TARGETS = {
    CnnSearch: Target(
        "tune mnist-cnn", "val_balanced_accuracy", "maximize", _cnn_objective, _check_cnn
    ),
    LmSearch: Target("tune lm", "val_perplexity", "minimize", _lm_objective, _check_lm),
}


def best_line(results: dict[str, Any], target: Target) -> str:
    """The search's best trial, in words."""
    best = results.get("best")
    if best is None:
        return "no trial completed"
    settings = ", ".join(f"{k}={fmt(v)}" for k, v in best["params"].items())
    return f"best: trial {best['number']}, {target.metric} {best['value']:.4f} ({settings})"


def search(
    config: SearchConfig,
    run: RunDir,
    quiet: bool,
    storage: str | None,
    name: str | None,
    machine: Machine,
) -> dict[str, Any]:
    """Run the search into `run` on `machine`, on the study `name` in the database `storage` (by
    default the command's, in an SQLite file in the run directory; a study already there is
    continued), and write its results and plots; the results."""
    import optuna

    from dlclassics import workers

    target = TARGETS[type(config)]
    optuna.logging.set_verbosity(optuna.logging.WARNING if quiet else optuna.logging.INFO)
    scale = Scale(storage, name)
    url, name = scale.url(run.path), scale.name(target.command)
    database = workers.open_storage(url)
    sampler = optuna.samplers.TPESampler(seed=config.seed)
    pruner = optuna.pruners.MedianPruner(config.startup_trials, config.warmup_checks)
    same = workers.identity(target.command, config, ignored=PER_PROCESS)
    try:
        study = optuna.create_study(
            study_name=name,
            storage=database,
            direction=target.direction,
            sampler=sampler,
            pruner=pruner,
        )
        study.set_user_attr(workers.STUDY, same)
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=name, storage=database, sampler=sampler, pruner=pruner)
        workers.check_identity(study, name, same)
    objective = target.objective(config, run.path, quiet, machine)
    study.optimize(objective, n_trials=config.n_trials, timeout=config.timeout)
    plots(study, run)
    results, markdown = summary(study, target)
    run.save_results(results, markdown)  # results.json last: the marker of a finished run
    return results


def summary(study: "optuna.Study", target: Target) -> tuple[dict[str, Any], str]:
    from optuna.trial import TrialState

    trials = [
        {
            "number": t.number,
            "state": t.state.name.lower(),
            "value": t.value,
            "checks": len(t.intermediate_values),
            "seconds": t.duration.total_seconds() if t.duration else None,
            "params": t.params,
        }
        for t in study.trials
    ]
    counts = {s.name.lower(): sum(t.state == s for t in study.trials) for s in TrialState}
    results: dict[str, Any] = {"metric": target.metric, "direction": target.direction}
    md = f"# {target.command}\n\n{target.direction.capitalize()} {target.metric}.\n\n"
    md += ", ".join(f"{n} {s}" for s, n in counts.items() if n) + " trials.\n\n"
    if counts["complete"]:
        best = study.best_trial
        results["best"] = {"number": best.number, "value": best.value, "params": best.params}
        settings = ", ".join(f"{k}={fmt(v)}" for k, v in best.params.items())
        md += f"Best: trial {best.number}, {target.metric} {best.value:.4f} ({settings}).\n\n"
    names = sorted({k for t in trials for k in t["params"]})
    rows = [dict.fromkeys(names) | t | t["params"] for t in trials]  # "-" where not sampled
    columns = {"trial": "number", "state": "state", target.metric: "value", "checks": "checks"}
    md += "## Trials\n\n" + table(rows, columns | {name: name for name in names})
    return results | {"counts": counts, "trials": trials}, md


def plots(study: "optuna.Study", run: RunDir) -> None:
    """Optuna's optimisation history and, from two completed trials on, parameter importances."""
    import optuna
    from optuna.visualization import matplotlib as optuna_plots

    from dlclassics.core.plots import save_figure

    with warnings.catch_warnings():
        # Experimental-API notices, and the importance evaluator's about a few trials per value.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.simplefilter("ignore", UserWarning)
        ax = optuna_plots.plot_optimization_history(study)
        save_figure(ax.figure, run.plots / "optimization_history.png")
        complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
        if len(complete) >= 2 and any(len(t.distributions) for t in complete):
            ax = optuna_plots.plot_param_importances(study)
            save_figure(ax.figure, run.plots / "param_importances.png")
