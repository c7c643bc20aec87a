"""The XOR commands' settings: the one place their defaults and bounds live.

Plain dataclasses without torch, so that `--help` and the registry load in a blink.
"""

from dataclasses import dataclass
from typing import ClassVar

from dlclassics.core.bounds import (
    LR,
    POSITIVE,
    SEED,
    Int,
    Items,
    OneOf,
    Real,
    Rules,
    check_memory,
    validate,
)
from dlclassics.core.errors import InputError


@dataclass(frozen=True)
class SolveConfig:
    """`xor solve`: hand-set weights checked on the four points."""

    temperature: float = 0.001
    weights_file: str | None = None  # a JSON list of networks; None: the built-in HAND_WEIGHTS
    seed: int = 0

    RULES: ClassVar[Rules] = {"temperature": POSITIVE, "seed": SEED}

    def __post_init__(self) -> None:
        validate(self)


@dataclass(frozen=True)
class XorTrainConfig:
    """`xor train`: the three networks of the original (k=1 with bypass, k=2, k=4) trained with
    Adam, or the one network `k` and `bypass` name; from nn.Linear's initialisation, or from the
    weights of `init_file` (a weights file, as `xor solve --weights` reads it)."""

    temperature: float = 0.5
    epochs: int = 1000
    lr: float = 0.01
    k: int | None = None
    bypass: bool = False
    optimizer: str = "adam"
    init_file: str | None = None
    # float64 repeats the lab page's training (JavaScript numbers are doubles) to 1e-9.
    dtype: str = "float32"
    seed: int = 0

    # Every epoch's loss of each network goes into results.json: 10^6 epochs make tens of MB.
    RULES: ClassVar[Rules] = {
        "temperature": POSITIVE,
        "epochs": Int(1, 10**6),
        "lr": LR,
        "k": Int(1, 1024),
        "optimizer": OneOf(("adam", "sgd")),
        "dtype": OneOf(("float32", "float64")),
        "seed": SEED,
    }

    def __post_init__(self) -> None:
        validate(self)
        if self.bypass and self.k is None:
            raise InputError("--bypass is for the one network of --k")


@dataclass(frozen=True)
class GridPoint:
    """One configuration of the study's grid."""

    lr: float
    hidden: int
    bypass: bool


# The original study's extra configuration (--extra): one hidden unit, helped by the bypass.
EXTRA = GridPoint(lr=0.25, hidden=1, bypass=True)


@dataclass(frozen=True)
class SweepConfig:
    """`xor sweep`: the grid (lrs x hiddens x bypass, plus EXTRA) and the protocol of every
    configuration: train until the early-stopping rule (`patience`, `min_delta`) stops a run
    whose best validation loss is below `goal`, or `max_epochs`; make runs until `successes`
    succeed or `max_runs` have been made."""

    lrs: tuple[float, ...] = (0.1, 0.01)
    hiddens: tuple[int, ...] = (2, 4)
    extra: bool = True
    max_epochs: int = 40_000
    patience: int = 10
    min_delta: float = 1e-4
    goal: float = 0.2
    successes: int = 10
    max_runs: int = 15
    seed: int = 0

    RULES: ClassVar[Rules] = {
        "lrs": Items(LR, 100),
        "hiddens": Items(Int(1, 1024), 100),
        "max_epochs": Int(1, 10**6),  # with early stopping most runs end far sooner
        "patience": Int(1, 10**6),
        "min_delta": Real(0),
        "goal": POSITIVE,
        "successes": Int(1, 10**4),
        "max_runs": Int(1, 10**4),
        "seed": SEED,
    }

    def __post_init__(self) -> None:
        validate(self)
        # Every run of the grid trains at once, padded to the widest layer: a few dozen tensors
        # of (width + 3) x runs float32 values.
        runs = len(grid(self)) * self.max_runs
        check_memory(f"{runs:,} runs at once", runs * (max(self.hiddens) + 3) * 4 * 64)


def grid(config: SweepConfig) -> list[GridPoint]:
    points = [
        GridPoint(lr, hidden, bypass)
        for lr in config.lrs
        for hidden in config.hiddens
        for bypass in (False, True)
    ]
    return [*points, EXTRA] if config.extra else points
