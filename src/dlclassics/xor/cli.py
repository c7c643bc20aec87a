"""`dlclassics xor solve|train|sweep`."""

import json
from pathlib import Path

import click
import torch
from torch.utils.tensorboard import SummaryWriter

from dlclassics.errors import InputError
from dlclassics.options import (
    NONNEGATIVE_FLOAT,
    POSITIVE_FLOAT,
    POSITIVE_INT,
    positive_list,
    run_options,
)
from dlclassics.report import markdown_table
from dlclassics.rundir import open_run
from dlclassics.runtime import seed_everything
from dlclassics.xor import plots
from dlclassics.xor.model import XorNet
from dlclassics.xor.solutions import HAND_WEIGHTS
from dlclassics.xor.study import run_study
from dlclassics.xor.sweep import DEFAULT_GRID, Config, Protocol
from dlclassics.xor.train import learned_xor, sum_squared_error, train, truth_table


@click.group()
def xor() -> None:
    """XOR with BTU networks: hand-set weights, training, and the hyperparameter study."""


def _name(k: int, bypass: bool) -> str:
    return f"k{k}" + ("-bypass" if bypass else "")


def _load_weights(path: Path) -> list[dict]:
    try:
        specs = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"cannot read weights file {path}: {e}") from e
    if not isinstance(specs, list) or not all(isinstance(s, dict) for s in specs):
        raise InputError(f"{path}: expected a JSON list of networks like the built-in ones")
    return specs


def _build(spec: dict, temperature: float) -> XorNet:
    try:
        net = XorNet(int(spec["k"]), bool(spec["bypass"]), temperature)
        net.set_weights(
            spec["hidden_weight"], spec["hidden_bias"], spec["out_weight"], spec["out_bias"]
        )
    except KeyError as e:
        raise InputError(f"network description lacks {e}") from e
    except (TypeError, ValueError) as e:
        raise InputError(f"bad weights for k={spec.get('k')}: {e}") from e
    return net


def _truth_rows(name: str, outputs: list[float]) -> list[list]:
    points = ["(0,0)", "(0,1)", "(1,0)", "(1,1)"]
    return [[name, p, f"{o:.4g}"] for p, o in zip(points, outputs, strict=True)]


@xor.command()
@click.option("--temperature", type=POSITIVE_FLOAT, default=0.001, show_default=True)
@click.option(
    "--weights",
    "weights_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="JSON list of networks to check instead of the built-in hand-set ones.",
)
@run_options
def solve(temperature: float, weights_file: Path | None, out: Path, seed: int, quiet: bool) -> None:
    """Hand-set weights that solve XOR for k=1 with bypass, k=2 and k=4."""
    specs = _load_weights(weights_file) if weights_file else HAND_WEIGHTS
    nets = [_build(spec, temperature) for spec in specs]
    config = {"temperature": temperature, "weights_file": str(weights_file or ""), "seed": seed}
    with open_run(out, "xor solve", config) as run:
        seed_everything(seed)
        results, rows, truth = [], [], []
        with SummaryWriter(run.tensorboard_dir) as tb:
            for net in nets:
                name = _name(net.k, net.bypass)
                outputs, loss = truth_table(net), sum_squared_error(net)
                tb.add_scalar(f"sse/{name}", loss, 0)
                torch.save(net.state_dict(), run.checkpoints / f"{name}.pt")
                results.append(
                    {"k": net.k, "bypass": net.bypass, "loss": loss, "outputs": outputs}
                    | {"weights": net.weights(), "solves_xor": learned_xor(outputs)}
                )
                rows.append([net.k, net.bypass, loss, learned_xor(outputs)])
                truth += _truth_rows(name, outputs)
                click.echo(f"{name}: loss {loss:.4g}, outputs {[round(o, 4) for o in outputs]}")
                click.echo(f"  weights {json.dumps(net.weights())}")
        md = "# XOR by hand\n\n" + markdown_table(["k", "bypass", "SSE loss", "solves XOR"], rows)
        md += "\n## Truth tables\n\n" + markdown_table(["network", "input", "output"], truth)
        run.save_results({"temperature": temperature, "configs": results}, md)
    click.echo(f"wrote {run.path}")


@xor.command(name="train")
@click.option("--temperature", type=POSITIVE_FLOAT, default=0.5, show_default=True)
@click.option("--epochs", type=POSITIVE_INT, default=1000, show_default=True)
@click.option("--lr", type=POSITIVE_FLOAT, default=0.01, show_default=True)
@run_options
def train_cmd(
    temperature: float, epochs: int, lr: float, out: Path, seed: int, quiet: bool
) -> None:
    """Train k=1 (bypass), k=2 and k=4 with Adam and binary cross-entropy."""
    config = {"temperature": temperature, "epochs": epochs, "lr": lr, "seed": seed}
    with open_run(out, "xor train", config) as run:
        generator_seed = seed
        results, curves, rows, truth = [], {}, [], []
        with SummaryWriter(run.tensorboard_dir) as tb:
            for k, bypass in [(1, True), (2, False), (4, False)]:
                seed_everything(generator_seed)
                net = XorNet(k, bypass, temperature)
                name = _name(k, bypass)
                curves[name] = train(net, epochs, lr)
                for epoch, loss in enumerate(curves[name], start=1):
                    tb.add_scalar(f"loss/{name}", loss, epoch)
                torch.save(net.state_dict(), run.checkpoints / f"{name}.pt")
                outputs = truth_table(net)
                ok = learned_xor(outputs)
                results.append(
                    {"k": k, "bypass": bypass, "final_loss": curves[name][-1]}
                    | {"outputs": outputs, "learned_xor": ok, "weights": net.weights()}
                )
                rows.append([k, bypass, curves[name][-1], ok])
                truth += _truth_rows(name, outputs)
                if not quiet:
                    click.echo(f"{name}: final loss {curves[name][-1]:.4g}, learned XOR: {ok}")
        plots.loss_curves(curves, run.plots / "loss_curves.png")
        md = "# XOR trained (Adam, BCE)\n\n"
        md += markdown_table(["k", "bypass", "final loss", "learned XOR"], rows)
        md += "\n## Truth tables\n\n" + markdown_table(["network", "input", "output"], truth)
        run.save_results({"configs": results, "loss_curves": curves}, md)
    click.echo(f"wrote {run.path}")


@xor.command()
@click.option(
    "--lrs",
    default="0.1,0.01",
    show_default=True,
    callback=positive_list(POSITIVE_FLOAT),
    help="Learning rates of the grid.",
)
@click.option(
    "--hidden",
    "hiddens",
    default="2,4",
    show_default=True,
    callback=positive_list(POSITIVE_INT),
    help="Hidden-layer widths of the grid (each with and without bypass).",
)
@click.option(
    "--extra/--no-extra",
    default=True,
    show_default=True,
    help="Add the original's extra configuration: lr 0.25, 1 hidden unit, bypass.",
)
@click.option("--max-epochs", type=POSITIVE_INT, default=40_000, show_default=True)
@click.option("--patience", type=POSITIVE_INT, default=10, show_default=True)
@click.option("--min-delta", type=NONNEGATIVE_FLOAT, default=1e-4, show_default=True)
@click.option(
    "--goal",
    type=POSITIVE_FLOAT,
    default=0.2,
    show_default=True,
    help="A run succeeds only if its best validation loss is below this.",
)
@click.option("--successes", type=POSITIVE_INT, default=10, show_default=True)
@click.option("--max-runs", type=POSITIVE_INT, default=15, show_default=True)
@run_options
def sweep(
    lrs: list[float],
    hiddens: list[int],
    extra: bool,
    max_epochs: int,
    patience: int,
    min_delta: float,
    goal: float,
    successes: int,
    max_runs: int,
    out: Path,
    seed: int,
    quiet: bool,
) -> None:
    """The hyperparameter study: lr x hidden x bypass, all runs trained as one batch."""
    grid = [Config(lr, h, b) for lr in lrs for h in hiddens for b in (False, True)]
    if extra:
        grid.append(DEFAULT_GRID[-1])
    protocol = Protocol(max_epochs, patience, min_delta, goal, successes, max_runs)
    protocol.validate()
    config = {"grid": [vars(c) for c in grid], "protocol": vars(protocol), "seed": seed}
    with open_run(out, "xor sweep", config) as run:
        study = run_study(grid, protocol, seed_everything(seed), quiet=quiet)
        headers = [
            "lr",
            "hidden",
            "bypass",
            "successes",
            "failures",
            "mean epochs",
            "std epochs",
            "mean train loss",
            "mean val loss",
        ]
        keys = [
            "lr",
            "hidden",
            "bypass",
            "successes",
            "failures",
            "mean_epochs",
            "std_epochs",
            "mean_train_loss",
            "mean_val_loss",
        ]
        rows = [[c[k] if c[k] is not None else "-" for k in keys] for c in study.configs]
        md = "# XOR hyperparameter study\n\n" + markdown_table(headers, rows)
        md += (
            f"\n{study.run_epochs:,} run-epochs in {study.seconds:.2f} s "
            f"({study.run_epochs / study.seconds:,.0f} run-epochs/s).\n"
        )
        plots.sweep_plots(study.configs, run.plots)
        with SummaryWriter(run.tensorboard_dir) as tb:
            for c in study.configs:
                if c["mean_epochs"] is not None:
                    tag = f"lr{c['lr']}-h{c['hidden']}-{'bypass' if c['bypass'] else 'plain'}"
                    tb.add_scalar(f"mean_epochs/{tag}", c["mean_epochs"], 0)
        for analysis in study.hidden_units:
            md += f"\n## Lone hidden unit (lr {analysis['lr']}, bypass {analysis['bypass']})\n\n"
            md += markdown_table(["function", "runs"], list(analysis["functions"].items()))
            tag = "bypass" if analysis["bypass"] else "plain"
            plots.separating_lines(analysis["units"], run.plots / f"hidden_unit_lines_{tag}.png")
        results = {
            "seconds": study.seconds,
            "run_epochs": study.run_epochs,
            "configs": study.configs,
            "hidden_unit": study.hidden_units,
        }
        run.save_results(results, md)
    click.echo(md if not quiet else f"study done in {study.seconds:.2f} s")
    click.echo(f"wrote {run.path}")
