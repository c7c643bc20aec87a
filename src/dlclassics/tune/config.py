"""`tune`'s settings: what each search varies, its budget and its pruner.

Plain dataclasses without torch, so that `--help` loads in a blink.
"""

from dataclasses import dataclass
from typing import Any, ClassVar

from dlclassics.core.bounds import (
    LR,
    POSITIVE,
    SEED,
    Int,
    Items,
    Real,
    Rules,
    validate,
)
from dlclassics.core.errors import InputError
from dlclassics.lm.config import LmConfig, LmTrainConfig
from dlclassics.mnist.config import CNN_ARCHS, CnnConfig, MnistConfig

# What each process sharing a search may set for itself: its count of trials, its time, its
# pruner, and its seed (so that the processes do not
# all sample the same settings). The rest (data, epochs, ranges) must be the study's.
PER_PROCESS = ("n_trials", "timeout", "startup_trials", "warmup_checks", "seed")


@dataclass(frozen=True)
class Range(Items):
    """low,high: two values, each checked by `item`, low no greater than high."""

    most: int = 2

    def check(self, name: str, value: Any) -> None:
        if len(value) != 2 or value[0] > value[1]:
            shown = ",".join(str(v) for v in value)
            raise InputError(f"{name} takes a range, low,high; got {shown}")
        super().check(name, value)


@dataclass(frozen=True)
class SearchConfig:
    """What every search has: its budget and its pruner."""

    epochs: int = 2  # each trial's budget
    n_trials: int = 20
    timeout: float | None = None  # seconds; stop starting trials after this
    # The median pruner prunes nothing before this many trials completed, nor before a trial's
    # `warmup_checks`-th validation check.
    startup_trials: int = 5
    warmup_checks: int = 1
    seed: int = 0

    RULES: ClassVar[Rules] = {
        "epochs": Int(1, 10_000),
        "n_trials": Int(1, 10_000),
        "timeout": POSITIVE,
        "startup_trials": Int(0, 10_000),
        "warmup_checks": Int(0, 10**6),
        "seed": SEED,
    }

    def __post_init__(self) -> None:
        validate(self)


@dataclass(frozen=True)
class CnnSearch(SearchConfig):
    """`tune mnist-cnn`: maximise balanced validation accuracy."""

    dataset: str = MnistConfig.dataset
    data_dir: str = MnistConfig.data_dir
    archs: tuple[str, ...] = CNN_ARCHS
    lr: tuple[float, ...] = (1e-4, 1e-2)  # searched on a log scale
    batch_sizes: tuple[int, ...] = (50, 100, 200)
    dropout: tuple[float, ...] = (0.0, 0.7)  # double_conv_dropout's rate
    eval_every: int = CnnConfig.eval_every

    RULES: ClassVar[Rules] = SearchConfig.RULES | {
        "dataset": MnistConfig.RULES["dataset"],
        "archs": CnnConfig.RULES["archs"],
        "lr": Range(LR),
        "batch_sizes": CnnConfig.RULES["batch_sizes"],
        "dropout": Range(Real(0, 1)),
        "eval_every": CnnConfig.RULES["eval_every"],
    }


@dataclass(frozen=True)
class LmSearch(SearchConfig):
    """`tune lm`: minimise validation perplexity."""

    corpus: str | None = LmConfig.corpus
    vocab_size: int = LmConfig.vocab_size
    batch_size: int = LmConfig.batch_size
    lr: tuple[float, ...] = (1e-4, 1e-2)  # searched on a log scale
    embedding_sizes: tuple[int, ...] = (100, 200, 300)
    hidden_sizes: tuple[int, ...] = (128, 256, 512)
    layers: tuple[int, ...] = (1, 2)

    RULES: ClassVar[Rules] = SearchConfig.RULES | {
        "vocab_size": LmConfig.RULES["vocab_size"],
        "batch_size": LmConfig.RULES["batch_size"],
        "lr": Range(LR),
        "embedding_sizes": Items(LmConfig.RULES["embedding_size"], 10),
        "hidden_sizes": Items(LmConfig.RULES["hidden_size"], 10),
        "layers": Items(LmTrainConfig.RULES["layers"], 2),
    }
