"""The MNIST figures: a first look at the data, training curves, metrics, and what conv1 sees."""

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from dlclassics.core.plots import count_axis, legend_outside, markers, plt, save_figure


def class_counts(counts: dict[str, list[int]], classes: Sequence[str], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(9, 4))
    width = 0.8 / len(counts)
    x = np.arange(len(classes))
    for i, (split, values) in enumerate(counts.items()):
        ax.bar(x + i * width, values, width, label=split)
    ax.set_xticks(x + width * (len(counts) - 1) / 2, classes, rotation=30, ha="right")
    ax.set_xlabel("class")
    ax.set_ylabel("images")
    ax.set_title("Images per class")
    legend_outside(ax, title="split")
    return save_figure(fig, path)


def samples_per_class(
    images: torch.Tensor,
    labels: torch.Tensor,
    classes: Sequence[str],
    path: Path,
    per_class: int = 8,
) -> Path:
    """One row per class, drawn as a single mosaic: one image is much faster than 80 axes."""
    mosaic = torch.zeros(len(classes) * 28, per_class * 28, dtype=torch.uint8)
    for c in range(len(classes)):
        picks = torch.nonzero(labels == c).flatten()[:per_class]
        for j, i in enumerate(picks.tolist()):
            mosaic[c * 28 : (c + 1) * 28, j * 28 : (j + 1) * 28] = images[i].cpu()
    fig, ax = plt.subplots(figsize=(per_class * 0.8 + 1.5, len(classes) * 0.8))
    ax.imshow(mosaic.numpy(), cmap="gray", vmin=0, vmax=255)
    ax.set_xticks([])
    ax.set_yticks([c * 28 + 14 for c in range(len(classes))], classes, fontsize=8)
    ax.set_title("Samples per class")
    return save_figure(fig, path)


def loss_curves(curves: dict[str, dict[str, list[float]]], path: Path) -> Path:
    """`curves[model] = {"epoch": [...], "train": [...], "val": [...]}`."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, c in curves.items():
        style = markers(len(c["epoch"]))
        (line,) = ax.plot(c["epoch"], c["train"], label=f"{name} train", **style)
        ax.plot(c["epoch"], c["val"], "--", color=line.get_color(), label=f"{name} val", **style)
    count_axis(ax)
    ax.set_xlabel("epoch")
    ax.set_ylabel("cross-entropy (nats per image)")
    ax.set_title("Training and validation loss")
    ax.grid(alpha=0.3)
    legend_outside(ax)
    return save_figure(fig, path)


def val_accuracy_curves(curves: dict[str, tuple[list[int], list[float]]], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, (iterations, accuracy) in curves.items():
        ax.plot(iterations, accuracy, label=name, **markers(len(iterations)))
    count_axis(ax)
    ax.set_xlabel("iteration (optimiser step)")
    ax.set_ylabel("validation accuracy")
    ax.set_title("Validation accuracy during training")
    ax.grid(alpha=0.3)
    legend_outside(ax, fontsize=8)
    return save_figure(fig, path)


def confusion(matrix: list[list[int]], classes: Sequence[str], title: str, path: Path) -> Path:
    m = np.array(matrix)
    n = len(classes)
    side = max(5.0, 0.5 * n + 1.5)
    fig, ax = plt.subplots(figsize=(side + 1, side))
    image = ax.imshow(m, cmap="Blues")
    # White on the dark cells and black on the light ones, by the luminance of each cell's colour.
    rgb = image.cmap(image.norm(m))[..., :3]
    dark = rgb @ np.array([0.299, 0.587, 0.114]) < 0.5
    size = float(np.clip(120 / n, 6, 12))
    for (i, j), v in np.ndenumerate(m):
        color = "white" if dark[i, j] else "black"
        ax.text(j, i, str(v), ha="center", va="center", fontsize=size, color=color)
    ax.set_xticks(range(n), classes, rotation=45, ha="right", fontsize=9)
    ax.set_yticks(range(n), classes, fontsize=9)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(f"Confusion matrix: {title}")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="images")
    return save_figure(fig, path)


def per_class_metrics(metrics: dict, classes: Sequence[str], title: str, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(9, 4))
    x = np.arange(len(classes))
    for i, key in enumerate(["precision", "recall", "f1"]):
        ax.bar(x + (i - 1) * 0.27, metrics[key], 0.27, label=key)
    ax.set_xticks(x, classes, rotation=30, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("score")
    ax.set_title(f"Per-class metrics: {title}")
    ax.grid(axis="y", alpha=0.3)
    legend_outside(ax)
    return save_figure(fig, path)


def _grid(maps: torch.Tensor, title: str, path: Path, cmap: str = "gray") -> Path:
    """`maps` is (rows, cols, h, w); each panel scaled on its own."""
    rows, cols = maps.shape[:2]
    fig, axes = plt.subplots(rows, cols, figsize=(1.4 * cols, 1.4 * rows), squeeze=False)
    for r in range(rows):
        for c in range(cols):
            axes[r][c].imshow(maps[r, c].cpu().numpy(), cmap=cmap)
            axes[r][c].axis("off")
    fig.suptitle(title)
    return save_figure(fig, path)


def conv_filters(weight: torch.Tensor, path: Path) -> Path:
    """First-layer filters, (out, 1, k, k)."""
    return _grid(weight[:, 0].unsqueeze(0), "first conv layer filters", path, cmap="bwr")


def images(batch: torch.Tensor, path: Path) -> Path:
    return _grid(batch.unsqueeze(0), "test images", path)


def feature_maps(maps: torch.Tensor, title: str, path: Path) -> Path:
    """(images, channels, h, w): one row per image, one column per channel."""
    return _grid(maps, title, path, cmap="viridis")
