"""What the notebooks share: quick mode, running an experiment, showing its run directory,
showing the package's own code.

The notebooks run the same commands as `dlclassics reproduce`, with the same quick settings, so
they never repeat the package's logic.
"""

import contextlib
import inspect
import io
import os
import textwrap
from collections.abc import Callable
from pathlib import Path

from IPython.display import Image, Markdown, display

from dlclassics.cli import cli
from dlclassics.core.rundir import CONFIG, PLOTS, RunDir
from dlclassics.core.tables import escape_tokens, plot_order
from dlclassics.experiments import PARTS, find
from dlclassics.interpret import interpret
from dlclassics.reproduce.config import ReproduceConfig
from dlclassics.reproduce.parts import command_line


def quick() -> bool:
    """DLCLASSICS_QUICK=1 runs every experiment at tiny settings (how the tests run notebooks)."""
    return os.environ.get("DLCLASSICS_QUICK") == "1"


def run(name: str, *extra: str) -> Path:
    """Run one experiment of `dlclassics reproduce` (xor-sweep, mnist-cnn, lm-study, ...) with
    its command line there, then `extra` options (which win), into runs/notebook-<name>, and
    return that run directory. Run again, it keeps the trials it finished."""
    part = next((p for p in PARTS if p.name == name), None)
    if part is None:
        raise ValueError(f"unknown experiment {name!r}; choose from {[p.name for p in PARTS]}")
    out = Path("runs") / f"notebook-{name}"
    args = command_line(part, out, ReproduceConfig(quick=quick()), corpus=None)
    # The command's printed summary is what `show` displays, rendered: printed, it would show
    # twice. The progress bars (stderr) stay.
    with contextlib.redirect_stdout(io.StringIO()):
        cli.main([*args, *extra], standalone_mode=False)
    return out


def show(run_dir: Path, plots: bool = True) -> None:
    """What the run's results mean, its results table, then its plots (the data first)."""
    run = RunDir(run_dir)
    config = run.read_json(CONFIG)
    results, markdown = run.read_results()
    md = interpret(find(config["command"]).name, results, config) + markdown
    display(Markdown(escape_tokens(md)))  # rendered as HTML: <START> would be a tag
    if plots:
        for png in plot_order((run_dir / PLOTS).glob("**/*.png")):
            display(Image(filename=str(png)))


def code(*objects: Callable | type) -> None:
    """Show the source of functions, methods or classes, verbatim, from the package itself: the
    code a learner reads in a notebook is the code that runs, never a copy of it."""
    for obj in objects:
        source = inspect.getsource(obj)
        where = f"{inspect.getmodule(obj).__name__}.{obj.__qualname__}"
        display(Markdown(f"`{where}`\n\n```python\n{textwrap.dedent(source).rstrip()}\n```"))
