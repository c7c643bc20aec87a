"""A trial's progress: its bar on the terminal and, for `reproduce`, the same in a file.

`reproduce` runs each part as a subprocess whose stderr is a pipe, where no bar draws. It names a
file in $DLCLASSICS_PROGRESS, and the part's bars write their state there (`Report`, one small
JSON object, replaced atomically at most every `EVERY` seconds), which `reproduce` shows as the
part's live line. The file is written with --quiet too: --quiet turns the bars off, not this.
"""

import contextlib
import json
import math
import os
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import TypedDict, cast

from tqdm import tqdm

from dlclassics.core import distributed
from dlclassics.core.bounds import conforms
from dlclassics.core.errors import InputError
from dlclassics.core.machine import bar_disabled
from dlclassics.core.rundir import atomic_write_text, parse_json

ENV = "DLCLASSICS_PROGRESS"
EVERY = 0.5  # seconds between a bar's postfix refreshes and its file's writes
MAX_REPORT_BYTES = 4096


class Report(TypedDict):
    """What a part is doing, as its progress file holds it."""

    trial: str
    step: int
    total: int | None
    eta: float | None  # seconds to the trial's end, at its rate so far
    status: str  # what it does between steps ("evaluating val"), else ""
    values: dict[str, float]  # the latest loss, accuracy...


def read_report(path: Path) -> Report | None:
    """The report in `path`; None while there is none, or if it is not one."""
    try:
        with path.open("rb") as f:
            report = parse_json(f.read(MAX_REPORT_BYTES))
    except (OSError, ValueError):
        return None
    return cast(Report, report) if conforms(report, Report) else None


def describe(report: Report) -> str:
    """A report as one short line: `mlp 120/4000 loss=0.312 eta 0:41`."""
    line = report["trial"]
    if report["total"]:
        line += f" {report['step']}/{report['total']}"
    line += "".join(f" {k}={v:.4g}" for k, v in report["values"].items())
    if report["status"]:
        line += f" ({report['status']})"
    elif report["eta"] is not None:
        line += f" eta {tqdm.format_interval(report['eta'])}"
    return line


def _path() -> Path | None:
    # Under torchrun the other ranks train the same steps: rank 0 alone reports them.
    path = os.environ.get(ENV) if distributed.is_main() else None
    return Path(path) if path else None


def _write(path: Path, report: Report) -> None:
    # Progress is a courtesy: a full disk fails the run where it saves, not here.
    with contextlib.suppress(InputError):
        atomic_write_text(path, json.dumps(report))


class Bar:
    """One trial's progress bar, labelled by the trial, with its latest values as the postfix;
    with $DLCLASSICS_PROGRESS, the same written to that file.

    The loop calls `advance()` every step, which says when the values are due: those that cost
    a device sync (a running loss on the GPU) are computed only then, every `EVERY` seconds."""

    def __init__(
        self,
        trial: str,
        total: int,
        quiet: bool,
        initial: int = 0,
        unit: str = "step",
        leave: bool = False,
    ) -> None:
        self.trial, self.total, self.step = trial, total, initial
        self.status = ""
        self.values: dict[str, float] = {}
        self.path = _path()
        self.bar = tqdm(
            total=total,
            initial=initial,
            desc=trial,
            unit=unit,
            leave=leave,
            disable=bar_disabled(quiet),
        )
        self.inert = self.bar.disable and self.path is None
        # The rate is timed from the end of the first step: that one also warms up.
        self.timed: tuple[float, int] | None = None
        self._report()
        self.last = -math.inf  # the values of the first step show at once

    def __enter__(self) -> "Bar":
        return self

    def __exit__(
        self, kind: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.bar.close()

    def advance(self, steps: int = 1) -> bool:
        """Count `steps` done; whether it is time to `show` the values: every EVERY seconds,
        and at the last step, so that a trial shorter than that ends showing its own."""
        self.step += steps
        self.bar.update(steps)
        if self.timed is None:
            self.timed = time.monotonic(), self.step
        due = self.step >= self.total or time.monotonic() - self.last >= EVERY
        return not self.inert and due

    def show(self, **values: float) -> None:
        """The latest values, in the bar's postfix and the file."""
        self.values |= values
        self.bar.set_postfix({k: f"{v:.4g}" for k, v in self.values.items()})
        self._report()

    @contextlib.contextmanager
    def doing(self, status: str) -> Iterator[None]:
        """Say what the trial does meanwhile ("evaluating val"), in the bar and the file."""
        self.status = status
        self.bar.set_description(f"{self.trial} ({status})")
        self._report()
        try:
            yield
        finally:
            self.status = ""
            self.bar.set_description(self.trial)
            self._report()

    def _report(self) -> None:
        self.last = time.monotonic()
        if self.path is None:
            return
        eta = None
        if self.timed is not None and self.step > self.timed[1]:
            start, step = self.timed
            eta = (self.total - self.step) * (self.last - start) / (self.step - step)
        values = {k: v for k, v in self.values.items() if math.isfinite(v)}  # NaN is no JSON
        _write(
            self.path,
            Report(
                trial=self.trial,
                step=self.step,
                total=self.total,
                eta=eta,
                status=self.status,
                values=values,
            ),
        )


@contextlib.contextmanager
def status(trial: str, text: str, quiet: bool) -> Iterator[None]:
    """A status line while a trial does something other than steps ("encoding the corpus").
    The terminal's line does not name the trial: its name there says that its training started,
    that a Ctrl-C now saves its state (`lm train`); the progress file does name it."""
    path = _path()
    if path is not None:
        _write(path, Report(trial=trial, step=0, total=None, eta=None, status=text, values={}))
    with tqdm(desc=text, bar_format="{desc}...", leave=False, disable=bar_disabled(quiet)):
        yield
