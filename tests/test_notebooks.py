from pathlib import Path

import nbformat
import pytest
from conftest import read_json, write_idx_set, write_svo_corpus
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))

# What each notebook must show: per experiment it runs, a header row of its results table, and
# the keys of the results.json in that experiment's run directory.
SHOWN = {
    "lstm_language_model_forward_reverse": {
        "lm-study": ("| layers | direction | train | val | test |", {"models", "vocab_size"}),
    },
    "mnist_from_simple_networks_to_cnns": {
        "mnist-fc": ("| model | parameters | kept (iteration) | train acc | val acc |", {"models"}),
        "mnist-cnn": ("| arch | batch | reached target |", {"runs", "best", "best_test"}),
    },
    "xor_hyperparameter_exploration": {
        "xor-sweep": (
            "| lr | hidden | bypass | successes | failures |",
            {"seconds", "run_epochs", "configs", "hidden_unit"},
        ),
    },
    "xor_implementation_and_analysis": {
        "xor-train": ("| k | bypass | final loss | learned XOR |", {"configs", "loss_curves"}),
    },
}


@pytest.fixture(scope="module")
def data_home(tmp_path_factory):
    """$DLCLASSICS_DATA laid out as the downloads would leave it, with tiny generated data."""
    home = tmp_path_factory.mktemp("data")
    write_idx_set(home / "mnist", n_train=400, n_test=100)
    (home / "lm").mkdir()
    write_svo_corpus(home / "lm" / "wikisimple.txt")
    return home


def test_there_are_four_notebooks_committed_without_outputs():
    assert sorted(p.stem for p in NOTEBOOKS) == sorted(SHOWN)
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), path.name


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom_in_quick_mode(path, data_home, tmp_path, monkeypatch):
    monkeypatch.setenv("DLCLASSICS_QUICK", "1")
    monkeypatch.setenv("DLCLASSICS_DATA", str(data_home))
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    markdown = "\n".join(
        o.data["text/markdown"] for o in outputs if "text/markdown" in o.get("data", {})
    )
    for name, (header, keys) in SHOWN[path.stem].items():
        assert header in markdown, f"{name}'s results table is shown"
        run = tmp_path / "runs" / f"notebook-{name}"
        assert read_json(run / "results.json").keys() == keys
    shown = {mime for o in outputs for mime in o.get("data", {})}
    if "lstm" not in path.stem:
        assert "image/png" in shown, "plots are shown inline"
    else:
        assert "application/vnd.jupyter.widget-view+json" in shown, "the widget panel is shown"
