"""`dlclassics mnist fc|cnn`."""

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import torch
from torch.utils.tensorboard import SummaryWriter

from dlclassics.errors import InputError
from dlclassics.mnist import data as mnist_data
from dlclassics.mnist import plots
from dlclassics.mnist.evaluate import predict, split_metrics
from dlclassics.mnist.models import CNN_ARCHS, MODEL_FILE, build, parameter_count, save_model
from dlclassics.mnist.report import conv_pictures, evaluate_model, first_look
from dlclassics.mnist.train import Check, Fit, fit, place
from dlclassics.options import (
    POSITIVE_FLOAT,
    POSITIVE_INT,
    FiniteFloatRange,
    bf16_option,
    device_option,
    positive_list,
    run_options,
)
from dlclassics.report import markdown_table
from dlclassics.rundir import open_run
from dlclassics.runtime import resolve_bf16, resolve_device, seed_everything


@click.group()
def mnist() -> None:
    """MNIST (or Fashion-MNIST): logistic regression, an MLP, and small CNNs."""


def data_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option(
        "--dataset",
        type=click.Choice(list(mnist_data.SOURCES)),
        default="mnist",
        show_default=True,
        help="Which dataset: its class names and title, and the files to download when "
        "--data-dir is not given.",
    )(f)
    return click.option(
        "--data-dir",
        type=click.Path(path_type=Path, file_okay=False),
        default=None,
        help="Folder of the four IDX files, gzipped or not "
        "(default: downloaded and cached under $DLCLASSICS_DATA or ~/.cache/dlclassics).",
    )(f)


def _load(
    dataset: str, data_dir: Path | None, seed: int, batch_size: int, device: str
) -> tuple[mnist_data.MnistData, torch.device]:
    resolved = resolve_device(device)
    data = mnist_data.load(dataset, data_dir, seed)
    if batch_size > len(data.train):
        raise InputError(f"batch size {batch_size} exceeds the {len(data.train)} training images")
    return data.to(resolved), resolved


def _arch_list(ctx: click.Context, param: click.Parameter, value: str) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [a for a in items if a not in CNN_ARCHS]
    if not items or unknown:
        raise click.BadParameter(f"choose from {', '.join(CNN_ARCHS)}, got {value!r}")
    return items


@mnist.command()
@click.option("--iterations", type=POSITIVE_INT, default=13_000, show_default=True)
@click.option("--batch-size", type=POSITIVE_INT, default=50, show_default=True)
@click.option("--lr", type=POSITIVE_FLOAT, default=0.001, show_default=True)
@bf16_option
@data_options
@device_option
@run_options
def fc(
    iterations: int,
    batch_size: int,
    lr: float,
    bf16: bool | None,
    data_dir: Path | None,
    dataset: str,
    device: str,
    out: Path,
    seed: int,
    quiet: bool,
) -> None:
    """Logistic regression and a 784-200-200-10 MLP, trained with Adam."""
    data, dev = _load(dataset, data_dir, seed, batch_size, device)
    config = {
        "dataset": dataset,
        "data_dir": str(data_dir or ""),
        "iterations": iterations,
        "batch_size": batch_size,
        "lr": lr,
        "bf16": resolve_bf16(bf16, dev),
        "device": str(dev),
        "seed": seed,
    }
    with open_run(out, "mnist fc", config) as run:
        title = mnist_data.SOURCES[dataset].title
        md = f"# {title}, fully connected\n\n" + first_look(data, run.plots)
        models, curves, summary = [], {}, []
        md_models = ""
        with SummaryWriter(run.tensorboard_dir) as tb:
            for name in ("logreg", "mlp"):
                seed_everything(seed)
                model = place(build(name), dev)
                result = fit(
                    model,
                    data,
                    batch_size=batch_size,
                    lr=lr,
                    max_iterations=iterations,
                    eval_every=len(data.train) // batch_size,
                    generator=mnist_data.batch_generator(seed),
                    quiet=quiet,
                    on_check=_tensorboard(tb, name),
                    bf16=config["bf16"],
                )
                curves[name] = {
                    "epoch": [c.epoch for c in result.checks],
                    "train": [c.train_loss for c in result.checks],
                    "val": [c.val_loss for c in result.checks],
                }
                splits, model_md = evaluate_model(model, name, data, run.plots)
                md_models += model_md
                params = parameter_count(model)
                models.append(
                    {"name": name, "parameters": params, "splits": splits}
                    | {"seconds": result.seconds, "loss_curves": curves[name]}
                )
                accuracies = [splits[s]["accuracy"] for s in ("train", "val", "test")]
                test_balanced = splits["test"]["balanced_accuracy"]
                summary.append([name, params, *accuracies, test_balanced, result.seconds])
                save_model(model, name, config, run.checkpoints / f"{name}.pt")
                if not quiet:
                    click.echo(f"{name}: test accuracy {splits['test']['accuracy']:.4f}")
        plots.loss_curves(curves, run.plots / "loss_curves.png")
        headers = ["model", "parameters", "train acc", "val acc", "test acc", "test bal. acc", "s"]
        md += "\n## Results\n\n" + markdown_table(headers, summary) + "\n" + md_models
        run.save_results({"models": models}, md)
    click.echo(f"wrote {run.path}")


def _tensorboard(tb: SummaryWriter, tag: str) -> Callable[[Check], None]:
    def log(check: Check) -> None:
        tb.add_scalar(f"loss_train/{tag}", check.train_loss, check.iteration)
        tb.add_scalar(f"loss_val/{tag}", check.val_loss, check.iteration)
        tb.add_scalar(f"accuracy_val/{tag}", check.val_accuracy, check.iteration)
        tb.add_scalar(f"balanced_accuracy_val/{tag}", check.val_balanced_accuracy, check.iteration)

    return log


def _run_row(arch: str, batch_size: int, result: Fit) -> dict:
    return {
        "arch": arch,
        "batch_size": batch_size,
        "reached_target": result.reached_target,
        "iterations": result.iterations,
        "seconds": result.seconds,
        "best_val_accuracy": result.best_val_accuracy,
        "val_balanced_accuracy": result.kept_check.val_balanced_accuracy,
        "kept_iteration": result.kept_check.iteration,
    }


@mnist.command()
@click.option(
    "--archs",
    default=",".join(CNN_ARCHS),
    show_default=True,
    callback=_arch_list,
    help="Architectures to train.",
)
@click.option(
    "--batch-sizes",
    default="50,100",
    show_default=True,
    callback=positive_list(POSITIVE_INT),
    help="Batch sizes.",
)
@click.option("--lr", type=POSITIVE_FLOAT, default=0.001, show_default=True)
@click.option(
    "--target-accuracy",
    type=FiniteFloatRange(0, 1, min_open=True),
    default=0.99,
    show_default=True,
    help="Stop a run once validation accuracy reaches this.",
)
@click.option("--max-epochs", type=POSITIVE_INT, default=20, show_default=True)
@click.option(
    "--eval-every",
    type=POSITIVE_INT,
    default=100,
    show_default=True,
    help="Check validation accuracy every this many iterations.",
)
@bf16_option
@data_options
@device_option
@run_options
def cnn(
    archs: list[str],
    batch_sizes: list[int],
    lr: float,
    target_accuracy: float,
    max_epochs: int,
    eval_every: int,
    bf16: bool | None,
    data_dir: Path | None,
    dataset: str,
    device: str,
    out: Path,
    seed: int,
    quiet: bool,
) -> None:
    """Three small CNNs at each batch size, trained until a validation accuracy target."""
    data, dev = _load(dataset, data_dir, seed, max(batch_sizes), device)
    config = {
        "dataset": dataset,
        "data_dir": str(data_dir or ""),
        "archs": archs,
        "batch_sizes": batch_sizes,
        "lr": lr,
        "target_accuracy": target_accuracy,
        "max_epochs": max_epochs,
        "eval_every": eval_every,
        "bf16": resolve_bf16(bf16, dev),
        "device": str(dev),
        "seed": seed,
    }
    with open_run(out, "mnist cnn", config) as run:
        title = mnist_data.SOURCES[dataset].title
        md = f"# {title}, convolutional\n\n" + first_look(data, run.plots)
        runs, curves, best = [], {}, None
        with SummaryWriter(run.tensorboard_dir) as tb:
            for arch in archs:
                for batch_size in batch_sizes:
                    tag = f"{arch}_b{batch_size}"
                    seed_everything(seed)
                    model = place(build(arch), dev)
                    result = fit(
                        model,
                        data,
                        batch_size=batch_size,
                        lr=lr,
                        max_iterations=max_epochs * (len(data.train) // batch_size),
                        eval_every=eval_every,
                        generator=mnist_data.batch_generator(seed),
                        target_accuracy=target_accuracy,
                        quiet=quiet,
                        on_check=_tensorboard(tb, tag),
                        restore_best=True,
                        bf16=config["bf16"],
                    )
                    row = _run_row(arch, batch_size, result)
                    runs.append(row)
                    curves[tag] = (
                        [c.iteration for c in result.checks],
                        [c.val_accuracy for c in result.checks],
                    )
                    if (
                        best is None
                        or row["val_balanced_accuracy"] > best[0]["val_balanced_accuracy"]
                    ):
                        best = (row, copy.deepcopy(model))
                    if not quiet:
                        click.echo(
                            f"{tag}: val accuracy {row['best_val_accuracy']:.4f} after "
                            f"{row['iterations']} iterations, {row['seconds']:.1f} s"
                        )
        best_row, best_model = best
        preds, _ = predict(best_model, data.test)
        test = split_metrics(data.test.labels, preds)
        conv_pictures(best_model, data, run.plots)
        plots.val_accuracy_curves(curves, run.plots / "val_accuracy.png")
        save_model(
            best_model,
            best_row["arch"],
            config | {"batch_size": best_row["batch_size"], "classes": list(data.classes)},
            run.checkpoints / MODEL_FILE,
        )
        best_summary = {
            "arch": best_row["arch"],
            "batch_size": best_row["batch_size"],
            "test_accuracy": test["accuracy"],
            "test_balanced_accuracy": test["balanced_accuracy"],
        }
        headers = ["arch", "batch", "reached target", "iterations", "s", "best val acc"]
        headers += ["kept (iteration)", "kept val bal. acc"]
        keys = ["arch", "batch_size", "reached_target", "iterations", "seconds"]
        keys += ["best_val_accuracy", "kept_iteration", "val_balanced_accuracy"]
        rows = [[r[k] for k in keys] for r in runs]
        md += "\n## Runs\n\n" + markdown_table(headers, rows)
        md += (
            f"\nBest by balanced validation accuracy: {best_row['arch']} at batch "
            f"{best_row['batch_size']}; test accuracy {test['accuracy']:.4f}, "
            f"balanced {test['balanced_accuracy']:.4f}.\n"
        )
        run.save_results({"runs": runs, "best": best_summary, "best_test": test}, md)
    click.echo(md if not quiet else f"best: {best_summary}")
    click.echo(f"wrote {run.path}")
