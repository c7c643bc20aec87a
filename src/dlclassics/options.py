"""Options every experiment command shares."""

import math
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


def bf16_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--bf16/--no-bf16",
        default=None,
        help="bfloat16 autocast (default: on where the device computes bf16 natively).",
    )(f)


def positive_list(
    item: click.ParamType,
) -> Callable[[click.Context, click.Parameter, str], list]:
    """A click callback turning "0.1,0.01" into [0.1, 0.01], each value checked by `item`
    (POSITIVE_INT or POSITIVE_FLOAT)."""

    def parse(ctx: click.Context, param: click.Parameter, value: str) -> list:
        items = [item.convert(v.strip(), param, ctx) for v in value.split(",") if v.strip()]
        if not items:
            raise click.BadParameter(f"expected comma-separated numbers, got {value!r}")
        return items

    return parse


class FiniteFloatRange(click.FloatRange):
    """A FloatRange that also refuses nan and inf: nan passes every comparison-based bound."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


POSITIVE_INT = click.IntRange(min=1)
POSITIVE_FLOAT = FiniteFloatRange(min=0, min_open=True)
NONNEGATIVE_FLOAT = FiniteFloatRange(min=0)
