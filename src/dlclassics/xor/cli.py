"""`dlclassics xor solve|train|sweep`."""

import json
from pathlib import Path
from typing import Any

import click

from dlclassics.options import (
    NONNEGATIVE_FLOAT,
    POSITIVE_FLOAT,
    POSITIVE_INT,
    config_option,
    make_config,
    positive_list,
    run_options,
)
from dlclassics.rundir import open_run
from dlclassics.study import run_trials
from dlclassics.xor import solve, sweep, train
from dlclassics.xor.model import net_name
from dlclassics.xor.solve import SolveConfig, SolveResult
from dlclassics.xor.sweep import StudyResult, SweepConfig
from dlclassics.xor.train import TrainConfig, TrainResult


@click.group()
def xor() -> None:
    """XOR with BTU networks: hand-set weights, training, and the hyperparameter study."""


@xor.command(name="solve")
@config_option(SolveConfig, "temperature", type=POSITIVE_FLOAT)
@config_option(
    SolveConfig,
    "weights_file",
    "--weights",
    type=click.Path(dir_okay=False),
    help="JSON list of networks to check instead of the built-in hand-set ones.",
)
@run_options(SolveConfig)
def solve_cmd(out: Path | None, quiet: bool, **params: Any) -> None:
    """Hand-set weights that solve XOR for k=1 with bypass, k=2 and k=4."""
    config = make_config(SolveConfig, params)
    trials = solve.trials(config)
    with open_run(out, "xor solve", config) as run:
        results = run_trials(config, trials, solve.run_trial, SolveResult, run.path, quiet=quiet)
        summary = solve.summarize(config, results, run)
        run.save_results(summary.results, summary.markdown)
    for r in results:
        outputs = [round(o, 4) for o in r.outputs]
        click.echo(f"{net_name(r.k, r.bypass)}: loss {r.loss:.4g}, outputs {outputs}")
        click.echo(f"  weights {json.dumps(r.weights)}")
    click.echo(f"wrote {run.path}")


@xor.command(name="train")
@config_option(TrainConfig, "temperature", type=POSITIVE_FLOAT)
@config_option(TrainConfig, "epochs", type=POSITIVE_INT)
@config_option(TrainConfig, "lr", type=POSITIVE_FLOAT)
@run_options(TrainConfig)
def train_cmd(out: Path | None, quiet: bool, **params: Any) -> None:
    """Train k=1 (bypass), k=2 and k=4 with Adam and binary cross-entropy."""
    config = make_config(TrainConfig, params)
    with open_run(out, "xor train", config) as run:
        trials = train.trials(config)
        results = run_trials(config, trials, train.run_trial, TrainResult, run.path, quiet=quiet)
        summary = train.summarize(config, results, run)
        run.save_results(summary.results, summary.markdown)
    if not quiet:
        for r in results:
            name = net_name(r.k, r.bypass)
            click.echo(f"{name}: final loss {r.final_loss:.4g}, learned XOR: {r.learned_xor}")
    click.echo(f"wrote {run.path}")


@xor.command(name="sweep")
@config_option(
    SweepConfig, "lrs", callback=positive_list(POSITIVE_FLOAT), help="Learning rates of the grid."
)
@config_option(
    SweepConfig,
    "hiddens",
    "--hidden",
    callback=positive_list(POSITIVE_INT),
    help="Hidden-layer widths of the grid (each with and without bypass).",
)
@config_option(
    SweepConfig,
    "extra",
    "--extra/--no-extra",
    help="Add the original's extra configuration: lr 0.25, 1 hidden unit, bypass.",
)
@config_option(SweepConfig, "max_epochs", type=POSITIVE_INT)
@config_option(SweepConfig, "patience", type=POSITIVE_INT)
@config_option(SweepConfig, "min_delta", type=NONNEGATIVE_FLOAT)
@config_option(
    SweepConfig,
    "goal",
    type=POSITIVE_FLOAT,
    help="A run succeeds only if its best validation loss is below this.",
)
@config_option(SweepConfig, "successes", type=POSITIVE_INT)
@config_option(SweepConfig, "max_runs", type=POSITIVE_INT)
@run_options(SweepConfig)
def sweep_cmd(out: Path | None, quiet: bool, **params: Any) -> None:
    """The hyperparameter study: lr x hidden x bypass, all runs trained as one batch."""
    config = make_config(SweepConfig, params)
    with open_run(out, "xor sweep", config) as run:
        trials = sweep.trials(config)
        results = run_trials(config, trials, sweep.run_trial, StudyResult, run.path, quiet=quiet)
        summary = sweep.summarize(config, results, run)
        run.save_results(summary.results, summary.markdown)
    seconds = summary.results["seconds"]
    click.echo(summary.markdown if not quiet else f"study done in {seconds:.2f} s")
    click.echo(f"wrote {run.path}")
