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
from dlclassics.errors import InputError
from dlclassics.rundir import RunDir, write_json

RESULT_FILE = "result.json"
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


def load_result(config: C, trial: T, directory: Path, result_type: type[R]) -> R | None:
    """The result saved in `directory` by this very trial of this config, else None."""
    try:
        saved = json.loads((directory / RESULT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if {k: saved.get(k) for k in ("config", "trial")} != _record(config, trial):
        return None
    return result_type(**saved["result"])


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
        finished = functools.partial(load_result, config, trial, directory, result_type)
        result = distributed.from_main(finished)
        if result is None:
            result = run_trial(config, trial, directory, quiet=quiet)
            if distributed.is_main():
                save_result(config, trial, directory, result)
        results.append(result)
    return results


def save_result(config: Any, trial: Trial, directory: Path, result: Any) -> None:
    """`directory/result.json`: the result, with the settings it ran with."""
    write_json(directory / RESULT_FILE, _record(config, trial) | {"result": asdict(result)})


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
