"""`dlclassics reproduce`: the command; the parts run (`parts`, `shared`) and the report is
written (`report`) when it runs."""

import sys
from pathlib import Path
from typing import Any

import click

from dlclassics.core.bounds import MAX_WORKERS
from dlclassics.options import (
    absolute,
    check_scale,
    config_option,
    make_config,
    resume_option,
    resumed_config,
    run_options,
    storage_option,
    study_name_option,
)
from dlclassics.reproduce.config import ReproduceConfig
from dlclassics.scale import Scale

IDX_DIR = click.Path(path_type=Path, exists=True, file_okay=False)
CORPUS = click.Path(path_type=Path, exists=True, dir_okay=False)


@click.command()
@config_option(
    ReproduceConfig, "quick", is_flag=True, help="Tiny settings: every part in a few minutes."
)
@config_option(ReproduceConfig, "data_dir", type=IDX_DIR, help="Folder of the four IDX files.")
# The option's name until 0.x, kept working.
@click.option("--mnist-dir", type=IDX_DIR, hidden=True)
@config_option(ReproduceConfig, "dataset", help="Image set.")
@config_option(ReproduceConfig, "corpus", type=CORPUS, help="Sentences for the language model.")
@config_option(ReproduceConfig, "parts", "--only", help="Comma-separated parts.")
@config_option(
    ReproduceConfig,
    "workers",
    type=click.IntRange(1, MAX_WORKERS),
    help="Share the trials of every part among this many workers here (each with 1/N of the "
    "threads), on --storage or an SQLite file in the run directory.",
)
@storage_option()
@study_name_option(
    "The parts' studies in --storage are NAME-xor-solve, NAME-mnist-cnn, ... "
    "(default NAME: reproduce)."
)
@resume_option
@run_options(ReproduceConfig)
def reproduce(**params: Any) -> None:
    """Every experiment at the original protocols, and report.html / report.md over all of them.

    The data is downloaded unless --data-dir / --corpus give it. A part that fails is reported
    with its error and the others still run; the exit code is 1 if any part failed. --resume
    keeps the parts that finished and the finished trials of the one that was running.
    With --workers or --storage, run the same command again to continue.
    """
    config, out = _config(params)
    scale = Scale(params["storage"], params["study_name"], config.workers)
    check_scale(scale, out)
    if not _reproduce(config, out, params["quiet"], scale):
        sys.exit(1)


def _config(params: dict[str, Any]) -> tuple[ReproduceConfig, Path | None]:
    """The command line's settings, or for --resume those of the run it continues; either way
    the data checked before anything runs."""
    from dlclassics.lm.corpus import read_corpus
    from dlclassics.reproduce.parts import check_corpus

    resume = params["resume"]
    if resume is not None:
        config = resumed_config(ReproduceConfig, "reproduce", resume)
        check_corpus(config, resume)
        return config, resume
    data_dir, corpus = params["data_dir"] or params["mnist_dir"], params["corpus"]
    # A bad corpus is one line now, not a failed part later.
    corpus_sha256 = read_corpus(corpus)[1] if corpus is not None else None
    config = make_config(
        ReproduceConfig,
        params,
        data_dir=absolute(data_dir),
        corpus=absolute(corpus),
        corpus_sha256=corpus_sha256,
    )
    return config, params["out"]


def _reproduce(config: ReproduceConfig, out: Path | None, quiet: bool, scale: Scale) -> bool:
    """Run the parts into the run directory `out` and write the report over them; whether every
    part succeeded."""
    import time

    from dlclassics.core.rundir import open_run
    from dlclassics.pipeline import load_workers
    from dlclassics.reproduce.parts import run_parts, selected
    from dlclassics.reproduce.report import write_report

    if scale.shared:  # Optuna, and the storage, checked before the run directory is made
        workers = load_workers()
        if scale.storage is not None:
            workers.open_storage(scale.storage)
    start = time.perf_counter()
    with open_run(out, "reproduce", config) as run:
        parts, corpus = selected(config, run.path)
        if scale.shared:
            from dlclassics.reproduce.shared import run_parts_shared  # needs Optuna

            outcomes = run_parts_shared(config, run.path, parts, corpus, scale)
        else:
            outcomes = run_parts(config, run.path, parts, corpus, quiet)
        count = (config.workers or 1) if scale.shared else None
        lab = _export_lab(run.path)
        write_report(run, outcomes, config.quick, time.perf_counter() - start, count, lab)
    click.echo(f"wrote {run.path / 'report.html'}")
    return all(o.ok for o in outcomes)


SITE = "site"  # the lab, in the reproduction's folder


def _export_lab(root: Path) -> str:
    """The lab of the reproduction's models, exported into `root/site/`: the report's line
    about it (a reproduction without a model, every part failed say, has none)."""
    from dlclassics.core.errors import InputError, first_line
    from dlclassics.lab.export import export, holds

    try:
        index = export([root], root / SITE)
    except InputError as e:
        return f"No lab: {first_line(e)}."
    return (
        f"The lab, its {holds(index)} in the browser: [{SITE}/index.html]({SITE}/index.html)"
        f" (through a static server: `python -m http.server -d {root / SITE}`)."
    )
