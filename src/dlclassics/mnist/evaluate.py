"""Predictions over a whole split, and the classification metrics reported for it."""

from typing import TypedDict

import numpy as np
import torch
from torch import nn

from dlclassics.core import distributed
from dlclassics.mnist.data import NUM_CLASSES, Split, normalize


@torch.inference_mode()
def predict(
    model: nn.Module, split: Split, batch_size: int = 500, sharded: bool = False
) -> tuple[torch.Tensor, float]:
    """Predicted classes and mean cross-entropy loss, in eval mode (no dropout).

    `sharded`: in a torchrun job, each rank predicts its share of the batches and the ranks add
    up their predictions (zero elsewhere) and losses; every rank must call it then."""
    was_training = model.training
    model.eval()
    preds = torch.zeros(len(split), dtype=torch.long, device=split.labels.device)
    loss = torch.zeros(())
    starts = list(range(0, len(split), batch_size))
    for start in distributed.shard(starts) if sharded else starts:
        logits = model(normalize(split.images[start : start + batch_size]))
        labels = split.labels[start : start + batch_size]
        loss += nn.functional.cross_entropy(logits, labels, reduction="sum").cpu()
        preds[start : start + batch_size] = logits.argmax(1)
    model.train(was_training)
    if sharded:
        preds, loss = distributed.sum_over_ranks(preds), distributed.sum_over_ranks(loss)
    return preds, loss.item() / len(split)


def balanced_accuracy(labels: torch.Tensor, preds: torch.Tensor) -> float:
    """Mean per-class recall over the classes present (scikit-learn's `balanced_accuracy_score`),
    computed on the tensors' device: the one definition, for the checks and the reports."""
    hits = torch.bincount(labels[preds == labels], minlength=NUM_CLASSES).double()
    counts = torch.bincount(labels, minlength=NUM_CLASSES).double()
    present = counts > 0
    return (hits[present] / counts[present]).mean().item()


class SplitMetrics(TypedDict):
    accuracy: float
    balanced_accuracy: float
    precision: list[float]  # per class
    recall: list[float]
    f1: list[float]
    support: list[int]
    confusion_matrix: list[list[int]]


def split_metrics(labels: torch.Tensor, preds: torch.Tensor) -> SplitMetrics:
    """Accuracy, balanced accuracy, the per-class report and the confusion matrix."""
    # Imported here: scikit-learn takes seconds to import, which every dlclassics command would pay.
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    y, p = labels.cpu().numpy(), preds.cpu().numpy()
    classes = np.arange(NUM_CLASSES)
    precision, recall, f1, support = precision_recall_fscore_support(
        y, p, labels=classes, zero_division=0
    )
    return SplitMetrics(
        accuracy=float(accuracy_score(y, p)),
        balanced_accuracy=balanced_accuracy(labels, preds),
        precision=precision.tolist(),
        recall=recall.tolist(),
        f1=f1.tolist(),
        support=support.tolist(),
        confusion_matrix=confusion_matrix(y, p, labels=classes).tolist(),
    )
