"""`dlclassics reproduce`."""

import sys
import time
from pathlib import Path

import click

from dlclassics.bounds import MAX_WORKERS
from dlclassics.lm.corpus import read_corpus
from dlclassics.options import (
    absolute,
    check_scale,
    config_option,
    make_config,
    resume_option,
    resumed_config,
    run_options,
    storage_option,
)
from dlclassics.reproduce.parts import PARTS, ReproduceConfig, check_corpus, run_parts
from dlclassics.reproduce.report import write_report
from dlclassics.rundir import open_run
from dlclassics.study import Scale, workers_module

IDX_DIR = click.Path(path_type=Path, exists=True, file_okay=False)
CORPUS = click.Path(path_type=Path, exists=True, dir_okay=False)


def _part_names(ctx: click.Context, param: click.Parameter, value: str) -> list[str]:
    names = [n.strip() for n in value.split(",") if n.strip()]
    known = [p.name for p in PARTS]
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise click.BadParameter(f"unknown part(s) {unknown}; choose from {known}")
    return names


@click.command()
@config_option(
    ReproduceConfig, "quick", is_flag=True, help="Tiny settings: all of it in about a minute."
)
@config_option(ReproduceConfig, "mnist_dir", type=IDX_DIR, help="Folder of the four IDX files.")
@config_option(ReproduceConfig, "dataset", help="Image set.")
@config_option(ReproduceConfig, "corpus", type=CORPUS, help="Sentences for the language model.")
@config_option(
    ReproduceConfig, "parts", "--only", callback=_part_names, help="Comma-separated parts."
)
@config_option(
    ReproduceConfig,
    "workers",
    type=click.IntRange(1, MAX_WORKERS),
    help="Share the trials of every part among this many workers here (each with 1/N of the "
    "threads), on --storage or an SQLite file in the run directory.",
)
@storage_option()
@click.option(
    "--study-name",
    help="The parts' studies in --storage are NAME-xor-solve, NAME-mnist-cnn, ... "
    "(default NAME: reproduce).",
)
@resume_option
@run_options(ReproduceConfig)
def reproduce(
    out: Path | None,
    quiet: bool,
    resume: Path | None,
    mnist_dir: Path | None,
    corpus: Path | None,
    storage: str | None,
    study_name: str | None,
    **params,
) -> None:
    """Every experiment at the original protocols, and report.html / report.md over all of them.

    The data is downloaded unless --mnist-dir / --corpus give it. A part that fails is reported
    with its error and the others still run; the exit code is 1 if any part failed. --resume
    keeps the parts that finished and the finished trials of the one that was running.
    With --workers or --storage, run the same command again to continue.
    """
    if resume is not None:
        config, out = resumed_config(ReproduceConfig, "reproduce", resume), resume
        check_corpus(config, resume)
    else:
        # A bad corpus is one line now, not a failed part later.
        corpus_sha256 = read_corpus(corpus)[1] if corpus is not None else None
        config = make_config(
            ReproduceConfig,
            params,
            mnist_dir=absolute(mnist_dir),
            corpus=absolute(corpus),
            corpus_sha256=corpus_sha256,
        )
    scale = Scale(storage, study_name, config.workers)
    check_scale(scale, out)
    if scale.shared:  # Optuna, and the storage, checked before the run directory is made
        workers = workers_module()
        if storage is not None:
            workers.open_storage(storage)
    start = time.perf_counter()
    with open_run(out, "reproduce", config) as run:
        outcomes = run_parts(config, run.path, quiet, scale)
        workers = (config.workers or 1) if scale.shared else None
        write_report(run, outcomes, config.quick, time.perf_counter() - start, workers)
    click.echo(f"wrote {run.path / 'report.html'}")
    if not all(o.ok for o in outcomes):
        sys.exit(1)
