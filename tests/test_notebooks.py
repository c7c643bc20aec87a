from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from test_mnist_data import write_idx_set
from test_reproduce import write_corpus

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


@pytest.fixture(scope="module")
def data_home(tmp_path_factory):
    """$DLCLASSICS_DATA laid out as the downloads would leave it, with tiny generated data."""
    home = tmp_path_factory.mktemp("data")
    write_idx_set(home / "mnist", n_train=400, n_test=100)
    (home / "lm").mkdir()
    write_corpus(home / "lm" / "wikisimple.txt")
    return home


def test_there_are_four_notebooks_committed_without_outputs():
    assert len(NOTEBOOKS) == 4
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), path.name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom_in_quick_mode(path, data_home, tmp_path, monkeypatch):
    monkeypatch.setenv("DLCLASSICS_QUICK", "1")
    monkeypatch.setenv("DLCLASSICS_DATA", str(data_home))
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    shown = {mime for o in outputs for mime in o.get("data", {})}
    assert "text/markdown" in shown or "text/plain" in shown
    if "lstm" not in path.stem:
        assert "image/png" in shown, "plots are shown inline"
    else:
        assert "application/vnd.jupyter.widget-view+json" in shown, "the widget panel is shown"
