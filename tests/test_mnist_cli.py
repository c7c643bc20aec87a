import pytest
import torch
from conftest import (
    CNN_FAST,
    assert_one_line_error,
    invoke_cli,
    read_json,
    without_timings,
    write_idx_set,
)

from dlclassics.core.checkpoint import load_checkpoint
from dlclassics.core.errors import InputError
from dlclassics.core.machine import resolve_bf16
from dlclassics.mnist.data import load, normalize
from dlclassics.mnist.models import load_classifier

FC_FAST = ["--iterations", "40"]


@pytest.fixture(scope="module")
def cnn_run(tmp_path_factory, idx_dir):
    """One `mnist cnn` run of two trials, shared by the tests that only read it."""
    out = tmp_path_factory.mktemp("cnn") / "run"
    args = [*CNN_FAST, "--max-epochs", "2", "--data-dir", str(idx_dir), "--quiet"]
    result = invoke_cli("mnist", "cnn", *args, "--out", str(out))
    assert result.returncode == 0, result.stderr
    return out, args


def _accuracy(model: torch.nn.Module, idx_dir) -> float:
    data = load("mnist", idx_dir, seed=0)
    with torch.inference_mode():
        preds = model(normalize(data.test.images)).argmax(1)
    return (preds == data.test.labels).float().mean().item()


@pytest.mark.parametrize("args", [["mnist"], ["mnist", "fc"], ["mnist", "cnn"]])
def test_help(cli, args):
    result = cli(*args, "--help")
    assert result.returncode == 0
    assert "Usage:" in result.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["fc", "--iterations", "0"],
        ["fc", "--lr", "0"],
        ["fc", "--lr", "1e300"],  # torch's Adam would fail inside its update
        ["fc", "--batch-size", "100000"],
        ["cnn", "--batch-sizes", "50,-1"],
        ["cnn", "--batch-sizes", "50,1000"],
        ["cnn", "--archs", "resnet"],
        ["cnn", "--target-accuracy", "1.5"],
        ["cnn", "--max-epochs", "0"],
        ["cnn", "--device", "cuda:7"] if not torch.cuda.is_available() else ["cnn", "--lr", "-1"],
    ],
)
def test_bad_input_is_one_line_exit_2_no_output(cli, tmp_path, idx_dir, args):
    out = tmp_path / "run"
    assert_one_line_error(cli("mnist", *args, "--data-dir", str(idx_dir), "--out", str(out)), out)


def test_corrupt_file_is_one_line_naming_it(cli, tmp_path):
    folder = write_idx_set(tmp_path / "idx")
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(b"not gzip at all")
    out = tmp_path / "run"
    result = cli("mnist", "cnn", "--data-dir", str(folder), "--out", str(out))
    assert_one_line_error(result, out)
    assert "train-labels-idx1-ubyte.gz" in result.stderr


def test_offline_without_data_dir(cli, tmp_path, monkeypatch):
    # A cache path that cannot be a folder makes every download fail before it connects.
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("DLCLASSICS_DATA", str(blocker))
    out = tmp_path / "run"
    result = cli("mnist", "fc", "--out", str(out))
    assert_one_line_error(result, out)
    assert "cannot download train-images-idx3-ubyte.gz" in result.stderr
    assert f"put a copy in {blocker / 'mnist'}" in result.stderr


@pytest.mark.slow  # a dozen per-model plots
def test_fc_run_directory(cli, tmp_path, idx_dir):
    out = tmp_path / "fc"
    result = cli("mnist", "fc", *FC_FAST, "--data-dir", str(idx_dir), "--out", str(out), "--quiet")
    assert result.returncode == 0, result.stderr
    results = read_json(out / "results.json")
    assert [m["name"] for m in results["models"]] == ["logreg", "mlp"]
    assert [m["parameters"] for m in results["models"]] == [7850, 199210]
    for model in results["models"]:
        assert set(model["splits"]) == {"train", "val", "test"}
        test = model["splits"]["test"]
        assert test["accuracy"] > 0.9  # the block position is easy to learn
        assert len(test["f1"]) == 10
        assert sum(map(sum, test["confusion_matrix"])) == 100
        # a check after each epoch of 450 // 50 = 9 iterations, and one after the last
        assert len(model["loss_curves"]["val"]) == 1 + 40 // 9
        assert model["kept_iteration"] in (9, 18, 27, 36, 40)
        assert 0.1 < model["last_test_accuracy"] <= 1
        assert 0.1 < model["last_test_balanced_accuracy"] <= 1
        # the model saved in the trial's folder is the one the metrics describe
        trial = out / "trials" / model["name"]
        assert _accuracy(load_classifier(trial), idx_dir) == pytest.approx(test["accuracy"])
        assert list((trial / "tensorboard").glob("events.out.tfevents.*"))
    plots = {p.name for p in (out / "plots").iterdir()}
    assert {"class_counts.png", "samples.png", "loss_curves.png", "mlp_test_cm.png"} <= plots
    assert "| total | 450 | 50 | 100 |" in (out / "results.md").read_text()
    assert "| model | parameters | kept (iteration) |" in (out / "results.md").read_text()
    # Two models and no chosen one: the run directory names the trial folders to pick from.
    with pytest.raises(InputError, match="holds 2 models"):
        load_classifier(out)


def test_cnn_runs_and_the_best_model(cnn_run, idx_dir):
    out, _ = cnn_run
    results = read_json(out / "results.json")
    runs = results["runs"]
    assert [(r["arch"], r["batch_size"]) for r in runs] == [
        ("single_conv", 50),
        ("double_conv", 50),
    ]
    for run in runs:
        # at most 2 epochs of 450 // 50 = 9 iterations, checked every 5 and at the end
        assert run["iterations"] <= 18
        assert run["reached_target"] == (run["best_val_accuracy"] >= 0.99)
        assert run["kept_iteration"] % 5 == 0 or run["kept_iteration"] == run["iterations"]
    # bf16 autocast by default exactly where the device computes it natively
    machine = read_json(out / "config.json")["machine"]
    assert machine["bf16"] is resolve_bf16(None, torch.device(machine["device"]))
    best = results["best"]
    scores = [r["val_balanced_accuracy"] for r in runs]
    chosen = runs[scores.index(max(scores))]
    assert (best["arch"], best["batch_size"]) == (chosen["arch"], chosen["batch_size"])
    assert best["test_accuracy"] == results["best_test"]["accuracy"] > 0.5
    plots = {p.name for p in (out / "plots").iterdir()}
    assert {
        "conv1_filters.png",
        "conv1_maps.png",
        "conv1_maps_relu.png",
        "test_images.png",
        "val_accuracy.png",
    } <= plots


def test_load_model_from_the_run_and_from_a_trial(cnn_run, idx_dir):
    out, _ = cnn_run
    best = read_json(out / "results.json")["best"]
    chosen = load_classifier(out)  # the run's own checkpoint.pt: the best trial's model
    assert chosen.arch == best["arch"] and chosen.config["batch_size"] == best["batch_size"]
    assert chosen.classes == [str(d) for d in range(10)]
    assert not chosen.training
    assert _accuracy(chosen, idx_dir) == pytest.approx(best["test_accuracy"])
    trial = out / "trials" / f"{best['arch']}_b{best['batch_size']}"
    from_trial = load_classifier(trial)
    for a, b in zip(chosen.state_dict().values(), from_trial.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    other = load_classifier(out / "trials" / "double_conv_b50" / "checkpoint.pt")
    assert other.arch == "double_conv"
    assert load_checkpoint(trial / "checkpoint.pt")["model_args"] == {"arch": best["arch"]}


def test_rerun_reuses_the_finished_trials(cli, cnn_run):
    out, args = cnn_run
    results = out / "results.json"
    before = results.read_text()
    kept = sorted(out.glob("trials/*/result.json")) + sorted(out.glob("trials/*/checkpoint.pt"))
    assert len(kept) == 4
    stamps = [p.stat().st_mtime_ns for p in kept]
    result = cli("mnist", "cnn", *args, "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert [p.stat().st_mtime_ns for p in kept] == stamps
    # Timings included: the reused trials' results are read back, not measured again.
    assert results.read_text() == before


@pytest.mark.slow
def test_target_stops_early(cli, tmp_path, idx_dir):
    out = tmp_path / "cnn"
    args = ["--archs", "double_conv", "--batch-sizes", "50", "--eval-every", "3"]
    result = cli(
        "mnist",
        "cnn",
        *args,
        "--target-accuracy",
        "0.2",
        "--no-bf16",
        "--dataset",
        "fashion-mnist",
        "--data-dir",
        str(idx_dir),
        "--out",
        str(out),
        "--quiet",
    )
    assert result.returncode == 0, result.stderr
    assert read_json(out / "config.json")["machine"] == {"device": "cpu", "bf16": False}
    assert (out / "results.md").read_text().startswith("# Fashion-MNIST, convolutional")
    (run,) = read_json(out / "results.json")["runs"]
    assert run["reached_target"] and run["iterations"] % 3 == 0 and run["iterations"] < 9 * 20
    assert load_classifier(out).classes[0] == "T-shirt/top"


def test_same_seed_same_results(cli, tmp_path, idx_dir):
    # Dropout draws from the global generator: the seed must reach it too.
    args = ["--archs", "double_conv_dropout", "--batch-sizes", "50", "--max-epochs", "1"]
    args += ["--eval-every", "3", "--data-dir", str(idx_dir), "--seed", "3", "--quiet"]
    outs = [tmp_path / name for name in ("a", "b")]
    for out in outs:
        result = cli("mnist", "cnn", *args, "--out", str(out))
        assert result.returncode == 0, result.stderr
    a, b = (without_timings(read_json(out / "results.json")) for out in outs)
    assert a == b
    assert a["runs"][0]["iterations"] == 9


def test_load_model_rejects_a_bad_file(tmp_path):
    bad = tmp_path / "checkpoint.pt"
    bad.write_bytes(b"junk")
    with pytest.raises(InputError, match="cannot load a checkpoint"):
        load_classifier(bad)
    with pytest.raises(InputError, match="no model in"):
        load_classifier(tmp_path / "empty")
