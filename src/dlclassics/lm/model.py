"""Embedding -> LSTM x layers -> Linear over the vocabulary, and saving/loading it."""

import io
import json
import pickle
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from dlclassics.errors import InputError
from dlclassics.lm.corpus import Vocabulary
from dlclassics.rundir import atomic_write_bytes, write_json


@dataclass
class ModelConfig:
    vocab_size: int
    layers: int = 1
    direction: str = "forward"
    embedding_size: int = 300
    hidden_size: int = 256

    def to_dict(self) -> dict:
        return asdict(self)


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


MODEL_FILES = ("model.json", "vocab.json", "model.pt")


def save_model(directory: Path, model: LanguageModel, vocab: Vocabulary) -> None:
    """Weights, vocabulary and shape: everything `load_model` needs."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    atomic_write_bytes(directory / "model.pt", buffer.getvalue())
    vocab.save(directory / "vocab.json")
    write_json(directory / "model.json", model.config.to_dict())


def load_config(directory: Path) -> ModelConfig:
    """The shape in `directory`'s model.json; OSError, ValueError or TypeError if it is not one."""
    return ModelConfig(**json.loads((Path(directory) / "model.json").read_text()))


def load_model(
    directory: Path, device: torch.device | str = "cpu"
) -> tuple[LanguageModel, Vocabulary]:
    """The model and vocabulary saved by `lm train` (or one of `lm study`'s models/*)."""
    directory = Path(directory)
    missing = [name for name in MODEL_FILES if not (directory / name).is_file()]
    if missing:
        hint = ""
        if (directory / "models").is_dir():
            names = sorted(p.name for p in (directory / "models").iterdir())
            hint = f" (a study: pass one of {', '.join(f'{directory}/models/{n}' for n in names)})"
        raise InputError(f"{directory} is not an lm run directory: no {missing[0]}{hint}")
    try:
        config = load_config(directory)
        vocab = Vocabulary.load(directory / "vocab.json")
        model = LanguageModel(config)
        model.load_state_dict(torch.load(directory / "model.pt", map_location="cpu"))
    except (OSError, ValueError, TypeError, RuntimeError, pickle.UnpicklingError) as e:
        raise InputError(f"cannot load the model in {directory}: {str(e).splitlines()[0]}") from e
    if len(vocab) != config.vocab_size:
        raise InputError(f"{directory}: vocab.json does not match model.json")
    return model.to(device).eval(), vocab
