"""A study is a list of independent trials; this runs them, keeping each one's result.

Every experiment has the same shape: a frozen config dataclass (the one place its defaults live),
`trials(config)`, `run_trial(config, trial, directory) -> TrialResult` and
`summarize(config, results, run) -> Summary`. A trial's result is saved as JSON in the trial's own
folder next to its checkpoint, so a study run again with the same settings skips the trials it
finished, and a trial can run in this process, in a worker or on another machine.
"""

import functools
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from importlib import import_module
from pathlib import Path
from types import ModuleType
from typing import Any, Generic, Protocol, TypeVar

from dlclassics import distributed
from dlclassics.bounds import conforms
from dlclassics.errors import InputError
from dlclassics.rundir import (
    MAX_RECORD_BYTES,
    RunDir,
    make_dir,
    parse_json,
    read_run_file,
    write_json,
)

RESULT_FILE = "result.json"
# The layout of result.json: a file of another layout (an older or newer version's) is a trial
# not finished here, which runs again.
RESULT_FORMAT = 1
TRIALS = "trials"

C = TypeVar("C")
T = TypeVar("T", bound="Trial")
R = TypeVar("R")

# A logger takes the values of one step: numbers become TensorBoard scalars, strings text.
Log = Callable[[Mapping[str, float | str], int], None]


class Trial(Protocol):
    @property
    def name(self) -> str: ...


@dataclass(frozen=True)
class Summary:
    """What a study writes: `results.json`'s content and `results.md`'s (the plots are files)."""

    results: dict[str, Any]
    markdown: str


@dataclass(frozen=True)
class Experiment(Generic[C, T, R]):
    """A study command's parts, as the runners (here and in `workers`) need them."""

    command: str  # "mnist cnn": what config.json and a shared study record
    config_type: type[C]
    trials: Callable[[C], Sequence[T]]
    run_trial: Callable[..., R]
    result_type: type[R]
    summarize: Callable[[C, list[R], RunDir], Summary]


@dataclass(frozen=True)
class Scale:
    """Where a study's trials run: `--storage`, `--study-name`, `--workers`; all unset, in this
    process one after another. `wait=False` (`--no-wait`): a worker leaves once no trial is
    waiting, instead of staying until the running ones finish."""

    storage: str | None = None
    study_name: str | None = None
    workers: int | None = None
    wait: bool = True

    @property
    def shared(self) -> bool:
        return self.storage is not None or self.workers is not None


ONE_PROCESS = Scale()


def trial_dir(root: Path, trial: Trial) -> Path:
    return Path(root) / TRIALS / trial.name


def _record(config: Any, trial: Any) -> dict[str, Any]:
    # Through JSON, so that a config read back from a file compares equal to a fresh one.
    return json.loads(json.dumps({"config": asdict(config), "trial": asdict(trial)}))


def load_result(config: C, trial: T, directory: Path, result_type: type[R], root: Path) -> R | None:
    """The result saved in `directory` by this very trial of this config, else None: also for a
    result.json of another format or shape, so that the trial runs again. A result.json that is
    a symbolic link, or lies outside the run directory `root`, is an InputError."""
    path = directory / RESULT_FILE
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
    write_json(directory / RESULT_FILE, record)


def run_study(
    experiment: Experiment, config: Any, run: RunDir, quiet: bool, scale: Scale = ONE_PROCESS
) -> Summary | None:
    """Run the study's trials, summarise them and write the run directory: in this process, or
    shared through Optuna's storage among workers (`dlclassics.workers`, which imports Optuna
    only when asked to). Under torchrun only rank 0 summarises: the other ranks get None."""
    if scale.shared:
        if distributed.launched():
            raise InputError(
                "torchrun spreads one run over processes and --storage/--workers spread a "
                "study's runs over workers: use one or the other"
            )
        return workers_module().run_shared(experiment, config, run, quiet, scale)
    trials = experiment.trials(config)
    results = run_trials(
        config, trials, experiment.run_trial, experiment.result_type, run.path, quiet
    )
    if not distributed.is_main():
        return None  # under torchrun, rank 0 summarises
    summary = experiment.summarize(config, results, run)
    run.save_results(summary.results, summary.markdown)
    return summary


def workers_module() -> ModuleType:
    """`dlclassics.workers`, which needs Optuna: an InputError saying how to install it."""
    try:
        return import_module("dlclassics.workers")
    except ImportError as e:
        raise InputError(
            f"--storage and --workers need {e.name}: pip install 'dlclassics[scale]'"
        ) from None


@contextmanager
def tensorboard(directory: Path) -> Iterator[Log]:
    """A `Log` writing TensorBoard events into `directory` (on rank 0 of a torchrun job only)."""
    if not distributed.is_main():
        yield lambda values, step: None
        return
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(directory) as writer:

        def log(values: Mapping[str, float | str], step: int) -> None:
            for tag, value in values.items():
                if isinstance(value, str):
                    writer.add_text(tag, value, step)
                else:
                    writer.add_scalar(tag, value, step)

        yield log
