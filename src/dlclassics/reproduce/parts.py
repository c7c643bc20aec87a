"""The experiments `reproduce` runs, each as its own `dlclassics` command in a subprocess.

A subprocess per part keeps a failing part (no network for MNIST, say) from taking the others
down, and gives each part exactly the command line a user would type. Each finished part leaves
`<part>.json` (its outcome): run again into the same folder (`--resume`), the parts that succeeded
with the same command line are kept, and the others run again, keeping their finished trials.
"""

import functools
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

from tqdm import tqdm

from dlclassics.core import progress
from dlclassics.core.bounds import conforms
from dlclassics.core.errors import InputError
from dlclassics.core.machine import bar_disabled
from dlclassics.core.rundir import (
    MAX_RECORD_BYTES,
    atomic_write_bytes,
    file_sha256,
    parse_json,
    read_run_file,
    write_json,
)
from dlclassics.experiments import PARTS, Experiment
from dlclassics.reproduce.config import QUICK_LINES, ReproduceConfig


@dataclass(frozen=True)
class Watch:
    """Where a part writes its progress, and what shows it."""

    path: Path
    show: Callable[[progress.Report | None], None]


@dataclass
class Outcome:
    part: Experiment
    directory: Path
    seconds: float
    error: str = ""
    command: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.error


def part_config(part: Experiment, config: ReproduceConfig, corpus: str | None) -> Any:
    """The settings `part` runs with: the original protocol's (its defaults) or, with --quick, its
    quick ones; on the reproduction's data and seed (`corpus`: the one to read, a quick run's
    slice)."""
    settings = part.quick if config.quick else part.config_type()
    settings = part.with_data(settings, config.dataset, config.data_dir, corpus)
    return replace(settings, seed=config.seed)


def command_line(
    part: Experiment, out: Path, config: ReproduceConfig, corpus: str | None
) -> list[str]:
    """The `dlclassics` command line of `part`, writing into `out`."""
    settings = part_config(part, config, corpus)
    return [*part.command.split(), "--out", str(out), "--quiet", *part.argv(settings)]


def check_corpus(config: ReproduceConfig, root: Path) -> None:
    """For a resume: an InputError unless the corpus is the one the run in `root` started with,
    by its recorded sha256, checked before a line of it is read into the run."""
    if config.corpus is not None and config.corpus_sha256 != file_sha256(Path(config.corpus)):
        raise InputError(
            f"corpus {config.corpus} is not the one the run in {root} started with (by the "
            "sha256 its config.json records): restore it, or start a new run"
        )


def corpus_slice(corpus: Path, out: Path, lines: int) -> Path:
    """The first `lines` lines of a corpus, for quick runs; the corpus's own checks still apply."""
    with corpus.open("rb") as src:
        head = b"".join(line for _, line in zip(range(lines), src, strict=False))
    atomic_write_bytes(out, head)  # a worker on another machine may be reading it
    return out


def run_command(
    args: list[str],
    log: TextIO,
    env: Mapping[str, str] | None = None,
    running: set[subprocess.Popen] | None = None,
    watch: Watch | None = None,
) -> tuple[float, int, str]:
    """`dlclassics ARGS` in a subprocess, its output appended to `log`: its seconds, exit code and
    one-line error ("" if it succeeded), without the "error: " that the report's FAILED replaces.
    The subprocess is in `running` while it runs; with `watch`, it writes its progress to
    `watch.path`, given to `watch.show` every `progress.EVERY` seconds (None while there is none
    yet) and removed when it ends."""
    log.flush()  # the subprocess appends to the same file
    start = time.perf_counter()
    command = [sys.executable, "-m", "dlclassics", *args]
    if watch is not None:
        env = (os.environ if env is None else env) | {progress.ENV: str(watch.path)}
    with subprocess.Popen(command, stdout=log, stderr=subprocess.PIPE, text=True, env=env) as proc:
        if running is not None:
            running.add(proc)
        try:
            stderr = _wait(proc, watch)
        except BaseException:  # as subprocess.run: the part does not outlive an interrupted wait
            proc.kill()
            raise
        finally:
            if running is not None:
                running.discard(proc)
            if watch is not None:
                watch.path.unlink(missing_ok=True)
    log.write(stderr)
    seconds = time.perf_counter() - start
    if proc.returncode == 0:
        return seconds, 0, ""
    lines = [line for line in stderr.splitlines() if line.strip()]
    error = lines[-1].removeprefix("error: ") if lines else f"exit code {proc.returncode}"
    return seconds, proc.returncode, error


def _wait(proc: subprocess.Popen, watch: Watch | None) -> str:
    """The stderr of `proc`, once it has ended; meanwhile its progress, shown."""
    if watch is None:
        return proc.communicate()[1]
    while True:
        # Between the looks at the progress, communicate goes on reading stderr: a part that
        # fills the pipe is never left waiting on it.
        try:
            return proc.communicate(timeout=progress.EVERY)[1]
        except subprocess.TimeoutExpired:
            watch.show(progress.read_report(watch.path))


def _show(bar: tqdm, part: str, report: progress.Report | None) -> None:
    # Every call redraws the bar, so its elapsed time runs on while a part starts up.
    bar.set_postfix_str(part if report is None else f"{part}: {progress.describe(report)}")


def run_part(
    part: Experiment,
    root: Path,
    config: ReproduceConfig,
    corpus: str | None,
    show: Callable[[progress.Report | None], None] | None = None,
) -> Outcome:
    """Run one part, its output logged to `<part>.log`, its progress given to `show` while it
    runs (see `run_command`); a failure is recorded, not raised."""
    out = root / part.name
    args = command_line(part, out, config, corpus)
    watch = None if show is None else Watch(root / f"{part.name}.progress", show)
    with (root / f"{part.name}.log").open("w", encoding="utf-8") as log:
        seconds, _, error = run_command(args, log, watch=watch)
    outcome = Outcome(part, out, seconds, error, ["dlclassics", *args])
    write_json(
        root / f"{part.name}.json", {"seconds": seconds, "error": outcome.error, "command": args}
    )
    return outcome


def finished_part(
    part: Experiment, root: Path, config: ReproduceConfig, corpus: str | None
) -> Outcome | None:
    """The outcome of this part if it already succeeded in `root` with the same command line."""
    args = command_line(part, root / part.name, config, corpus)
    path = root / f"{part.name}.json"
    if not path.is_file() and not path.is_symlink():
        return None
    try:
        saved = parse_json(read_run_file(root, path, MAX_RECORD_BYTES))
    except ValueError:
        return None
    if not isinstance(saved, dict) or saved.get("command") != args or saved.get("error") != "":
        return None
    seconds = saved.get("seconds")
    if not conforms(seconds, float):
        return None
    return Outcome(part, root / part.name, seconds, "", ["dlclassics", *args])


def selected(config: ReproduceConfig, root: Path) -> tuple[list[Experiment], str | None]:
    """The config's parts, in PARTS order, and the corpus they read (for a quick run, the slice
    of it in `root`)."""
    corpus = config.corpus
    if config.quick and corpus:
        corpus = str(corpus_slice(Path(corpus), root / "corpus-slice.txt", QUICK_LINES))
    return [p for p in PARTS if p.name in config.parts], corpus


def run_parts(
    config: ReproduceConfig,
    root: Path,
    parts: list[Experiment],
    corpus: str | None,
    quiet: bool = False,
) -> list[Outcome]:
    """Run `parts` into `root/<part>/`, one after another, keeping those finished before. On a
    terminal the bar's postfix is the running part's live line: its trial, step, values, ETA."""
    outcomes = []
    with tqdm(parts, desc="reproduce", unit="part", disable=bar_disabled(quiet)) as bar:
        for part in bar:
            show = functools.partial(_show, bar, part.name)
            show(None)
            run = run_part if bar.disable else functools.partial(run_part, show=show)
            outcome = finished_part(part, root, config, corpus) or run(part, root, config, corpus)
            outcomes.append(outcome)
            bar.set_postfix_str("")  # the part's last line, no longer true
            status = "ok" if outcome.ok else f"FAILED: {outcome.error}"
            tqdm.write(f"{part.name}: {status} ({outcome.seconds:.1f} s)")
    return outcomes
