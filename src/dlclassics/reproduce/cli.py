"""`dlclassics reproduce`."""

import sys
from pathlib import Path

import click

from dlclassics.mnist.data import SOURCES
from dlclassics.options import (
    POSITIVE_INT,
    config_option,
    make_config,
    resume_option,
    resumed_config,
    run_options,
)
from dlclassics.reproduce.parts import PARTS, ReproduceConfig, run_parts
from dlclassics.reproduce.report import write_report
from dlclassics.rundir import open_run

IDX_DIR = click.Path(path_type=Path, exists=True, file_okay=False)
CORPUS = click.Path(path_type=Path, exists=True, dir_okay=False)


def _part_names(ctx: click.Context, param: click.Parameter, value: str) -> list[str]:
    names = [n.strip() for n in value.split(",") if n.strip()]
    known = [p.name for p in PARTS]
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise click.BadParameter(f"unknown part(s) {unknown}; choose from {known}")
    return names


def _absolute(path: Path | None) -> str | None:
    return str(path.resolve()) if path is not None else None


@click.command()
@config_option(
    ReproduceConfig, "quick", is_flag=True, help="Tiny settings: all of it in about a minute."
)
@config_option(ReproduceConfig, "mnist_dir", type=IDX_DIR, help="Folder of the four IDX files.")
@config_option(ReproduceConfig, "dataset", type=click.Choice(list(SOURCES)), help="Image set.")
@config_option(ReproduceConfig, "corpus", type=CORPUS, help="Sentences for the language model.")
@config_option(
    ReproduceConfig, "parts", "--only", callback=_part_names, help="Comma-separated parts."
)
@config_option(
    ReproduceConfig,
    "workers",
    type=POSITIVE_INT,
    help="Share each study's trials among this many processes (`--workers` of mnist fc, "
    "mnist cnn and lm study; needs the `scale` extra).",
)
@resume_option
@run_options(ReproduceConfig)
def reproduce(
    out: Path | None,
    quiet: bool,
    resume: Path | None,
    mnist_dir: Path | None,
    corpus: Path | None,
    **params,
) -> None:
    """Every experiment at the original protocols, and report.html / report.md over all of them.

    The data is downloaded unless --mnist-dir / --corpus give it. A part that fails is reported
    with its error and the others still run; the exit code is 1 if any part failed. --resume
    keeps the parts that finished and the finished trials of the one that was running.
    """
    if resume is not None:
        config, out = resumed_config(ReproduceConfig, "reproduce", resume), resume
    else:
        config = make_config(
            ReproduceConfig, params, mnist_dir=_absolute(mnist_dir), corpus=_absolute(corpus)
        )
    with open_run(out, "reproduce", config) as run:
        outcomes = run_parts(config, run.path, quiet)
        write_report(run, outcomes, config.quick)
    click.echo(f"wrote {run.path / 'report.html'}")
    if not all(o.ok for o in outcomes):
        sys.exit(1)
