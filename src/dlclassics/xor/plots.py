"""Figures of the XOR experiments."""

from pathlib import Path

import numpy as np

from dlclassics.core.plots import count_axis, legend_outside, markers, plt, save_figure
from dlclassics.xor.data import INPUTS, TARGETS


def loss_curves(curves: dict[str, list[float]], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, losses in curves.items():
        ax.plot(range(1, len(losses) + 1), losses, label=label, **markers(len(losses)))
    count_axis(ax)
    ax.set(xlabel="epoch", ylabel="binary cross-entropy (nats)", yscale="log", title="XOR training")
    ax.grid(alpha=0.3)
    legend_outside(ax)
    return save_figure(fig, path)


def _grouped(configs: list[dict], key: str, value: str) -> dict:
    groups: dict = {}
    for c in configs:
        if c[value] is not None:
            groups.setdefault(c[key], []).append(c[value])
    return {k: float(np.mean(v)) for k, v in sorted(groups.items())}


def sweep_plots(configs: list[dict], plots: Path) -> list[Path]:
    paths = []
    for key, value, name, xlabel, ylabel in [
        ("hidden", "mean_epochs", "epochs_vs_hidden.png", "hidden units", "mean epochs to learn"),
        ("bypass", "mean_epochs", "epochs_vs_bypass.png", "bypass", "mean epochs to learn"),
        ("lr", "std_epochs", "std_epochs_vs_lr.png", "learning rate", "std of epochs to learn"),
    ]:
        fig, ax = plt.subplots(figsize=(5, 3.5))
        shown = [c for c in configs if c[value] is not None]
        ax.scatter(
            [int(c[key]) if key == "bypass" else c[key] for c in shown],
            [c[value] for c in shown],
            color="0.6",
            s=12,
            label="one configuration",
        )
        means = _grouped(configs, key, value)
        xs = [int(k) if key == "bypass" else k for k in means]
        ax.plot(xs, list(means.values()), "o-", label="mean over configurations")
        if key == "bypass":
            ax.set_xticks([0, 1], ["no", "yes"])
        if key == "hidden":  # the widths of the grid, not 1.5 or 2.5 units
            ax.set_xticks(list(means))
        if key == "lr":
            ax.set_xscale("log")
        ax.set(xlabel=xlabel, ylabel=ylabel, title=f"{ylabel.capitalize()} by {xlabel}")
        ax.grid(alpha=0.3)
        legend_outside(ax)
        paths.append(save_figure(fig, plots / name))
    return paths


def separating_lines(units: list[dict], path: Path) -> Path:
    """Each hidden unit's line w.x + b = 0 over the unit square, with the XOR points."""
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    xs = np.linspace(-0.25, 1.25, 2)
    for unit in units:
        (w1, w2), b = unit["weight"], unit["bias"]
        if abs(w2) > 1e-9:
            ax.plot(xs, -(w1 * xs + b) / w2, color="tab:blue", alpha=0.4)
        else:
            ax.axvline(-b / w1, color="tab:blue", alpha=0.4)
    colors = ["tab:red" if t else "black" for t in TARGETS.flatten().tolist()]
    ax.scatter(INPUTS[:, 0], INPUTS[:, 1], c=colors, s=60, zorder=3)
    ax.set(xlim=(-0.25, 1.25), ylim=(-0.25, 1.25), xlabel="x1", ylabel="x2")
    ax.set_title("lone hidden unit: separating lines")
    return save_figure(fig, path)
