"""`dlclassics reproduce`."""

import sys
from pathlib import Path

import click
from tqdm import tqdm

from dlclassics.errors import InputError
from dlclassics.options import run_options
from dlclassics.reproduce.parts import PARTS, corpus_slice, run_part
from dlclassics.reproduce.report import report_html, report_markdown
from dlclassics.rundir import atomic_write_text, open_run

QUICK_LINES = 3000  # sentences of the corpus a quick run trains on


@click.command()
@click.option("--quick", is_flag=True, help="Tiny settings: the whole pipeline in about a minute.")
@click.option(
    "--mnist-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Folder of the four MNIST-format IDX files (default: download).",
)
@click.option(
    "--dataset",
    type=click.Choice(["mnist", "fashion-mnist"]),
    default="mnist",
    show_default=True,
)
@click.option(
    "--corpus",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Sentence corpus for the language model (default: download).",
)
@click.option(
    "--only",
    default=",".join(p.name for p in PARTS),
    show_default=True,
    help="Comma-separated parts to run.",
)
@run_options
def reproduce(
    quick: bool,
    mnist_dir: Path | None,
    dataset: str,
    corpus: Path | None,
    only: str,
    out: Path | None,
    seed: int,
    quiet: bool,
) -> None:
    """Every experiment at the original protocols, and report.html / report.md over all of them.

    A part that fails is reported with its error and the others still run; the exit code is 1
    if any part failed.
    """
    names = [n.strip() for n in only.split(",") if n.strip()]
    unknown = sorted(set(names) - {p.name for p in PARTS})
    if unknown or not names:
        raise InputError(f"unknown part(s) {unknown}; choose from {[p.name for p in PARTS]}")
    for path, what in ((mnist_dir, "--mnist-dir"), (corpus, "--corpus")):
        if path is not None and not path.exists():
            raise InputError(f"{what} {path} does not exist")
    data = {"dataset": dataset}
    if mnist_dir:
        data["mnist_dir"] = str(mnist_dir.resolve())
    if corpus:
        data["corpus"] = str(corpus.resolve())
    parts = [p for p in PARTS if p.name in names]
    config = {"quick": quick, "parts": names, "seed": seed, **data}
    title = "dlclassics: the classic experiments reproduced" + (" (quick)" if quick else "")
    with open_run(out, "reproduce", config) as run:
        if quick and corpus:
            data["corpus"] = str(corpus_slice(corpus, run.path / "corpus-slice.txt", QUICK_LINES))
        outcomes = []
        for part in tqdm(parts, desc="reproduce", unit="part", disable=quiet):
            outcome = run_part(part, run.path, seed, quick, data)
            outcomes.append(outcome)
            status = "ok" if outcome.ok else f"FAILED: {outcome.error}"
            tqdm.write(f"{part.name}: {status} ({outcome.seconds:.1f} s)")
        md = report_markdown(outcomes, run.path, title)
        atomic_write_text(run.path / "report.html", report_html(md, run.path, title))
        atomic_write_text(run.path / "report.md", md)
        results = {
            "parts": [
                {"name": o.part.name, "ok": o.ok, "error": o.error, "seconds": o.seconds}
                for o in outcomes
            ]
        }
        run.save_results(results, md)
    click.echo(f"wrote {run.path / 'report.html'}")
    if not all(o.ok for o in outcomes):
        sys.exit(1)
