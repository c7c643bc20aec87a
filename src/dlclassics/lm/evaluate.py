"""Perplexity: exp(total negative log-likelihood / number of real target tokens), <EOS> included."""

import math

import torch

from dlclassics.core import distributed
from dlclassics.lm.batches import bucket_batches
from dlclassics.lm.model import LanguageModel


@torch.no_grad()
def perplexity(
    model: LanguageModel,
    rows: list[list[int]],
    device: torch.device,
    batch_size: int = 256,
    sharded: bool = False,
) -> float:
    """Always in float32, whatever precision training used, so that it measures the model.

    `sharded`: in a torchrun job, each rank measures its share of the batches and the sums are
    added up over the ranks; every rank must call it then."""
    if not rows:
        return float("nan")
    was_training = model.training
    model.eval()
    nll, tokens = 0.0, 0
    batches = bucket_batches(rows, batch_size)
    for batch in distributed.shard(batches) if sharded else batches:
        loss = model.loss_sum(
            batch.inputs.to(device), batch.targets.to(device), batch.mask.to(device)
        )
        nll += float(loss)
        tokens += batch.tokens
    model.train(was_training)
    if sharded and distributed.active():
        nll, tokens = distributed.sum_over_ranks(
            torch.tensor([nll, tokens], dtype=torch.float64)
        ).tolist()
    return exp(nll / tokens)


def exp(x: float) -> float:
    """math.exp, but infinite where it overflows: the perplexity of a model that diverged."""
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf
