"""Embedding -> LSTM x layers -> Linear over the vocabulary, and saving/loading it."""

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from dlclassics.core.bounds import Rules, check_parameters, conforms, validate
from dlclassics.core.checkpoint import (
    check_weights,
    find_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from dlclassics.core.errors import InputError
from dlclassics.lm.config import MODEL_RULES
from dlclassics.lm.corpus import Vocabulary
from dlclassics.lm.words import SPECIALS


@dataclass(frozen=True)
class ModelConfig:
    """What it takes to build the network (a checkpoint's `model_args`); the command's config
    holds the defaults."""

    vocab_size: int
    layers: int
    direction: str
    embedding_size: int
    hidden_size: int

    RULES: ClassVar[Rules] = MODEL_RULES

    def __post_init__(self) -> None:
        validate(self)
        # Checked before any weight is allocated: a huge size would fail in the allocator.
        check_parameters("the language model", self.parameters)

    @property
    def parameters(self) -> int:
        """The weights' count: embedding, each LSTM layer (4 gates), output layer."""
        e, h, v = self.embedding_size, self.hidden_size, self.vocab_size
        lstm = 4 * h * (e + h + 2) + (self.layers - 1) * 4 * h * (2 * h + 2)
        return v * e + lstm + h * v + v


class LanguageModel(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_size)
        self.lstm = nn.LSTM(
            config.embedding_size, config.hidden_size, config.layers, batch_first=True
        )
        self.out = nn.Linear(config.hidden_size, config.vocab_size)

    def forward(
        self, inputs: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Logits (batch, length, vocab) and the LSTM state after the last position."""
        hidden, state = self.lstm(self.embedding(inputs), state)
        return self.out(hidden), state

    def loss_sum(
        self, inputs: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """Summed negative log-likelihood of the real targets only.

        The output layer is most of the arithmetic, so it runs on the real positions alone;
        trailing padding only costs LSTM steps, and bucketing keeps those few.
        """
        hidden, _ = self.lstm(self.embedding(inputs))
        logits = self.out(hidden[mask])
        return F.cross_entropy(logits.float(), targets[mask], reduction="sum")


def save_model(
    path: Path,
    model: LanguageModel,
    vocab: Vocabulary,
    config: dict[str, Any],
    optimizer: torch.optim.Optimizer | None = None,
    **progress: Any,
) -> Path:
    """A checkpoint holding everything `load_language_model` needs (the vocabulary too); with the
    optimiser and the progress counters it is also a state training can resume from."""
    return save_checkpoint(
        path, model, asdict(model.config), config, optimizer, vocab=vocab.words, **progress
    )


def model_config(path: Path, checkpoint: dict[str, Any]) -> ModelConfig:
    """The checkpoint's `model_args` as a ModelConfig, checked against its weights (whose sizes
    the file bounds) before anything is built: the one place a language model is rebuilt from
    a file, so that a bad field is an InputError naming `path`."""
    args = checkpoint["model_args"]
    if args.keys() != {f.name for f in fields(ModelConfig)}:
        raise InputError(f"{path} is not a language model checkpoint: bad model arguments")
    try:
        config = ModelConfig(**args)
    except InputError as e:
        raise InputError(f"{path}: {e}") from None
    with torch.device("meta"):
        skeleton = LanguageModel(config)
    check_weights(path, skeleton, checkpoint["model"])
    return config


def load_vocabulary(path: Path, checkpoint: dict[str, Any], size: int) -> Vocabulary:
    """The checkpoint's vocabulary: `size` distinct words, the special tokens first."""
    words = checkpoint.get("vocab")
    if (
        not conforms(words, list[str])
        or len(words) != size
        or words[: len(SPECIALS)] != SPECIALS
        or len(set(words)) != len(words)
    ):
        raise InputError(f"{path}: its vocabulary is not the {size} words the model predicts")
    return Vocabulary(words)


def load_language_model(
    path: Path, device: torch.device | str = "cpu", root: Path | None = None
) -> tuple[LanguageModel, Vocabulary]:
    """The model (in eval mode) and vocabulary of a checkpoint file, a trial folder, or an
    `lm train` run directory; with `root`, a file of that run directory (see `load_checkpoint`)."""
    path = find_checkpoint(path)
    checkpoint = load_checkpoint(path, root=root)
    config = model_config(path, checkpoint)
    vocab = load_vocabulary(path, checkpoint, config.vocab_size)
    model = LanguageModel(config)
    model.load_state_dict(checkpoint["model"])
    return model.to(device).eval(), vocab
