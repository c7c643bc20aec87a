"""The shape every experiment has, as the runners (`study`, `workers`) and the command see it.

An experiment is a frozen config dataclass (the one place its defaults live), `trials(config)`,
`run_trial(config, trial, directory, quiet=...) -> result` and `summarize(config, results, run)
-> Summary`. Its module gives them to the runners as one `Study`. Nothing here imports torch: the
registry (`dlclassics.experiments`) and `--help` load without it.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

if TYPE_CHECKING:
    from dlclassics.core.machine import Machine
    from dlclassics.core.rundir import RunDir

C = TypeVar("C")
T = TypeVar("T", bound="Trial")
R = TypeVar("R")


class Trial(Protocol):
    @property
    def name(self) -> str: ...


@dataclass(frozen=True)
class Summary:
    """What a study writes: `results.json`'s content and `results.md`'s (the plots are files)."""

    results: dict[str, Any]
    markdown: str


def unchanged(config: C) -> C:
    return config


@dataclass(frozen=True)
class Study(Generic[C, T, R]):
    """An experiment's parts. `prepare` checks a config before its run directory exists (bad
    data or sizes fail there) and returns it with what a resume must find again (its data's
    sha256); `lines` is what the command prints of the summary. The `run_trial` and `summarize`
    of an experiment that computes on a device take its `machine` (`core.machine.Machine`) too,
    which `on` gives them."""

    trials: Callable[[C], Sequence[T]]
    run_trial: Callable[..., R]
    result_type: type[R]
    summarize: "Callable[[C, list[R], RunDir], Summary]"
    lines: Callable[[C, Summary], list[str]]
    prepare: Callable[[C], C] = unchanged

    def on(self, machine: "Machine | None") -> "Study[C, T, R]":
        """This study computing on `machine` (None: one that takes no machine)."""
        if machine is None:
            return self
        return replace(
            self,
            run_trial=partial(self.run_trial, machine=machine),
            summarize=partial(self.summarize, machine=machine),
        )
