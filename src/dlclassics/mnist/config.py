"""The MNIST commands' settings: the one place their defaults and bounds live.

Plain dataclasses without torch, so that `--help` and the registry load in a blink.
"""

from dataclasses import dataclass
from typing import ClassVar

from dlclassics.core.bounds import (
    LR,
    SEED,
    Int,
    Items,
    OneOf,
    Real,
    Rules,
    validate,
)

DATASETS = ("mnist", "fashion-mnist")  # `data.SOURCES` says where each comes from
FC_ARCHS = ("logreg", "mlp")
CNN_ARCHS = ("single_conv", "double_conv", "double_conv_dropout")
DROPOUT_ARCH = "double_conv_dropout"  # the one network with dropout layers
# Above any dataset's training images (MNIST's: 55,000); `load_data` then checks the real count.
MAX_BATCH = 100_000


@dataclass(frozen=True)
class MnistConfig:
    """The settings both commands have; each command's config adds its own."""

    dataset: str = "mnist"
    data_dir: str = ""  # "": the dataset's files, found or downloaded (see `data.locate`)
    lr: float = 0.001
    seed: int = 0
    # The data files' sha256, recorded by the command: a resume on other data is refused.
    data_sha256: str | None = None

    RULES: ClassVar[Rules] = {
        "dataset": OneOf(DATASETS),
        "lr": LR,
        "seed": SEED,
    }

    def __post_init__(self) -> None:
        validate(self)


@dataclass(frozen=True)
class FcConfig(MnistConfig):
    """`mnist fc`: logistic regression and the MLP, a fixed number of iterations."""

    iterations: int = 13_000
    batch_size: int = 50

    RULES: ClassVar[Rules] = MnistConfig.RULES | {
        "iterations": Int(1, 10**7),
        "batch_size": Int(1, MAX_BATCH),
    }


@dataclass(frozen=True)
class CnnConfig(MnistConfig):
    """`mnist cnn`: each CNN at each batch size, until a validation accuracy target."""

    archs: tuple[str, ...] = CNN_ARCHS
    batch_sizes: tuple[int, ...] = (50, 100)
    target_accuracy: float = 0.99  # a trial stops once a check reaches it
    max_epochs: int = 20
    eval_every: int = 100  # iterations between validation checks
    dropout: float = 0.5  # DROPOUT_ARCH's rate, as in the original; `tune` searches it

    RULES: ClassVar[Rules] = MnistConfig.RULES | {
        "archs": Items(OneOf(CNN_ARCHS), 10),
        "batch_sizes": Items(Int(1, MAX_BATCH), 10),
        "target_accuracy": Real(0, 1, low_open=True),
        "max_epochs": Int(1, 10_000),
        "eval_every": Int(1, 10**7),
        "dropout": Real(0, 1),
    }
