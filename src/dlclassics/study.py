"""A study is a list of independent trials (`protocol.Study`); this runs them in this process,
keeping each one's result.

A trial's result is saved as JSON in the trial's own folder next to its checkpoint, with the
config and trial it ran with, so a study run again with the same settings skips the trials it
finished, and a trial can run in this process, in a worker (`workers`) or on another machine.
"""

import functools
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

from dlclassics.core import distributed
from dlclassics.core.bounds import conforms
from dlclassics.core.rundir import (
    MAX_RECORD_BYTES,
    RESULT,
    RunDir,
    make_dir,
    parse_json,
    read_run_file,
    write_json,
)
from dlclassics.protocol import Trial

# The layout of result.json: a file of another layout (an older or newer version's) is a trial
# not finished here, which runs again.
RESULT_FORMAT = 1

C = TypeVar("C")
T = TypeVar("T", bound=Trial)
R = TypeVar("R")


def trial_dir(root: Path, trial: Trial) -> Path:
    return RunDir(root).trial(trial.name)


def _record(config: Any, trial: Any) -> dict[str, Any]:
    # Through JSON, so that a config read back from a file compares equal to a fresh one.
    return json.loads(json.dumps({"config": asdict(config), "trial": asdict(trial)}))


def load_result(config: C, trial: T, directory: Path, result_type: type[R], root: Path) -> R | None:
    """The result saved in `directory` by this very trial of this config, else None: also for a
    result.json of another format or shape, so that the trial runs again. A result.json that is
    a symbolic link, or lies outside the run directory `root`, is an InputError."""
    path = directory / RESULT
    if not path.is_symlink() and not path.is_file():
        return None
    try:
        saved = parse_json(read_run_file(root, path, MAX_RECORD_BYTES))
    except ValueError:
        return None
    if not isinstance(saved, dict) or saved.keys() != {"format", "config", "trial", "result"}:
        return None
    if saved["format"] != RESULT_FORMAT:
        return None
    if {k: saved[k] for k in ("config", "trial")} != _record(config, trial):
        return None
    return parse_result(result_type, saved["result"])


def parse_result(result_type: type[R], value: Any) -> R | None:
    """`value` (from JSON) as a `result_type` dataclass if it has exactly its fields, each of its
    type (checked down through lists, dicts and TypedDicts), else None."""
    if not conforms(value, result_type):
        return None
    return result_type(**value)


def run_trials(
    config: C,
    trials: Sequence[T],
    run_trial: Callable[..., R],
    result_type: type[R],
    root: Path,
    quiet: bool = False,
) -> list[R]:
    """Run each trial in its folder under `root/trials/`, or reuse its saved result.

    `run_trial(config, trial, directory, quiet=quiet)` trains, evaluates and saves one trial;
    `quiet` only turns its progress bar off. In a torchrun job every rank runs the trials
    together: rank 0 decides which are finished, shows the progress and writes the results.
    """
    results = []
    quiet = quiet or not distributed.is_main()
    for trial in trials:
        directory = trial_dir(root, trial)
        finished = functools.partial(load_result, config, trial, directory, result_type, root)
        result = distributed.from_main(finished)
        if result is None:
            if distributed.is_main():
                make_dir(directory)  # a file in the way is one line, before any training
            result = run_trial(config, trial, directory, quiet=quiet)
            if distributed.is_main():
                save_result(config, trial, directory, result)
        results.append(result)
    return results


def save_result(config: Any, trial: Trial, directory: Path, result: Any) -> None:
    """`directory/result.json`: the result, with the settings it ran with."""
    record = {"format": RESULT_FORMAT} | _record(config, trial) | {"result": asdict(result)}
    write_json(directory / RESULT, record)
