"""Sentences as (input, target) rows, batched by length so that almost nothing is padding.

A sentence w1..wn is read as <START> w1..wn and predicts w1..wn <EOS>. A reverse model gets the
words reversed first (wn..w1), so it predicts every word from the words after it and never sees the
word it has to predict.
"""

from dataclasses import dataclass

import torch

from dlclassics.lm.corpus import Vocabulary
from dlclassics.lm.words import EOS, PAD, START


@dataclass
class Batch:
    inputs: torch.Tensor  # (batch, length), right-padded with <PAD>
    targets: torch.Tensor  # (batch, length), <PAD> where there is no target
    mask: torch.Tensor  # (batch, length), True at real targets

    @property
    def tokens(self) -> int:
        return int(self.mask.sum())


def model_order(sentence: list[str], direction: str) -> list[str]:
    """The words in the order the model reads them."""
    return sentence[::-1] if direction == "reverse" else list(sentence)


def encode(sentences: list[list[str]], vocab: Vocabulary, direction: str) -> list[list[int]]:
    """Each sentence as <START> + word ids in reading order + <EOS>."""
    return [[START, *vocab.encode(model_order(s, direction)), EOS] for s in sentences]


def collate(rows: list[list[int]]) -> Batch:
    """Right-pad to the longest row of this batch only."""
    length = max(len(r) for r in rows) - 1
    ids = torch.full((len(rows), length + 1), PAD, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
    inputs, targets = ids[:, :-1], ids[:, 1:]
    return Batch(inputs.contiguous(), targets.contiguous(), targets != PAD)


def bucket_batches(
    rows: list[list[int]], batch_size: int, generator: torch.Generator | None = None
) -> list[Batch]:
    """Batches of rows of similar length, in random order when a generator is given.

    Rows are sorted by length (ties broken at random), cut into consecutive batches, and the
    batches shuffled, so each batch pads only to its own longest row.
    """
    n = len(rows)
    jitter = torch.rand(n, generator=generator) if generator is not None else torch.zeros(n)
    lengths = torch.tensor([len(r) for r in rows], dtype=torch.float64)
    order = torch.argsort(lengths + jitter * 0.5, stable=True).tolist()
    chunks = [order[i : i + batch_size] for i in range(0, n, batch_size)]
    if generator is not None:
        chunks = [chunks[i] for i in torch.randperm(len(chunks), generator=generator).tolist()]
    return [collate([rows[i] for i in chunk]) for chunk in chunks]
