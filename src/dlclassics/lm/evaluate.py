"""Perplexity: exp(total negative log-likelihood / number of real target tokens), <EOS> included."""

import math

import torch

from dlclassics.lm.batches import bucket_batches
from dlclassics.lm.model import LanguageModel


@torch.no_grad()
def perplexity(
    model: LanguageModel,
    rows: list[list[int]],
    device: torch.device,
    batch_size: int = 256,
) -> float:
    """Always in float32, whatever precision training used, so that it measures the model."""
    if not rows:
        return float("nan")
    was_training = model.training
    model.eval()
    nll, tokens = 0.0, 0
    for batch in bucket_batches(rows, batch_size):
        loss = model.loss_sum(
            batch.inputs.to(device), batch.targets.to(device), batch.mask.to(device)
        )
        nll += float(loss)
        tokens += batch.tokens
    model.train(was_training)
    return math.exp(nll / tokens)
