"""The figures: every curve visible however few its points, confusion counts readable, legends
off the data, and the language model's loss and perplexity plots from `lm train` and `lm study`."""

import random

import numpy as np
import pytest
from conftest import invoke_cli
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from PIL import Image
from torch.utils.tensorboard import SummaryWriter

from dlclassics.core import plots
from dlclassics.lm import plots as lm_plots
from dlclassics.lm.experiment import STUDY_TRIALS
from dlclassics.mnist import plots as mnist_plots
from dlclassics.xor import plots as xor_plots

CLASSES = [str(d) for d in range(10)]


@pytest.fixture
def figures(monkeypatch):
    """The figures the plot modules save, kept for a look after they are written."""
    kept: list[Figure] = []

    def keep(fig, path):
        kept.append(fig)
        return plots.save_figure(fig, path)

    for module in (mnist_plots, xor_plots, lm_plots):
        monkeypatch.setattr(module, "save_figure", keep)
    return kept


def data_lines(fig: Figure) -> list[Line2D]:
    return [line for ax in fig.axes for line in ax.get_lines()]


def assert_points_drawn(fig: Figure) -> None:
    """Every point of every curve changes the pixel it lies on: a one-point line without a
    marker leaves it background."""
    canvas = FigureCanvasAgg(fig)  # a closed figure's canvas no longer draws
    canvas.draw()
    pixels = np.asarray(canvas.buffer_rgba())[..., :3]
    height = pixels.shape[0]
    for line in data_lines(fig):
        for x, y in line.get_transform().transform(line.get_xydata()):
            row, col = int(height - y), int(x)
            assert (pixels[row, col] != 255).any(), f"{line.get_label()}: nothing at ({x}, {y})"


def assert_legends_outside(fig: Figure) -> None:
    FigureCanvasAgg(fig).draw()
    for ax in fig.axes:
        legend = ax.get_legend()
        if legend is not None:
            assert not legend.get_window_extent().overlaps(ax.get_window_extent())


def assert_png(path) -> None:
    """A PNG that is not one flat colour."""
    with Image.open(path) as image:
        assert image.format == "PNG" and min(image.size) > 100
        assert len(image.convert("L").getcolors(2**16)) > 1


def test_one_point_curves_show_markers(tmp_path, figures):
    mnist_plots.loss_curves(
        {"mlp": {"epoch": [1], "train": [0.5], "val": [0.6]}}, tmp_path / "loss.png"
    )
    mnist_plots.val_accuracy_curves({"lenet_b64": ([100], [0.9])}, tmp_path / "val.png")
    xor_plots.loss_curves({"k1 bypass": [0.7]}, tmp_path / "xor.png")
    lm_plots.loss_curves({"layers1-forward": ([1], [5.0])}, tmp_path / "lm.png")
    assert len(figures) == 4
    for fig in figures:
        assert data_lines(fig)
        assert all(line.get_marker() not in (None, "None", "") for line in data_lines(fig))
        assert_points_drawn(fig)
        assert_legends_outside(fig)
    for name in ("loss.png", "val.png", "xor.png", "lm.png"):
        assert_png(tmp_path / name)


def test_long_curves_are_lines_without_markers(tmp_path, figures):
    epochs = list(range(1, 51))
    mnist_plots.loss_curves(
        {
            "mlp": {
                "epoch": epochs,
                "train": [1 / e for e in epochs],
                "val": [2 / e for e in epochs],
            }
        },
        tmp_path / "loss.png",
    )
    steps = list(range(1, 101))
    lm_plots.loss_curves(
        {"layers1-forward": (steps, [5.0 - s / 50 for s in steps])}, tmp_path / "lm.png"
    )
    for fig in figures:
        assert all(line.get_marker() in (None, "None", "") for line in data_lines(fig))
    # The language model's batch losses, and their moving average, labelled by the model's name.
    assert [t.get_text() for t in figures[1].axes[0].get_legend().get_texts()] == [
        "layers1-forward"
    ]
    assert len(data_lines(figures[1])) == 2


def test_confusion_counts_are_white_on_dark_cells_and_black_on_light_ones(tmp_path, figures):
    matrix = (np.eye(10, dtype=int) * 950 + 3).tolist()
    mnist_plots.confusion(matrix, CLASSES, "mlp, test", tmp_path / "cm.png")
    (fig,) = figures
    texts = fig.axes[0].texts
    assert len(texts) == 100
    for text in texts:
        x, y = text.get_position()
        assert text.get_color() == ("white" if x == y else "black")
        assert text.get_fontsize() >= 9
    assert_png(tmp_path / "cm.png")


def test_bar_chart_legends_sit_outside_the_bars(tmp_path, figures):
    counts = {"train": [5400] * 10, "val": [600] * 10, "test": [1000] * 10}
    mnist_plots.class_counts(counts, CLASSES, tmp_path / "counts.png")
    metrics = {key: [0.99] * 10 for key in ("precision", "recall", "f1")}
    mnist_plots.per_class_metrics(metrics, CLASSES, "mlp, test", tmp_path / "per_class.png")
    ppl = {t.name: {"train": 20.0, "val": 25.0, "test": None} for t in STUDY_TRIALS}
    lm_plots.perplexities(ppl, tmp_path / "ppl.png")
    configs = [
        {"hidden": h, "bypass": b, "lr": lr, "mean_epochs": 100.0 * h, "std_epochs": 10.0}
        for h in (1, 2)
        for b in (False, True)
        for lr in (0.1, 1.0)
    ]
    xor_plots.sweep_plots(configs, tmp_path)
    assert len(figures) == 6
    for fig in figures:
        assert fig.axes[0].get_legend() is not None
        assert_legends_outside(fig)
    for path in tmp_path.glob("*.png"):
        assert_png(path)


def test_a_resumed_runs_losses_are_read_back_once_per_step(tmp_path):
    logs = tmp_path / "trials" / "layers1-forward" / "tensorboard"
    # Saved after step 3, killed after step 5; the resumed run logs steps 4 to 8 again.
    for steps, value in ((range(1, 6), 1.0), (range(4, 9), 2.0)):
        with SummaryWriter(logs) as writer:
            for step in steps:
                writer.add_scalar(lm_plots.LOSS_TAG, value, step)
                writer.add_scalar("perplexity/train", 9.0, step)
    assert lm_plots.read_losses(logs, tmp_path) == (list(range(1, 9)), [1.0] * 3 + [2.0] * 5)
    # A link to event files elsewhere is not read.
    elsewhere = tmp_path.parent / f"{tmp_path.name}-elsewhere"
    logs.rename(elsewhere)
    logs.mkdir()
    for path in elsewhere.iterdir():
        (logs / path.name).symlink_to(path)
    assert lm_plots.read_losses(logs, tmp_path) == ([], [])


def write_corpus(path):
    r = random.Random(0)
    words = ["love", "i", "you", "cake", "tea", "the", "a", "dog", "cat", "runs", "eats", "big"]
    lines = [" ".join(r.choice(words) for _ in range(r.randint(2, 8))) for _ in range(300)]
    path.write_text("\n".join(f"{s.capitalize()}." for s in lines) + "\n")
    return path


TINY = ["--embedding-size", "8", "--hidden-size", "16", "--batch-size", "16", "--no-bf16"]


@pytest.mark.parametrize("command", ["train", "study"])
def test_lm_runs_plot_each_models_loss_and_the_perplexities(tmp_path, figures, command):
    corpus = write_corpus(tmp_path / "corpus.txt")
    out = tmp_path / "run"
    args = ["--corpus", str(corpus), *TINY, "--epochs", "1", "--max-steps", "6"]
    result = invoke_cli("lm", command, *args, "--out", str(out), "--quiet")
    assert result.returncode == 0, result.stderr
    names = [t.name for t in STUDY_TRIALS] if command == "study" else ["layers1-forward"]
    for png in ("loss_curves.png", "perplexity.png"):
        assert_png(out / "plots" / png)
    perplexity, loss = figures
    assert [text.get_text() for text in loss.axes[0].get_legend().get_texts()] == names
    assert [len(line.get_xdata()) for line in data_lines(loss)] == [6] * len(names)
    assert_points_drawn(loss)
    bars = perplexity.axes[0].patches
    assert len(bars) == 3 * len(names) and all(bar.get_height() > 1 for bar in bars)
