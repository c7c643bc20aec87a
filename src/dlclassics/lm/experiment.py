"""One model from corpus to saved weights and perplexities; `lm train` and `lm study` share it."""

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.tensorboard import SummaryWriter

from dlclassics.lm.batches import encode
from dlclassics.lm.corpus import Splits, Vocabulary, split
from dlclassics.lm.evaluate import perplexity
from dlclassics.lm.generate import generate
from dlclassics.lm.model import LanguageModel, ModelConfig, load_model, save_model
from dlclassics.lm.train import TrainConfig, train
from dlclassics.rundir import write_json
from dlclassics.runtime import seed_everything


@dataclass
class Data:
    vocab: Vocabulary
    splits: Splits


def prepare(sentences: list[list[str]], vocab_size: int, seed: int) -> Data:
    """The vocabulary of the whole corpus, as the original built it, and the 80/10/10 split."""
    return Data(Vocabulary.build(sentences, vocab_size), split(sentences, seed))


def fit(
    data: Data,
    shape: ModelConfig,
    config: TrainConfig,
    device: torch.device,
    directory: Path,
    tb: SummaryWriter,
    quiet: bool,
    tag: str = "",
) -> tuple[LanguageModel, dict]:
    """Train (or resume, or reload when already finished) one model saved in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    state_path = directory / "train_state.pt"
    rows = {
        name: encode(getattr(data.splits, name), data.vocab, shape.direction)
        for name in ("train", "val", "test")
    }
    if (directory / "fit.json").exists():
        model, _ = load_model(directory, device)
        return model, json.loads((directory / "fit.json").read_text())

    seed_everything(config.seed)
    model = LanguageModel(shape).to(device)
    sampler = torch.Generator().manual_seed(config.seed)

    def samples() -> list[str]:
        return [" ".join(generate(model, data.vocab, [], 20, 1.0, sampler)) for _ in range(3)]

    progress = train(
        model, rows["train"], rows["val"], config, device, state_path, tb, quiet, samples, tag
    )
    save_model(directory, model, data.vocab)
    state_path.unlink(missing_ok=True)
    results = _evaluate(model, rows, device)
    results |= {
        "steps": progress.step,
        "epochs_completed": progress.epoch,
        "train_tokens": progress.tokens,
        "train_seconds": progress.seconds,
        "train_tokens_per_second": progress.tokens_per_second,
    }
    write_json(directory / "fit.json", results)
    return model, results


def _evaluate(model: LanguageModel, rows: dict, device: torch.device) -> dict:
    return {
        "perplexity": {
            name: perplexity(model, split_rows, device) for name, split_rows in rows.items()
        }
    }
