"""Matplotlib without a display, figures saved atomically, and the styles every figure shares."""

import io
import os
from pathlib import Path
from typing import Any

import matplotlib

# A notebook's kernel draws inline (ipykernel sets MPLBACKEND to it): a learner's own figures
# must still show there. Everywhere else, no display.
if not os.environ.get("MPLBACKEND", "").startswith("module://matplotlib_inline"):
    matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from dlclassics.core.rundir import atomic_write_bytes

# A curve of fewer points than this gets markers: quick settings log one or two points per
# curve, and a lone point drawn as a line without markers draws nothing.
MARKERS_BELOW = 20


def save_figure(fig: Figure, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return path


def markers(points: int) -> dict[str, Any]:
    """`plot` keywords for a curve of `points` points: markers on a short one."""
    return {"marker": "o", "markersize": 4} if points < MARKERS_BELOW else {}


def count_axis(ax: Axes) -> None:
    """An x axis of counts (epochs, steps) from 0 to a little past the data drawn: a lone point
    sits inside the axes, not on an edge, and no tick is a fraction."""
    last = ax.dataLim.x1 if ax.has_data() else 0.0
    ax.set_xlim(0, last * 1.05 + 1)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def legend_outside(ax: Axes, **options: Any) -> None:
    """The legend right of the axes, where it hides no data (`save_figure` keeps it in the
    picture)."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0, **options)
