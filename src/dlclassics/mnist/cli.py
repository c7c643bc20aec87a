"""`dlclassics mnist fc|cnn`: options -> config -> the study's trials -> its summary."""

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from dlclassics import distributed
from dlclassics.mnist import cnn as cnn_study
from dlclassics.mnist import fc as fc_study
from dlclassics.mnist.cnn import CnnConfig
from dlclassics.mnist.experiment import MnistConfig, with_data_sha256
from dlclassics.mnist.fc import FcConfig
from dlclassics.options import (
    absolute_callback,
    bf16_option,
    config_option,
    device_config_option,
    make_config,
    resume_option,
    resumed_config,
    run_options,
    scale_options,
)
from dlclassics.rundir import open_run
from dlclassics.runtime import resolve_bf16
from dlclassics.study import Scale, run_study

C = TypeVar("C", bound=MnistConfig)


@click.group()
def mnist() -> None:
    """MNIST (or Fashion-MNIST): logistic regression, an MLP, and small CNNs."""


def common_options(config_type: type[MnistConfig]) -> Callable[..., Any]:
    """--lr, --bf16, --dataset, --data-dir and --device, for either command's config."""

    def decorate(f: Callable[..., Any]) -> Callable[..., Any]:
        f = device_config_option(config_type)(f)
        f = config_option(
            config_type,
            "data_dir",
            type=click.Path(file_okay=False),
            callback=absolute_callback,
            show_default=False,
            help="Folder of the four IDX files, gzipped or not "
            "(default: downloaded and cached under $DLCLASSICS_DATA or ~/.cache/dlclassics).",
        )(f)
        f = config_option(
            config_type,
            "dataset",
            help="Which dataset: its class names and title, and the files to download when "
            "--data-dir is not given.",
        )(f)
        f = bf16_option(config_type)(f)
        return config_option(config_type, "lr")(f)

    return decorate


def _configure(config_type: type[C], params: dict[str, Any], batch_size: int) -> C:
    """The config, with the device resolved and bf16 decided for it; under torchrun, the
    process group joined (`batch_size`: the smallest global batch)."""
    device = distributed.start(params["device"], batch_size)
    return make_config(
        config_type, params, device=str(device), bf16=resolve_bf16(params["bf16"], device)
    )


@mnist.command()
@config_option(FcConfig, "iterations")
@config_option(FcConfig, "batch_size")
@common_options(FcConfig)
@run_options(FcConfig)
@scale_options
def fc(out: Path | None, quiet: bool, scale: Scale, **params: Any) -> None:
    """Logistic regression and a 784-200-200-10 MLP, trained with Adam."""
    config = _configure(FcConfig, params, params["batch_size"])
    # Bad data or settings fail here, before a run exists.
    config = with_data_sha256(config, config.batch_size)
    with open_run(out, "mnist fc", config) as run:
        summary = run_study(fc_study.EXPERIMENT, config, run, quiet, scale)
    if summary is None:
        return  # under torchrun rank 0 summarises
    if not quiet:
        for model in summary.results["models"]:
            click.echo(f"{model['name']}: test accuracy {model['splits']['test']['accuracy']:.4f}")
    click.echo(f"wrote {run.path}")


@mnist.command()
@config_option(CnnConfig, "archs", help="Architectures to train.")
@config_option(CnnConfig, "batch_sizes", help="Batch sizes.")
@config_option(
    CnnConfig, "target_accuracy", help="Stop a run once validation accuracy reaches this."
)
@config_option(CnnConfig, "max_epochs")
@config_option(
    CnnConfig, "eval_every", help="Check validation accuracy every this many iterations."
)
@common_options(CnnConfig)
@resume_option
@run_options(CnnConfig)
@scale_options
def cnn(out: Path | None, quiet: bool, resume: Path | None, scale: Scale, **params: Any) -> None:
    """Three small CNNs at each batch size, trained until a validation accuracy target."""
    if resume is not None:
        config, out = resumed_config(CnnConfig, "mnist cnn", resume), resume
        distributed.start(config.device, min(config.batch_sizes))  # the machine may have changed
    else:
        config = _configure(CnnConfig, params, min(params["batch_sizes"]))
    # Bad data or settings, or for --resume other data than the run's, fail here.
    config = with_data_sha256(config, max(config.batch_sizes))
    with open_run(out, "mnist cnn", config) as run:
        summary = run_study(cnn_study.EXPERIMENT, config, run, quiet, scale)
    if summary is None:
        return  # under torchrun rank 0 summarises
    click.echo(summary.markdown if not quiet else f"best: {summary.results['best']}")
    click.echo(f"wrote {run.path}")
