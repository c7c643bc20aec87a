"""`dlclassics tune mnist-cnn|lm` on small generated data: trials pruned, the best settings
reported, Optuna's plots written; bad input refused before a run directory exists."""

import pytest
from conftest import assert_one_line_error, invoke_cli, read_json, write_corpus, write_idx_set

from dlclassics.core.checkpoint import load_checkpoint
from dlclassics.core.errors import InputError
from dlclassics.mnist.config import CnnConfig
from dlclassics.tune.config import CnnSearch

pytest.importorskip("optuna")

# Pruning from the second completed trial on, at any check: a handful of trials prunes some.
PRUNE_EARLY = ["--startup-trials", "2", "--warmup-checks", "1", "--device", "cpu", "--quiet"]


@pytest.fixture(scope="module")
def idx_dir(tmp_path_factory):
    return write_idx_set(tmp_path_factory.mktemp("idx"), n_train=600, n_test=100)


def tune_cnn(idx_dir, out, *args: str):
    return invoke_cli(
        "tune", "mnist-cnn", "--data-dir", str(idx_dir), "--batch-sizes", "25,50",
        "--eval-every", "3", "--out", str(out), *PRUNE_EARLY, *args,
    )  # fmt: skip


def assert_searched(out, n_trials: int, best_of) -> dict:
    """The run directory of a finished search: every trial in the table, some pruned, the best
    the best of the completed ones, and the plots."""
    results = read_json(out / "results.json")
    trials = results["trials"]
    assert [t["number"] for t in trials] == list(range(n_trials))
    assert results["counts"]["pruned"] >= 1
    complete = [t for t in trials if t["state"] == "complete"]
    assert len(complete) >= 2
    best = best_of(complete, key=lambda t: t["value"])
    assert results["best"] == {k: best[k] for k in ("number", "value", "params")}
    for t in trials:
        assert t["checks"] >= 1
        assert (out / "trials" / str(t["number"]) / "tensorboard").is_dir()
    for t in complete:
        assert (out / "trials" / str(t["number"]) / "checkpoint.pt").is_file()
    assert f"Best: trial {best['number']}," in (out / "results.md").read_text()
    for plot in ("optimization_history.png", "param_importances.png"):
        assert (out / "plots" / plot).stat().st_size > 0
    return results


@pytest.mark.slow
def test_tune_mnist_cnn_prunes_and_reports_the_best(tmp_path, idx_dir):
    out = tmp_path / "run"
    result = tune_cnn(idx_dir, out, "--n-trials", "8", "--epochs", "2", "--seed", "0")
    assert result.returncode == 0, result.stderr
    results = assert_searched(out, 8, max)
    assert results["direction"] == "maximize"
    for t in results["trials"]:
        params = t["params"]
        assert params["batch_size"] in (25, 50)
        assert 1e-4 <= params["lr"] <= 1e-2
        # Only the dropout CNN has its rate searched; every checkpoint records the rate it
        # was trained with.
        assert ("dropout" in params) == (params["arch"] == "double_conv_dropout")
        if t["state"] == "complete":
            assert 0 <= t["value"] <= 1
            saved = load_checkpoint(out / "trials" / str(t["number"]) / "checkpoint.pt")
            assert saved["config"]["dropout"] == params.get("dropout", CnnConfig.dropout)
            assert isinstance(saved["config"]["dropout"], float)
    assert read_json(out / "config.json")["command"] == "tune mnist-cnn"
    assert (out / "study.db").is_file()


@pytest.mark.slow
def test_tune_lm_prunes_and_reports_the_best(tmp_path):
    corpus = write_corpus(tmp_path / "corpus.txt")
    out = tmp_path / "run"
    result = invoke_cli(
        "tune", "lm", "--corpus", str(corpus), "--n-trials", "6", "--epochs", "3",
        "--embedding-sizes", "8,16", "--hidden-sizes", "8,16", "--batch-size", "16",
        "--out", str(out), *PRUNE_EARLY,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    results = assert_searched(out, 6, min)
    assert results["direction"] == "minimize"
    pruned = [t for t in results["trials"] if t["state"] == "pruned"]
    assert all(t["checks"] < 3 for t in pruned)  # stopped before the budget's last epoch
    assert {t["params"]["layers"] for t in results["trials"]} <= {1, 2}


def test_one_trial_writes_no_importances(tmp_path, idx_dir):
    out = tmp_path / "run"
    result = tune_cnn(idx_dir, out, "--n-trials", "1", "--epochs", "1")
    assert result.returncode == 0, result.stderr
    assert read_json(out / "results.json")["counts"]["complete"] == 1
    assert (out / "plots" / "optimization_history.png").is_file()
    assert not (out / "plots" / "param_importances.png").exists()  # it needs two trials


@pytest.mark.parametrize(
    "args",
    [
        ["--lr", "0.01,0.001"],  # low above high
        ["--lr", "0.001"],  # not a range
        ["--dropout", "0.2,1.5"],
        ["--n-trials", "0"],
        ["--archs", "mlp"],
        ["--storage", "not a url"],
    ],
)
def test_bad_input_is_one_line_and_leaves_no_run(tmp_path, idx_dir, args):
    out = tmp_path / "run"
    assert_one_line_error(tune_cnn(idx_dir, out, *args), out)


def test_missing_data_is_one_line_and_leaves_no_run(tmp_path):
    out = tmp_path / "run"
    result = invoke_cli("tune", "lm", "--corpus", str(tmp_path / "none.txt"), "--out", str(out))
    assert_one_line_error(result, out)


def test_a_study_in_a_storage_is_continued_and_kept_to_its_command(tmp_path, idx_dir):
    corpus = write_corpus(tmp_path / "corpus.txt")
    storage = ["--storage", f"sqlite:///{tmp_path / 'shared.db'}", "--study-name", "s"]
    small = ["--embedding-sizes", "8", "--hidden-sizes", "8", "--epochs", "1", "--n-trials", "1"]
    for run in ("first", "second"):
        result = invoke_cli(
            "tune", "lm", "--corpus", str(corpus), *small, *storage, "--out", str(tmp_path / run),
            *PRUNE_EARLY,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
    trials = read_json(tmp_path / "second" / "results.json")["trials"]
    assert [t["number"] for t in trials] == [0, 1]  # the second run added a trial to the first's
    assert "storage" not in read_json(tmp_path / "second" / "config.json")
    out = tmp_path / "cnn"
    result = tune_cnn(idx_dir, out, "--n-trials", "1", *storage)
    assert_one_line_error(result, out)
    assert "is a `dlclassics tune lm` study" in result.stderr


@pytest.mark.parametrize("name", ["lr", "dropout"])
def test_a_range_is_two_values_low_first_in_the_config_too(name):
    for bad in [(0.5, 0.25), (0.25,), (0.25, 0.5, 0.75)]:
        with pytest.raises(InputError, match=f"{name} takes a range, low,high"):
            CnnSearch(**{name: bad})
    assert getattr(CnnSearch(**{name: (0.25, 0.5)}), name) == (0.25, 0.5)
