"""What each command writes besides training: the first look at the data and per-model reports."""

from pathlib import Path
from typing import Any

import torch
from torch import nn

from dlclassics.mnist import plots
from dlclassics.mnist.data import NUM_CLASSES, MnistData, normalize
from dlclassics.mnist.evaluate import predict, split_metrics
from dlclassics.report import markdown_table


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
    rows = [[c, *(counts[s][i] for s in counts)] for i, c in enumerate(data.classes)]
    rows.append(["total", *(sum(v) for v in counts.values())])
    return "## The data\n\n" + markdown_table(["class", *counts], rows)


def evaluate_model(
    model: nn.Module, name: str, data: MnistData, plot_dir: Path
) -> tuple[dict[str, Any], str]:
    """Metrics on every split, with a confusion matrix and per-class bars for each."""
    splits, md = {}, f"### {name}\n\n"
    for split_name, split in data.splits().items():
        preds, _ = predict(model, split)
        m = split_metrics(split.labels, preds)
        splits[split_name] = m
        title = f"{name}, {split_name}"
        plots.confusion(
            m["confusion_matrix"], data.classes, title, plot_dir / f"{name}_{split_name}_cm.png"
        )
        plots.per_class_metrics(
            m, data.classes, title, plot_dir / f"{name}_{split_name}_per_class.png"
        )
        rows = [
            [c, m["precision"][i], m["recall"][i], m["f1"][i], m["support"][i]]
            for i, c in enumerate(data.classes)
        ]
        md += (
            f"{split_name}: accuracy {m['accuracy']:.4f}, "
            f"balanced accuracy {m['balanced_accuracy']:.4f}\n\n"
            + markdown_table(["class", "precision", "recall", "F1", "support"], rows)
            + "\n"
        )
    return splits, md


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
