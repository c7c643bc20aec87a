"""Options every experiment command shares."""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click


def run_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """--out, --seed and --quiet, in that order on --help."""
    f = click.option("--quiet", is_flag=True, help="No progress bars.")(f)
    f = click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")(f)
    f = click.option(
        "--out",
        type=click.Path(path_type=Path, file_okay=False),
        default=None,
        help="Run directory (default: a fresh timestamped folder under runs/).",
    )(f)
    return f


def device_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--device",
        default="auto",
        show_default=True,
        help="'cpu', 'cuda', 'cuda:1', ... ('auto': CUDA when present).",
    )(f)


POSITIVE_INT = click.IntRange(min=1)
POSITIVE_FLOAT = click.FloatRange(min=0, min_open=True)
