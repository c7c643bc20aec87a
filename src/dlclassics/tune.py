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

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import click

from dlclassics import distributed
from dlclassics.bounds import LR, POSITIVE, SEED, Device, Int, Items, Real, Rules, validate
from dlclassics.errors import InputError
from dlclassics.lm.corpus import default_corpus
from dlclassics.lm.experiment import LmConfig, LmTrial, TrainConfig, check_cost
from dlclassics.lm.experiment import load_data as load_corpus
from dlclassics.lm.experiment import run_trial as run_lm_trial
from dlclassics.mnist.cnn import CnnConfig, CnnTrial
from dlclassics.mnist.cnn import run_trial as run_cnn_trial
from dlclassics.mnist.experiment import MnistConfig
from dlclassics.mnist.experiment import load_data as load_images
from dlclassics.mnist.models import CNN_ARCHS
from dlclassics.options import (
    absolute,
    absolute_callback,
    bf16_option,
    config_option,
    device_config_option,
    make_config,
    run_options,
    storage_option,
)
from dlclassics.report import fmt, table
from dlclassics.rundir import RunDir, open_run
from dlclassics.runtime import resolve_bf16
from dlclassics.study import TRIALS

if TYPE_CHECKING:
    import optuna

EMBEDDED = "study.db"  # the default storage, in the run directory
DROPOUT_ARCH = "double_conv_dropout"  # the one CNN whose dropout rate is searched
# What each process sharing a search may set for itself, as it does the machine's device and
# bf16: its count of trials, its time, its pruner, and its seed (so that the processes do not
# all sample the same settings). The rest (data, epochs, ranges) must be the study's.
PER_PROCESS = ("n_trials", "timeout", "startup_trials", "warmup_checks", "seed")


@dataclass(frozen=True)
class Range(Items):
    """low,high: two values, each checked by `item`, low no greater than high."""

    most: int = 2

    def check(self, name: str, value: Any) -> None:
        if len(value) != 2 or value[0] > value[1]:
            shown = ",".join(str(v) for v in value)
            raise InputError(f"{name} takes a range, low,high; got {shown}")
        super().check(name, value)


@dataclass(frozen=True)
class SearchConfig:
    """What every search has: its budget, its pruner and where it runs."""

    epochs: int = 2  # each trial's budget
    n_trials: int = 20
    timeout: float | None = None  # seconds; stop starting trials after this
    # The median pruner prunes nothing before this many trials completed, nor before a trial's
    # `warmup_checks`-th validation check.
    startup_trials: int = 5
    warmup_checks: int = 1
    device: str = MnistConfig.device
    bf16: bool | None = None
    seed: int = 0

    RULES: ClassVar[Rules] = {
        "epochs": Int(1, 10_000),
        "n_trials": Int(1, 10_000),
        "timeout": POSITIVE,
        "startup_trials": Int(0, 10_000),
        "warmup_checks": Int(0, 10**6),
        "device": Device(),
        "seed": SEED,
    }

    def __post_init__(self) -> None:
        validate(self)


@dataclass(frozen=True)
class CnnSearch(SearchConfig):
    """`tune mnist-cnn`: maximise balanced validation accuracy."""

    dataset: str = MnistConfig.dataset
    data_dir: str = MnistConfig.data_dir
    archs: tuple[str, ...] = CNN_ARCHS
    lr: tuple[float, ...] = (1e-4, 1e-2)  # searched on a log scale
    batch_sizes: tuple[int, ...] = (50, 100, 200)
    dropout: tuple[float, ...] = (0.0, 0.7)  # double_conv_dropout's rate
    eval_every: int = CnnConfig.eval_every

    RULES: ClassVar[Rules] = SearchConfig.RULES | {
        "dataset": MnistConfig.RULES["dataset"],
        "archs": CnnConfig.RULES["archs"],
        "lr": Range(LR),
        "batch_sizes": CnnConfig.RULES["batch_sizes"],
        "dropout": Range(Real(0, 1)),
        "eval_every": CnnConfig.RULES["eval_every"],
    }


@dataclass(frozen=True)
class LmSearch(SearchConfig):
    """`tune lm`: minimise validation perplexity."""

    corpus: str | None = LmConfig.corpus
    vocab_size: int = LmConfig.vocab_size
    batch_size: int = LmConfig.batch_size
    lr: tuple[float, ...] = (1e-4, 1e-2)  # searched on a log scale
    embedding_sizes: tuple[int, ...] = (100, 200, 300)
    hidden_sizes: tuple[int, ...] = (128, 256, 512)
    layers: tuple[int, ...] = (1, 2)

    RULES: ClassVar[Rules] = SearchConfig.RULES | {
        "vocab_size": LmConfig.RULES["vocab_size"],
        "batch_size": LmConfig.RULES["batch_size"],
        "lr": Range(LR),
        "embedding_sizes": Items(LmConfig.RULES["embedding_size"], 10),
        "hidden_sizes": Items(LmConfig.RULES["hidden_size"], 10),
        "layers": Items(TrainConfig.RULES["layers"], 2),
    }


def _pruning(trial: "optuna.Trial") -> Callable[[int, float], None]:
    """Report a check's value to the study; stop the trial when the pruner says so."""
    import optuna

    def report(check: int, value: float) -> None:
        trial.report(value, check)
        if trial.should_prune():
            raise optuna.TrialPruned(f"pruned at check {check}")

    return report


def _cnn_objective(config: CnnSearch, root: Path, quiet: bool) -> Callable[..., float]:
    def objective(trial: "optuna.Trial") -> float:
        arch = trial.suggest_categorical("arch", config.archs)
        lr = trial.suggest_float("lr", *config.lr, log=True)
        batch_size = trial.suggest_categorical("batch_size", config.batch_sizes)
        dropout = trial.suggest_float("dropout", *config.dropout) if arch == DROPOUT_ARCH else None
        settings = {
            k: getattr(config, k) for k in ("dataset", "data_dir", "device", "bf16", "seed")
        }
        cnn = CnnConfig(
            **settings,
            lr=lr,
            archs=(arch,),
            batch_sizes=(batch_size,),
            target_accuracy=1.0,  # the budget, not a target, ends a trial
            max_epochs=config.epochs,
            eval_every=config.eval_every,
        )
        report = _pruning(trial)
        result = run_cnn_trial(
            cnn,
            CnnTrial(arch, batch_size),
            root / TRIALS / str(trial.number),
            quiet,
            dropout=dropout,
            # Reported by the check's number (the last may come early, at the budget's end).
            on_check=lambda check: report(
                math.ceil(check.iteration / config.eval_every), check.val_balanced_accuracy
            ),
        )
        return result.val_balanced_accuracy  # of the kept weights, the most accurate check's

    return objective


def _lm_objective(config: LmSearch, root: Path, quiet: bool) -> Callable[..., float]:
    def objective(trial: "optuna.Trial") -> float:
        lm = TrainConfig(
            corpus=config.corpus,
            vocab_size=config.vocab_size,
            batch_size=config.batch_size,
            epochs=config.epochs,
            lr=trial.suggest_float("lr", *config.lr, log=True),
            embedding_size=trial.suggest_categorical("embedding_size", config.embedding_sizes),
            hidden_size=trial.suggest_categorical("hidden_size", config.hidden_sizes),
            layers=trial.suggest_categorical("layers", config.layers),
            device=config.device,
            bf16=config.bf16,
            seed=config.seed,
        )
        trial_folder = root / TRIALS / str(trial.number)
        lm_trial = LmTrial(lm.layers, lm.direction)
        result = run_lm_trial(lm, lm_trial, trial_folder, quiet, on_epoch=_pruning(trial))
        return result.perplexity["val"]

    return objective


@dataclass(frozen=True)
class Target:
    """What `tune` searches for one command: its objective, metric and direction."""

    command: str
    metric: str
    direction: str  # "maximize" or "minimize"
    objective: Callable[[Any, Path, bool], Callable[..., float]]


TARGETS = {
    CnnSearch: Target("tune mnist-cnn", "val_balanced_accuracy", "maximize", _cnn_objective),
    LmSearch: Target("tune lm", "val_perplexity", "minimize", _lm_objective),
}


def search(
    config: SearchConfig, run: RunDir, quiet: bool, storage: str | None, name: str | None
) -> dict[str, Any]:
    """Run the search into `run`, on the study `name` in the database `storage` (by default the
    command's, in an SQLite file in the run directory; a study already there is continued), and
    write its results and plots; the results."""
    import optuna

    from dlclassics import workers

    target = TARGETS[type(config)]
    optuna.logging.set_verbosity(optuna.logging.WARNING if quiet else optuna.logging.INFO)
    url = storage or f"sqlite:///{(run.path / EMBEDDED).resolve()}"
    name = name or target.command.replace(" ", "-")
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
    objective = target.objective(config, run.path, quiet)
    study.optimize(objective, n_trials=config.n_trials, timeout=config.timeout)
    _plots(study, run)
    results, markdown = _summary(study, target)
    run.save_results(results, markdown)  # results.json last: the marker of a finished run
    return results


def _summary(study: "optuna.Study", target: Target) -> tuple[dict[str, Any], str]:
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


def _plots(study: "optuna.Study", run: RunDir) -> None:
    """Optuna's optimisation history and, from two completed trials on, parameter importances."""
    import optuna
    from optuna.visualization import matplotlib as optuna_plots

    from dlclassics.plotting import save_figure

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


def _search_options(config_type: type[SearchConfig]) -> Callable[..., Any]:
    """The options every search takes: budget, pruner, storage, device and run options."""
    options = [
        config_option(config_type, "epochs", help="Each trial's budget."),
        config_option(config_type, "n_trials", help="Trials to run."),
        config_option(config_type, "timeout", help="Start no trial after this many seconds."),
        storage_option(
            "The study's database URL, shared by every process started on it "
            "(default: sqlite in the run directory)."
        ),
        click.option("--study-name", help="The study's name in --storage (default: the command)."),
        config_option(
            config_type, "startup_trials", help="Prune nothing until this many trials completed."
        ),
        config_option(
            config_type,
            "warmup_checks",
            help="Prune no trial before its this-many-th validation check.",
        ),
        bf16_option(config_type),
        device_config_option(config_type),
        run_options(config_type),
    ]

    def decorate(f: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            f = option(f)
        return f

    return decorate


def _run(config: SearchConfig, out: Path | None, quiet: bool, **study: str | None) -> None:
    """Check the settings, search (`study`: storage and name) in the run directory and say what
    was best."""
    command = TARGETS[type(config)].command
    with open_run(out, command, config) as run:
        results = search(config, run, quiet, study["storage"], study["study_name"])
    best = results.get("best")
    click.echo(f"best: {best}" if best else "no trial completed")
    click.echo(f"wrote {run.path}")


def _device(params: dict[str, Any], smallest_batch: int) -> dict[str, Any]:
    device = distributed.start(params["device"], smallest_batch)
    return {"device": str(device), "bf16": resolve_bf16(params["bf16"], device)}


@click.group()
def tune() -> None:
    """Search settings with Optuna (TPE, median pruning); needs the `scale` extra."""


@tune.command("mnist-cnn")
@config_option(CnnSearch, "archs", help="Architectures to choose from.")
@config_option(CnnSearch, "lr", help="low,high (log).")
@config_option(CnnSearch, "batch_sizes", help="Batch sizes to try.")
@config_option(CnnSearch, "dropout", help=f"low,high: {DROPOUT_ARCH}'s dropout rate.")
@config_option(CnnSearch, "eval_every", help="Iterations between checks.")
@config_option(CnnSearch, "dataset")
@config_option(
    CnnSearch,
    "data_dir",
    type=click.Path(file_okay=False),
    callback=absolute_callback,
    show_default=False,
    help="Folder of the four IDX files (default: downloaded and cached).",
)
@_search_options(CnnSearch)
def mnist_cnn(
    out: Path | None, quiet: bool, storage: str | None, study_name: str | None, **params: Any
) -> None:
    """The three CNNs, learning rate, batch size and dropout, for balanced validation accuracy."""
    config = make_config(CnnSearch, params, **_device(params, min(params["batch_sizes"])))
    load_images(MnistConfig(config.dataset, config.data_dir), max(config.batch_sizes))
    _run(config, out, quiet, storage=storage, study_name=study_name)


@tune.command("lm")
@config_option(
    LmSearch,
    "corpus",
    type=click.Path(path_type=Path, dir_okay=False),
    help="UTF-8 text, one sentence per line (default: Simple English Wikipedia, downloaded once).",
)
@config_option(LmSearch, "vocab_size")
@config_option(LmSearch, "batch_size")
@config_option(LmSearch, "lr", help="low,high (log).")
@config_option(LmSearch, "embedding_sizes")
@config_option(LmSearch, "hidden_sizes")
@config_option(LmSearch, "layers", help="Layer counts.")
@_search_options(LmSearch)
def lm(
    out: Path | None, quiet: bool, storage: str | None, study_name: str | None, **params: Any
) -> None:
    """Learning rate, embedding and hidden sizes and layers, for validation perplexity."""
    corpus = absolute(params["corpus"] or default_corpus())
    config = make_config(LmSearch, params, corpus=corpus, **_device(params, params["batch_size"]))
    # The largest model of the ranges must fit, checked before any trial starts.
    largest = TrainConfig(
        corpus=config.corpus,
        vocab_size=config.vocab_size,
        batch_size=config.batch_size,
        embedding_size=max(config.embedding_sizes),
        hidden_size=max(config.hidden_sizes),
        layers=max(config.layers),
        seed=config.seed,
    )
    check_cost(largest, load_corpus(largest))
    _run(config, out, quiet, storage=storage, study_name=study_name)
