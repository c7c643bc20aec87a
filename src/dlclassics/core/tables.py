"""Markdown for results.md (tables) and for showing it as HTML (tokens escaped, plots ordered)."""

import math
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any


def fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    return str(value)


def column_format(values: Iterable[Any]) -> Callable[[Any], str]:
    """How every cell of a column with these values is written: its floats all alike, so that
    0.8240 stands beside 0.8041 and not 0.824. Floats of two significant digits at most are
    settings (learning rates 0.1 and 0.01, temperatures), written as given; large numbers with
    thousands separators and no decimals; values in [0, 1] with 4 decimals, unless some are too
    small to show that way (the probability of a sentence): then all in scientific notation."""
    floats = [abs(v) for v in values if isinstance(v, float) and math.isfinite(v)]
    if not floats or all(float(f"{v:.2g}") == v for v in floats):
        spec = ""
    elif max(floats) >= 1000:
        spec = ",.0f"
    elif min((v for v in floats if v > 0), default=1.0) < 1e-3:
        spec = ".3e"
    else:
        spec = ".4f" if max(floats) <= 1 else ".2f"

    def cell(value: Any) -> str:
        if isinstance(value, float) and spec:
            return format(value, spec)
        if isinstance(value, int) and not isinstance(value, bool):
            return f"{value:,}"
        return fmt(value)

    return cell


def table(rows: Iterable[Mapping[str, Any]], columns: Mapping[str, str]) -> str:
    """A markdown table of `rows`; `columns` maps each header to the key its cells come from."""
    rows = list(rows)
    formats = {key: column_format(row[key] for row in rows) for key in columns.values()}
    lines = [
        "| " + " | ".join(columns) + " |",
        "|" + "|".join("---" for _ in columns) + "|",
    ]
    lines += [
        "| " + " | ".join(formats[key](row[key]) for key in columns.values()) + " |" for row in rows
    ]
    return "\n".join(lines) + "\n"


# A fenced code block or code span (left as it is: markdown shows its `<` itself), or a `<...>`
# token other than the tags the report writes (<p class="failed">, <details>, <summary>).
_CODE_OR_TOKEN = re.compile(
    r"(?P<code>^(?P<fence>`{3,}|~{3,}).*?^(?P=fence)|(?P<ticks>`+).+?(?P=ticks))"
    r"|<(?!/?(?:p|details|summary)\b)(?P<token>[^<>\n]*)>",
    re.M | re.S,
)


def escape_tokens(md: str) -> str:
    """`md` with its `<...>` tokens outside code (<START>, <EOS>, <UNK>) written as text: rendered
    to HTML as they are, each would be an unknown tag, which shows nothing."""
    return _CODE_OR_TOKEN.sub(lambda m: m["code"] or f"&lt;{m['token']}&gt;", md)


_SPLIT_PLOTS = tuple(
    rf".*_{split}_{kind}" for split in ("test", "val", "train") for kind in ("per_class", "cm")
)
# The order a learner reads a part's plots in: the data, training, the results (test before
# validation before training), then the model's insides. Other plots come after, by name.
PLOT_ORDER = tuple(
    re.compile(pattern)
    for pattern in (
        *("samples", "class_counts"),
        *("loss_curves", "val_accuracy"),
        *("perplexity", "epochs_vs_hidden", "epochs_vs_bypass", "std_epochs_vs_lr"),
        *_SPLIT_PLOTS,
        *("optimization_history", "param_importances"),
        *("conv1_filters", "test_images", r"conv1_maps.*", r"hidden_unit_lines_.*"),
    )
)


def plot_order(plots: Iterable[Path]) -> list[Path]:
    """`plots` (PNG files) in the order of PLOT_ORDER, by their names."""

    def rank(path: Path) -> tuple[int, str]:
        found = (i for i, pattern in enumerate(PLOT_ORDER) if pattern.fullmatch(path.stem))
        return next(found, len(PLOT_ORDER)), path.as_posix()

    return sorted(plots, key=rank)
