"""The site `serve` serves: the lab's export of the runs given, or of the newest under runs/."""

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dlclassics import __version__
from dlclassics.core.errors import InputError, first_line
from dlclassics.core.rundir import write_json
from dlclassics.lab.export import (
    MODELS_JSON,
    STATIC,
    STUDY_KINDS,
    export,
    find_runs,
    read_models,
    read_study,
)
from dlclassics.serve.models import newest_runs


def empty_site(out: Path) -> None:
    """The page with no models (`export` refuses to export none): it says there are none."""
    shutil.copytree(STATIC, out, copy_function=shutil.copyfile)
    write_json(out / MODELS_JSON, {"version": __version__, "models": []})


def refusal(run: Path) -> str | None:
    """Why `export` would refuse `run` (a damaged checkpoint, say), or None: a default pick it
    refuses is left out, so that the other models are still shown."""
    try:
        for part in find_runs(run, lambda message: None):
            if part.command in STUDY_KINDS:
                read_study(part, "study")
            else:
                read_models(part)
    except InputError as e:
        return first_line(e)
    return None


def default_runs(runs: Path, warn: Callable[[str], None]) -> list[Path]:
    """The newest runs under `runs` that export takes; `warn` hears of each one left out."""
    picked = []
    for run in newest_runs(runs):
        reason = refusal(run)
        if reason is None:
            picked.append(run)
        else:
            warn(f"left out {run}: {reason}")
    return picked


def write_site(runs: list[Path], out: Path) -> dict[str, Any]:
    """The site of `runs` written to `out`, the page alone where there are none; its
    models.json. Bad input (a path that is no run directory, a run holding no model) is an
    InputError."""
    if not runs:
        empty_site(out)
        return {"models": [], "studies": []}
    return export(runs, out)
