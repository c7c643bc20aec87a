"""The language-model commands' settings: the one place their defaults and bounds live.

Plain dataclasses without torch, so that `--help` and the registry load in a blink.
"""

from dataclasses import dataclass
from typing import ClassVar

from dlclassics.core.bounds import LR, SEED, Int, OneOf, Real, Rules, validate
from dlclassics.core.errors import InputError
from dlclassics.lm.words import SPECIALS, words

DIRECTIONS = ("forward", "reverse")
MAX_WIDTH = 100_000  # the largest embedding or hidden size; the parameter count is checked too
MAX_LAYERS = 2
MAX_WORDS = 10**7  # the largest vocabulary a run may ask for, before the special tokens
# A sentence's words bound the LM's memory, which grows with batch size x longest sentence x
# hidden or vocabulary size.
MAX_SENTENCE_WORDS = 1_000
# Characters of a text given to a model (`lm next`, `lm prob`, the demo): a sentence or two, not a
# document; the logits grow with its words.
MAX_TEXT = 1000

# The one place the network's bounds live: the commands' configs use them, and a checkpoint's
# `model_args` (`model.ModelConfig`) meet them too.
MODEL_RULES: Rules = {
    "vocab_size": Int(1, MAX_WORDS + len(SPECIALS)),
    "layers": Int(1, MAX_LAYERS),
    "direction": OneOf(DIRECTIONS),
    "embedding_size": Int(1, MAX_WIDTH),
    "hidden_size": Int(1, MAX_WIDTH),
}


@dataclass(frozen=True)
class Sampling:
    """How `lm generate` (and the demo) sample sentences, and their defaults."""

    start: str = ""
    length: int = 7  # the original study's sentence length
    temperature: float = 1.0
    count: int = 1
    seed: int = 0
    stop_at_eos: bool = False
    allow_unk: bool = False

    # Each word is one step of the model: these keep `lm generate` to minutes.
    RULES: ClassVar[Rules] = {
        "length": Int(1, 1000),
        "temperature": Real(0),
        "count": Int(1, 10_000),
        "seed": SEED,
    }

    def __post_init__(self) -> None:
        validate(self)
        given = len(words(self.start))
        if given > self.length:
            raise InputError(f"start has {given} words, more than length ({self.length})")


@dataclass(frozen=True)
class LmConfig:
    """The settings `lm train` and `lm study` share, and their defaults."""

    corpus: str | None = None  # None: Simple English Wikipedia, downloaded once
    vocab_size: int = 10_000
    max_length: int | None = None
    embedding_size: int = 300
    hidden_size: int = 256
    epochs: int = 10
    batch_size: int = 128
    lr: float = 0.001
    max_steps: int | None = None
    # The training state is saved at the end of every epoch and every this many steps, so a
    # killed run loses at most that much work.
    checkpoint_every: int = 500
    seed: int = 0
    # The corpus's sha256, recorded by the command: a resume on an edited corpus is refused.
    corpus_sha256: str | None = None

    # Sizes have generous bounds here; `check_cost` then weighs the model and a batch.
    RULES: ClassVar[Rules] = {
        "vocab_size": Int(1, MAX_WORDS),
        "max_length": Int(1, MAX_SENTENCE_WORDS),  # longer sentences are dropped anyway
        "embedding_size": MODEL_RULES["embedding_size"],
        "hidden_size": MODEL_RULES["hidden_size"],
        "epochs": Int(1, 10_000),
        "batch_size": Int(1, 10**6),
        "lr": LR,
        "max_steps": Int(1, 10**9),
        "checkpoint_every": Int(1, 10**9),
        "seed": SEED,
    }

    def __post_init__(self) -> None:
        validate(self)


@dataclass(frozen=True)
class LmTrainConfig(LmConfig):
    """`lm train`: one model."""

    layers: int = 1
    direction: str = "forward"

    RULES: ClassVar[Rules] = LmConfig.RULES | {
        "layers": MODEL_RULES["layers"],
        "direction": MODEL_RULES["direction"],
    }


@dataclass(frozen=True)
class LmStudyConfig(LmConfig):
    """`lm study`: the four models, and the words each generates from and scores."""

    start: str = "love i"
    length: int = Sampling.length  # words in each sentence, as in the original
    stop_at_eos: bool = False  # True: a sentence may end before `length` where the model says so
    sentence: str = "love i cupcakes"

    RULES: ClassVar[Rules] = LmConfig.RULES | {"length": Sampling.RULES["length"]}

    def __post_init__(self) -> None:
        super().__post_init__()
        Sampling(self.start, self.length)  # said before the models train, not after
