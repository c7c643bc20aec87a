"""`dlclassics reproduce`'s settings: which parts, at which size, on which data.

A plain dataclass without torch, so that `--help` loads in a blink.
"""

from dataclasses import dataclass
from typing import ClassVar

from dlclassics.core.bounds import SEED, ExistingPath, Int, Items, OneOf, Rules, validate
from dlclassics.experiments import PARTS
from dlclassics.mnist.config import MnistConfig

QUICK_LINES = 3000  # sentences of the corpus a quick run trains on


@dataclass(frozen=True)
class ReproduceConfig:
    """Every setting of `dlclassics reproduce`; the data paths are absolute (or None: download)."""

    quick: bool = False
    parts: tuple[str, ...] = tuple(p.name for p in PARTS)
    dataset: str = MnistConfig.dataset  # the mnist commands' default
    data_dir: str | None = None  # the MNIST files
    corpus: str | None = None
    workers: int | None = None  # every part's trials shared among this many workers (`shared`)
    seed: int = 0
    # The corpus's sha256, recorded when the run starts: a resume on an edited corpus path (or an
    # edited corpus) is refused before a line of it is read.
    corpus_sha256: str | None = None

    RULES: ClassVar[Rules] = {
        "parts": Items(OneOf(tuple(p.name for p in PARTS)), len(PARTS)),
        "dataset": MnistConfig.RULES["dataset"],
        # The data may have moved since a run being resumed started: said before any part runs.
        "data_dir": ExistingPath(folder=True),
        "corpus": ExistingPath(folder=False),
        # Not this machine's MAX_WORKERS: a run of a bigger machine resumes here, with fewer
        # (`worker_count`); --workers itself is refused above it.
        "workers": Int(1, 1024),
        "seed": SEED,
    }

    def __post_init__(self) -> None:
        validate(self)
