"""Markdown tables for results.md."""

from collections.abc import Iterable, Mapping
from typing import Any


def fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    return str(value)


def table(rows: Iterable[Mapping[str, Any]], columns: Mapping[str, str]) -> str:
    """A markdown table of `rows`; `columns` maps each header to the key its cells come from."""
    lines = [
        "| " + " | ".join(columns) + " |",
        "|" + "|".join("---" for _ in columns) + "|",
    ]
    lines += ["| " + " | ".join(fmt(row[key]) for key in columns.values()) + " |" for row in rows]
    return "\n".join(lines) + "\n"
