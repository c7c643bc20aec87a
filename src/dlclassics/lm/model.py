"""Embedding -> LSTM x layers -> Linear over the vocabulary, and saving/loading it."""

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from dlclassics.checkpoint import find_checkpoint, load_checkpoint, save_checkpoint
from dlclassics.errors import InputError
from dlclassics.lm.corpus import Vocabulary


@dataclass(frozen=True)
class ModelConfig:
    """What it takes to build the network (a checkpoint's `model_args`); the command's config
    holds the defaults."""

    vocab_size: int
    layers: int
    direction: str
    embedding_size: int
    hidden_size: int


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
    """A checkpoint holding everything `load_model` needs (the vocabulary too); with the
    optimiser and the progress counters it is also a state training can resume from."""
    return save_checkpoint(
        path, model, asdict(model.config), config, optimizer, vocab=vocab.words, **progress
    )


def load_model(path: Path, device: torch.device | str = "cpu") -> tuple[LanguageModel, Vocabulary]:
    """The model (in eval mode) and vocabulary of a checkpoint file, a trial folder, or an
    `lm train` run directory."""
    path = find_checkpoint(path)
    checkpoint = load_checkpoint(path)
    if "vocab" not in checkpoint:
        raise InputError(f"{path} is not a language model checkpoint")
    try:
        model = LanguageModel(ModelConfig(**checkpoint["model_args"]))
        model.load_state_dict(checkpoint["model"])
    except (TypeError, RuntimeError) as e:
        raise InputError(f"cannot load the model in {path}: {str(e).splitlines()[0]}") from e
    vocab = Vocabulary(checkpoint["vocab"])
    if len(vocab) != model.config.vocab_size:
        raise InputError(f"{path}: the vocabulary does not match the model")
    return model.to(device).eval(), vocab
