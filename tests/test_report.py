import json
import re
from pathlib import Path

import pytest
from conftest import PART, PNG, read_json

from dlclassics import notebook
from dlclassics.core.tables import escape_tokens, plot_order, table
from dlclassics.experiments import PARTS
from dlclassics.interpret import interpret
from dlclassics.reproduce.parts import Outcome
from dlclassics.reproduce.report import report_html, report_markdown


def write_part(directory: Path, results_md: str, plots=(), **files) -> Path:
    (directory / "plots").mkdir(parents=True)
    (directory / "results.md").write_text(results_md)
    for name in plots:
        (directory / "plots" / f"{name}.png").write_bytes(PNG)
    for name, value in files.items():
        (directory / f"{name}.json").write_text(json.dumps(value))
    return directory


def test_tokens_show_as_text_outside_code_and_the_reports_own_tags_stay_tags():
    md = (
        "from <START> to <EOS>, <s> too; `<PAD>` in code\n\n```\n<UNK>\n```\n\n"
        '<details><summary>settings</summary>\n\n</details>\n<p class="failed">x</p>\n'
    )
    assert escape_tokens(md) == (
        "from &lt;START&gt; to &lt;EOS&gt;, &lt;s&gt; too; `<PAD>` in code\n\n```\n<UNK>\n```\n\n"
        '<details><summary>settings</summary>\n\n</details>\n<p class="failed">x</p>\n'
    )


def test_a_token_in_a_parts_results_shows_in_the_html_report(tmp_path):
    done = write_part(
        tmp_path / "lm-study",
        "# LM\n\n## Sentence probabilities (from <START> through the last word)\n\n"
        "| sentence | note |\n|---|---|\n| a cat <EOS> | `<UNK>` |\n",
        config={"start": "<START>"},
    )
    outcomes = [
        Outcome(PART["lm-study"], done, 1.0, command=["dlclassics", "lm", "study"]),
        Outcome(PART["mnist-fc"], tmp_path / "mnist-fc", 0.5, "no <idx> here"),
    ]
    md = report_markdown(outcomes, tmp_path, "Title", 1.5, None)
    assert "(from <START> through the last word)" in md, "report.md keeps the text as written"
    html = report_html(md, tmp_path, "Title")
    assert "Sentence probabilities (from &lt;START&gt; through the last word)</h4>" in html
    assert "<td>a cat &lt;EOS&gt;</td>" in html
    assert "<code>&lt;UNK&gt;</code>" in html  # escaped once, by markdown
    assert "&quot;start&quot;: &quot;&lt;START&gt;&quot;" in html, "the settings, escaped once"
    assert "&amp;lt;" not in html
    assert '<p class="failed">Failed: no &lt;idx&gt; here</p>' in html
    assert "<details><summary>settings</summary>" in html


def test_plots_come_data_first_then_training_results_and_the_models_insides():
    fc = [f"{m}_{s}" for m in ("logreg", "mlp") for s in ("test", "train", "val")]
    fc = [f"{name}_{kind}" for name in fc for kind in ("cm", "per_class")]
    names = [*fc, "class_counts", "loss_curves", "samples", "zebra", "aardvark"]
    order = [p.stem for p in plot_order(Path(f"plots/{n}.png") for n in sorted(names))]
    assert order == [
        *("samples", "class_counts", "loss_curves"),
        *("logreg_test_per_class", "mlp_test_per_class", "logreg_test_cm", "mlp_test_cm"),
        *("logreg_val_per_class", "mlp_val_per_class", "logreg_val_cm", "mlp_val_cm"),
        *("logreg_train_per_class", "mlp_train_per_class", "logreg_train_cm", "mlp_train_cm"),
        *("aardvark", "zebra"),
    ]
    cnn = ["class_counts", "conv1_filters", "conv1_maps", "conv1_maps_relu", "samples"]
    cnn += ["test_images", "val_accuracy"]
    assert [p.stem for p in plot_order(Path(f"{n}.png") for n in cnn)] == [
        *("samples", "class_counts", "val_accuracy"),
        *("conv1_filters", "test_images", "conv1_maps", "conv1_maps_relu"),
    ]


def test_the_mnist_data_is_shown_once(tmp_path):
    data = "## The data\n\n| class | train |\n|---|---|\n| 0 | 38 |\n"
    plots = ("samples", "class_counts", "val_accuracy")
    fc = write_part(tmp_path / "mnist-fc", f"# fc\n\n{data}\n## Results\n\nfc results\n", plots)
    cnn = write_part(tmp_path / "mnist-cnn", f"# cnn\n\n{data}\n## Runs\n\ncnn runs\n", plots)
    outcomes = [Outcome(PART["mnist-fc"], fc, 1.0), Outcome(PART["mnist-cnn"], cnn, 1.0)]
    md = report_markdown(outcomes, tmp_path, "Title", 2.0, None)
    assert md.count("| 0 | 38 |") == 1
    assert '#### The data\n\nThe same as in "MNIST: fully connected" above.\n\n#### Runs' in md
    assert re.findall(r"\]\((\S+)\)", md) == [
        *("mnist-fc/plots/samples.png", "mnist-fc/plots/class_counts.png"),
        *("mnist-fc/plots/val_accuracy.png", "mnist-cnn/plots/val_accuracy.png"),
    ]
    # Other data (another dataset, say) is shown where it is.
    (cnn / "results.md").write_text("# cnn\n\n## The data\n\n| 0 | 40 |\n")
    md = report_markdown(outcomes, tmp_path, "Title", 2.0, None)
    assert "| 0 | 40 |" in md and md.count("samples.png") == 2


def test_a_columns_numbers_share_one_format():
    rows = [
        {"acc": 0.824, "p": 4.698e-09, "ppl": 16.6, "epochs": 7532.67, "lr": 0.1, "n": 199210},
        {"acc": 0.80412, "p": 0.0002212, "ppl": 15.873, "epochs": 391.9, "lr": 0.01, "n": 7850},
        {"acc": None, "p": 1.0, "ppl": 3.0, "epochs": None, "lr": 0.25, "n": True},
    ]
    md = table(rows, {header: header for header in rows[0]})
    assert md.splitlines()[2:] == [
        "| 0.8240 | 4.698e-09 | 16.60 | 7,533 | 0.1 | 199,210 |",
        "| 0.8041 | 2.212e-04 | 15.87 | 392 | 0.01 | 7,850 |",
        "| - | 1.000e+00 | 3.00 | - | 0.25 | yes |",
    ]


LM = {
    "models": [
        {
            "layers": 1,
            "direction": "forward",
            "perplexity": {"test": 100.0},
            "probabilities": [{"unknown_words": ["i"]}, {"unknown_words": []}],
        },
        {
            "layers": 1,
            "direction": "reverse",
            "perplexity": {"test": 110.0},
            "probabilities": [{"unknown_words": ["i", "cupcakes"]}],
        },
        {"layers": 2, "direction": "forward", "perplexity": {"test": 90.0}},
        {"layers": 2, "direction": "reverse", "perplexity": {"test": 85.5}},
    ]
}


@pytest.mark.parametrize(
    ("part", "results", "config", "expected"),
    [
        (
            "xor-solve",
            {
                "configs": [
                    {"k": 1, "bypass": True, "solves_xor": True},
                    {"k": 4, "bypass": False, "solves_xor": True},
                    {"k": 2, "bypass": False, "solves_xor": False},
                ]
            },
            {},
            "2 of the 3 hand-set networks compute XOR (k1-bypass and k4); k2 does not.",
        ),
        (
            "xor-train",
            {
                "configs": [
                    {"k": 1, "bypass": True, "learned_xor": False, "final_loss": 0.69},
                    {"k": 4, "bypass": False, "learned_xor": True, "final_loss": 0.01},
                ]
            },
            {},
            "1 of the 2 trained networks learned XOR (k4); k1-bypass did not. "
            "The lowest final loss is k4's, 0.0100.",
        ),
        (
            "xor-sweep",
            {
                "configs": [
                    {
                        "lr": 0.1,
                        "hidden": 2,
                        "bypass": False,
                        "runs": 3,
                        "successes": 3,
                        "mean_epochs": 7000.0,
                    },
                    {
                        "lr": 0.01,
                        "hidden": 2,
                        "bypass": False,
                        "runs": 5,
                        "successes": 0,
                        "mean_epochs": None,
                    },
                    {
                        "lr": 0.1,
                        "hidden": 1,
                        "bypass": True,
                        "runs": 4,
                        "successes": 3,
                        "mean_epochs": 5000.4,
                    },
                ]
            },
            {},
            "Runs that learned XOR, by learning rate: 0.1: 6/7 (86%), 0.01: 0/5 (0%); worst: "
            "lr 0.01. Runs that learned XOR, by hidden units: 2: 3/8 (38%), 1: 3/4 (75%); "
            "worst: 2 hidden units. Fastest: lr 0.1, 1 hidden unit with the bypass, 5,000 "
            "epochs on average.",
        ),
        (
            "mnist-fc",
            {
                "models": [
                    {"name": "logreg", "splits": {"test": {"accuracy": 0.92}}},
                    {
                        "name": "mlp",
                        "splits": {
                            "test": {
                                "accuracy": 0.97,
                                "confusion_matrix": [[9, 0, 2], [0, 9, 0], [1, 0, 8]],
                            }
                        },
                    },
                ]
            },
            {"dataset": "fashion-mnist"},
            "Best on the test set: mlp, accuracy 0.9700 (logreg 0.9200). The classes mlp "
            "confuses most: T-shirt/top and Pullover (2 test images of T-shirt/top taken for "
            "Pullover, 1 of Pullover for T-shirt/top).",
        ),
        (
            "mnist-cnn",
            {
                "runs": [
                    {
                        "arch": "single_conv",
                        "batch_size": 50,
                        "reached_target": True,
                        "iterations": 1200,
                        "seconds": 30.5,
                    },
                    {
                        "arch": "double_conv",
                        "batch_size": 100,
                        "reached_target": True,
                        "iterations": 900,
                        "seconds": 20.4,
                    },
                    {
                        "arch": "double_conv",
                        "batch_size": 50,
                        "reached_target": False,
                        "iterations": 5000,
                        "seconds": 9.0,
                    },
                ],
                "best": {"arch": "single_conv", "batch_size": 50, "test_accuracy": 0.99},
                "best_test": {"confusion_matrix": [[3, 0], [0, 4]]},
            },
            {"target_accuracy": 0.99},
            "Best by balanced validation accuracy: single_conv at batch 50, test accuracy "
            "0.9900. 2 of 3 runs reached the target validation accuracy 0.99; the fastest, "
            "double_conv at batch 100, in 900 iterations (20.40 seconds). single_conv "
            "misclassifies no test image.",
        ),
        (
            "lm-study",
            LM,
            {},
            "Lowest test perplexity: 2 layers, reverse, 85.50. The reverse models' test "
            "perplexity against the forward ones': +10.0% with 1 layer, -5.0% with 2 layers. "
            "Not in the vocabulary: i and cupcakes; every sentence probability scores each of "
            "them as <UNK> (2 of the 3 sentences scored hold one).",
        ),
    ],
)
def test_each_part_is_interpreted_from_its_results(part, results, config, expected):
    assert interpret(part, results, config) == f"**In short:** {expected}\n\n"


@pytest.mark.parametrize("part", [p.name for p in PARTS])
@pytest.mark.parametrize("results", [None, {}, {"configs": [{}], "models": [{}], "best": 1}, []])
def test_missing_or_strange_results_say_nothing(part, results):
    assert interpret(part, results, None) == ""


def test_the_notebooks_show_the_meaning_the_escaped_results_and_the_data_first(
    tmp_path, monkeypatch
):
    shown = []
    monkeypatch.setattr(notebook, "display", shown.append)
    run = write_part(
        tmp_path,
        "# LM\n\nfrom <START>\n",
        ("zebra", "loss_curves", "samples"),
        config={"command": "lm study"},
        results=LM,
    )
    notebook.show(run)
    markdown, *images = shown
    assert markdown.data.startswith("**In short:** Lowest test perplexity: 2 layers, reverse")
    assert "as &lt;UNK&gt;" in markdown.data and "from &lt;START&gt;" in markdown.data
    assert [Path(i.filename).stem for i in images] == ["samples", "loss_curves", "zebra"]


@pytest.mark.slow
def test_the_quick_reproductions_report_interprets_each_part(quick_run):
    out, result = quick_run
    assert result.returncode == 0, result.stderr
    md = (out / "report.md").read_text()
    said = {}
    for part in PARTS:
        said[part.name] = interpret(
            part.name,
            read_json(out / part.name / "results.json"),
            read_json(out / part.name / "config.json"),
        )
        assert said[part.name].startswith("**In short:** ")
        # At the top of the part's section, under its command line, above its results.
        section = md.split(f"\n## {part.title}\n\n`dlclassics {part.command} ")[1]
        assert section.split("\n\n", 2)[1] + "\n\n" == said[part.name]
    lm = read_json(out / "lm-study" / "results.json")
    unknown = {w for m in lm["models"] for p in m["probabilities"] for w in p["unknown_words"]}
    assert "i" in unknown, "the seed words hold a word the corpus lacks"
    assert re.search(
        r"Not in the vocabulary: [^;]*\bi\b[^;]*; every sentence probability", said["lm-study"]
    )
    fc = read_json(out / "mnist-fc" / "results.json")["models"]
    top = max(m["splits"]["test"]["accuracy"] for m in fc)
    assert all(m["name"] in said["mnist-fc"] for m in fc if m["splits"]["test"]["accuracy"] == top)
    assert f"accuracy {top:.4f}" in said["mnist-fc"]
    html = (out / "report.html").read_text()
    assert "as &lt;UNK&gt;" in html and "from &lt;START&gt; through" in html
    # The data once, the samples first.
    assert md.count("| total |") == 1
    images = re.findall(r"!\[(\w+)\]\(([\w-]+)/", md)
    assert next(name for name, part in images if part == "mnist-fc") == "samples"
    assert ("samples", "mnist-cnn") not in images
