"""What the MNIST commands write besides training: the first look at the data, each model's
section of results.md with its figures, and what the first conv layer sees."""

from pathlib import Path
from typing import Any

import torch
from torch import nn

from dlclassics.core.tables import table
from dlclassics.mnist import plots
from dlclassics.mnist.data import NUM_CLASSES, MnistData, normalize
from dlclassics.mnist.evaluate import predict, split_metrics


def first_look(data: MnistData, plot_dir: Path) -> str:
    """Class counts per split (table and bar plot) and sample images per class."""
    counts = {
        name: torch.bincount(split.labels.cpu(), minlength=NUM_CLASSES).tolist()
        for name, split in data.splits().items()
    }
    plots.class_counts(counts, data.classes, plot_dir / "class_counts.png")
    plots.samples_per_class(
        data.train.images, data.train.labels, data.classes, plot_dir / "samples.png"
    )
    rows = [{"class": c} | {s: counts[s][i] for s in counts} for i, c in enumerate(data.classes)]
    rows.append({"class": "total"} | {s: sum(v) for s, v in counts.items()})
    return "## The data\n\n" + table(rows, {"class": "class"} | {s: s for s in counts})


def evaluate_splits(model: nn.Module, data: MnistData) -> dict[str, dict[str, Any]]:
    """`split_metrics` of the model on every split; under torchrun every rank must call it."""
    metrics = {}
    for name, split in data.splits().items():
        preds, _ = predict(model, split, sharded=True)
        metrics[name] = split_metrics(split.labels, preds)
    return metrics


def model_section(
    name: str, splits: dict[str, dict[str, Any]], classes: tuple[str, ...], plot_dir: Path
) -> str:
    """A model's section of results.md, with a confusion matrix and per-class bars per split."""
    md = f"### {name}\n\n"
    columns = {"class": "class", "precision": "precision", "recall": "recall"}
    columns |= {"F1": "f1", "support": "support"}
    for split_name, m in splits.items():
        title = f"{name}, {split_name}"
        plots.confusion(
            m["confusion_matrix"], classes, title, plot_dir / f"{name}_{split_name}_cm.png"
        )
        plots.per_class_metrics(m, classes, title, plot_dir / f"{name}_{split_name}_per_class.png")
        rows = [
            {"class": c} | {key: m[key][i] for key in ("precision", "recall", "f1", "support")}
            for i, c in enumerate(classes)
        ]
        md += (
            f"{split_name}: accuracy {m['accuracy']:.4f}, "
            f"balanced accuracy {m['balanced_accuracy']:.4f}\n\n" + table(rows, columns) + "\n"
        )
    return md


@torch.inference_mode()
def conv_pictures(model: nn.Module, data: MnistData, plot_dir: Path) -> None:
    """conv1's filters; its maps before and after ReLU for 4 test images; the 4 images."""
    conv = model.convs[0]
    images = data.test.images[:4]
    before = conv(normalize(images))
    plots.conv_filters(conv.weight.cpu(), plot_dir / "conv1_filters.png")
    plots.feature_maps(before.cpu(), "conv1 maps before ReLU", plot_dir / "conv1_maps.png")
    plots.feature_maps(
        before.relu().cpu(), "conv1 maps after ReLU", plot_dir / "conv1_maps_relu.png"
    )
    plots.images(images.float().cpu(), plot_dir / "test_images.png")
