"""report.md and a self-contained report.html (plots embedded) from the parts' run directories."""

import base64
import html
import json
import re
from pathlib import Path
from typing import Any

import markdown

from dlclassics.core.errors import InputError
from dlclassics.core.rundir import (
    CONFIG,
    MAX_RECORD_BYTES,
    PLOTS,
    RESULTS,
    RESULTS_MD,
    RunDir,
    atomic_write_text,
    parse_json,
    read_run_file,
)
from dlclassics.core.tables import escape_tokens, plot_order, table
from dlclassics.interpret import interpret
from dlclassics.reproduce.parts import Outcome

TITLE = "dlclassics: the classic experiments reproduced"

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 70rem; margin: 2rem auto; padding: 0 1rem; }
table { border-collapse: collapse; margin: 1rem 0; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.6rem; text-align: right; }
img { max-width: 100%; margin: 0.5rem 0; }
.failed { color: #b00020; font-weight: bold; }
pre { background: #f6f6f6; padding: 0.6rem; overflow-x: auto; }
"""


def _demote(md: str) -> str:
    """A part's own headings sit one level below its section in the report."""
    return re.sub(r"^(#+) ", r"##\1 ", md, flags=re.M)


# mnist's first look at the data (its results.md section, and the plots beside it): the same for
# both MNIST parts of a reproduction, so shown in the first only.
DATA_SECTION = re.compile(r"^## The data\n.*?(?=^#{1,2} |\Z)", re.M | re.S)
DATA_PLOTS = ("class_counts", "samples")


def _read_json(root: Path, path: Path) -> Any:
    if not _present(path):
        return None
    try:
        return parse_json(read_run_file(root, path, MAX_RECORD_BYTES))
    except ValueError:
        raise InputError(f"{path} is not JSON") from None


def _section(outcome: Outcome, root: Path, shared: bool, shown: dict[str, str]) -> str:
    """A part's section; `shown` holds each data section shown so far, by the title of the part
    it is under."""
    part, d, command = outcome.part, outcome.directory, " ".join(outcome.command)
    if shared:
        md = f"## {part.title}\n\n`{command}`: its workers spent {outcome.seconds:.1f} s in it.\n\n"
    else:
        md = f"## {part.title}\n\n`{command}` took {outcome.seconds:.1f} s.\n\n"
    if not outcome.ok:
        error = html.escape(outcome.error, quote=False)  # inside the report's own HTML
        return md + f'<p class="failed">Failed: {error}</p>\n\n'
    config = _read_json(root, d / CONFIG)
    md += interpret(part.name, _read_json(root, d / RESULTS), config)
    plots = plot_order((d / PLOTS).glob("**/*.png")) if (d / PLOTS).is_dir() else []
    if _present(d / RESULTS_MD):
        raw = read_run_file(root, d / RESULTS_MD, MAX_RECORD_BYTES).decode("utf-8", "replace")
        data = DATA_SECTION.search(raw)
        if data and data.group() in shown:
            above = f'## The data\n\nThe same as in "{shown[data.group()]}" above.\n\n'
            raw = raw[: data.start()] + above + raw[data.end() :]
            plots = [png for png in plots if png.stem not in DATA_PLOTS]
        elif data:
            shown[data.group()] = part.title
        md += _demote(raw) + "\n"
    for png in plots:
        md += f"![{png.stem}]({png.relative_to(root).as_posix()})\n\n"
    if config is not None:
        md += "<details><summary>settings</summary>\n\n```json\n"
        md += json.dumps(config, indent=2) + "\n```\n\n</details>\n\n"
    return md


def _present(path: Path) -> bool:
    # A link is there too: reading it refuses it.
    return path.is_symlink() or path.exists()


def _status(outcome: Outcome) -> str:
    return "ok" if outcome.ok else f"FAILED: {outcome.error}"


def results(outcomes: list[Outcome], seconds: float, workers: int | None) -> dict[str, Any]:
    """results.json: each part's name, whether it succeeded, its error and its time (summed over
    the workers); the reproduction's time from start to end and its workers (None: one process
    per part, one after another)."""
    parts = [
        {"name": o.part.name, "ok": o.ok, "error": o.error, "seconds": o.seconds} for o in outcomes
    ]
    return {"parts": parts, "seconds": seconds, "workers": workers}


def report_markdown(
    outcomes: list[Outcome],
    root: Path,
    title: str,
    seconds: float,
    workers: int | None,
    lab: str = "",
) -> str:
    """The report: the parts' table and times, `lab` (a line on the exported lab), then each
    part's section."""
    rows = [
        {"part": o.part.title, "status": _status(o), "seconds": f"{o.seconds:.1f}"}
        for o in outcomes
    ]
    total = sum(o.seconds for o in outcomes)
    md = f"# {title}\n\n" + table(rows, {"part": "part", "status": "status", "seconds": "seconds"})
    if workers is None:
        md += f"\nTotal: {total:.1f} s.\n\n"
    else:
        who = f"{workers} worker" + ("s" if workers > 1 else "")
        md += f"\nTotal: {total:.1f} s spent in the parts by {who} here (waiting "
        md += f"for each other included), {seconds:.1f} s from start to end.\n\n"
    if lab:
        md += lab + "\n\n"
    shown: dict[str, str] = {}
    return md + "".join(_section(o, root, workers is not None, shown) for o in outcomes)


def _embed_images(html: str, root: Path) -> str:
    """Each image of the run directory `root` inlined; an image elsewhere, which a part's
    results.md could name, or a link, is refused (see `read_run_file`)."""

    def inline(match: re.Match) -> str:
        png = read_run_file(root, root / match.group(1), MAX_RECORD_BYTES)
        data = base64.b64encode(png).decode("ascii")
        return f'src="data:image/png;base64,{data}"'

    return re.sub(r'src="([^"]+\.png)"', inline, html)


def report_html(md: str, root: Path, title: str) -> str:
    body = markdown.markdown(escape_tokens(md), extensions=["tables", "fenced_code", "md_in_html"])
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f"<style>{STYLE}</style></head><body>\n{_embed_images(body, root)}\n</body></html>\n"
    )


def write_report(
    run: RunDir,
    outcomes: list[Outcome],
    quick: bool,
    seconds: float,
    workers: int | None,
    lab: str = "",
) -> None:
    """report.md, report.html and results.json; `lab`: the report's line on the lab."""
    title = TITLE + (" (quick)" if quick else "")
    md = report_markdown(outcomes, run.path, title, seconds, workers, lab)
    atomic_write_text(run.path / "report.html", report_html(md, run.path, title))
    atomic_write_text(run.path / "report.md", md)
    run.save_results(results(outcomes, seconds, workers), md)
