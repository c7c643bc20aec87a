"""`dlclassics xor solve|train|sweep`."""

import json
from pathlib import Path
from typing import Any

import click

from dlclassics.options import config_option, make_config, run_options, scale_options
from dlclassics.rundir import open_run
from dlclassics.study import Experiment, Summary, run_study
from dlclassics.xor import solve, sweep, train
from dlclassics.xor.model import net_name
from dlclassics.xor.solve import SolveConfig
from dlclassics.xor.sweep import SweepConfig
from dlclassics.xor.train import TrainConfig


@click.group()
def xor() -> None:
    """XOR with BTU networks: hand-set weights, training, and the hyperparameter study."""


@xor.command(name="solve")
@config_option(SolveConfig, "temperature")
@config_option(
    SolveConfig,
    "weights_file",
    "--weights",
    type=click.Path(dir_okay=False),
    help="JSON list of networks to check instead of the built-in hand-set ones.",
)
@run_options(SolveConfig)
@scale_options
def solve_cmd(**params: Any) -> None:
    """Hand-set weights that solve XOR for k=1 with bypass, k=2 and k=4."""
    path, summary = _run(solve.EXPERIMENT, params)
    for r in summary.results["configs"]:
        outputs = [round(o, 4) for o in r["outputs"]]
        click.echo(f"{net_name(r['k'], r['bypass'])}: loss {r['loss']:.4g}, outputs {outputs}")
        click.echo(f"  weights {json.dumps(r['weights'])}")
    click.echo(f"wrote {path}")


@xor.command(name="train")
@config_option(TrainConfig, "temperature")
@config_option(TrainConfig, "epochs")
@config_option(TrainConfig, "lr")
@run_options(TrainConfig)
@scale_options
def train_cmd(**params: Any) -> None:
    """Train k=1 (bypass), k=2 and k=4 with Adam and binary cross-entropy."""
    path, summary = _run(train.EXPERIMENT, params)
    for r in [] if params["quiet"] else summary.results["configs"]:
        name, loss = net_name(r["k"], r["bypass"]), r["final_loss"]
        click.echo(f"{name}: final loss {loss:.4g}, learned XOR: {r['learned_xor']}")
    click.echo(f"wrote {path}")


@xor.command(name="sweep")
@config_option(SweepConfig, "lrs", help="Learning rates of the grid.")
@config_option(
    SweepConfig,
    "hiddens",
    "--hidden",
    help="Hidden-layer widths of the grid (each with and without bypass).",
)
@config_option(
    SweepConfig,
    "extra",
    "--extra/--no-extra",
    help="Add the original's extra configuration: lr 0.25, 1 hidden unit, bypass.",
)
@config_option(SweepConfig, "max_epochs")
@config_option(SweepConfig, "patience")
@config_option(SweepConfig, "min_delta")
@config_option(
    SweepConfig, "goal", help="A run succeeds only if its best validation loss is below this."
)
@config_option(SweepConfig, "successes")
@config_option(SweepConfig, "max_runs")
@run_options(SweepConfig)
@scale_options
def sweep_cmd(**params: Any) -> None:
    """The hyperparameter study: lr x hidden x bypass, all runs trained as one batch."""
    path, summary = _run(sweep.EXPERIMENT, params)
    seconds = summary.results["seconds"]
    click.echo(summary.markdown if not params["quiet"] else f"study done in {seconds:.2f} s")
    click.echo(f"wrote {path}")


def _run(experiment: Experiment, params: dict[str, Any]) -> tuple[Path, Summary]:
    """The study run with a command's options (`params`): its run directory and summary."""
    config = make_config(experiment.config_type, params)
    experiment.trials(config)  # a bad --weights file fails here, before the run directory
    with open_run(params["out"], experiment.command, config) as run:
        summary = run_study(experiment, config, run, params["quiet"], params["scale"])
    if summary is None:
        raise click.exceptions.Exit(0)  # a torchrun rank but 0: rank 0 summarises
    return run.path, summary
