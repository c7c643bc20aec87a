import pytest
import torch
from conftest import read_json
from test_mnist_data import write_idx_set

from dlclassics.mnist.data import load, normalize
from dlclassics.mnist.models import load_model
from dlclassics.runtime import resolve_bf16

FC_FAST = ["--iterations", "40"]
CNN_FAST = ["--archs", "single_conv,double_conv", "--batch-sizes", "50", "--eval-every", "5"]


@pytest.fixture(scope="module")
def idx_dir(tmp_path_factory):
    return write_idx_set(tmp_path_factory.mktemp("idx"), n_train=500, n_test=100)


def _without_timings(obj):
    if isinstance(obj, dict):
        return {
            k: _without_timings(v)
            for k, v in obj.items()
            if k != "seconds" and "per_second" not in k
        }
    if isinstance(obj, list):
        return [_without_timings(v) for v in obj]
    return obj


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
        ["fc", "--batch-size", "100000"],
        ["cnn", "--batch-sizes", "50,-1"],
        ["cnn", "--archs", "resnet"],
        ["cnn", "--target-accuracy", "1.5"],
        ["cnn", "--max-epochs", "0"],
        ["cnn", "--device", "cuda:7"] if not torch.cuda.is_available() else ["cnn", "--lr", "-1"],
    ],
)
def test_bad_input_is_one_line_exit_2_no_output(cli, tmp_path, idx_dir, args):
    out = tmp_path / "run"
    result = cli("mnist", *args, "--data-dir", str(idx_dir), "--out", str(out))
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: ")
    assert len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_corrupt_file_is_one_line_naming_it(cli, tmp_path):
    folder = write_idx_set(tmp_path / "idx")
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(b"not gzip at all")
    out = tmp_path / "run"
    result = cli("mnist", "cnn", "--data-dir", str(folder), "--out", str(out))
    assert result.returncode == 2
    assert "train-labels-idx1-ubyte.gz" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_offline_without_data_dir(cli, tmp_path, monkeypatch):
    # A cache path that cannot be a folder makes every download fail before it connects.
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("DLCLASSICS_DATA", str(blocker))
    out = tmp_path / "run"
    result = cli("mnist", "fc", "--out", str(out))
    assert result.returncode == 2
    assert "cannot download train-images-idx3-ubyte.gz" in result.stderr
    assert f"put them in {blocker / 'mnist'}" in result.stderr
    assert not out.exists()


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
        assert len(model["loss_curves"]["val"]) == 1 + 40 // (450 // 50)
    plots = {p.name for p in (out / "plots").iterdir()}
    assert {"class_counts.png", "samples.png", "loss_curves.png", "mlp_test_cm.png"} <= plots
    assert "| total | 450 | 50 | 100 |" in (out / "results.md").read_text()
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))


def test_cnn_runs_best_and_load_model(cli, tmp_path, idx_dir):
    out = tmp_path / "cnn"
    args = [*CNN_FAST, "--max-epochs", "2", "--data-dir", str(idx_dir), "--quiet"]
    result = cli("mnist", "cnn", *args, "--out", str(out))
    assert result.returncode == 0, result.stderr
    results = read_json(out / "results.json")
    assert [(r["arch"], r["batch_size"]) for r in results["runs"]] == [
        ("single_conv", 50),
        ("double_conv", 50),
    ]
    for run in results["runs"]:
        # at most 2 epochs of 450 // 50 = 9 iterations
        assert run["iterations"] <= 18
        assert run["reached_target"] == (run["best_val_accuracy"] >= 0.99)
        assert run["seconds"] > 0
    # bf16 autocast by default exactly where the device computes it natively
    config = read_json(out / "config.json")
    assert config["bf16"] is resolve_bf16(None, torch.device(config["device"]))
    best = results["best"]
    assert best["arch"] in {"single_conv", "double_conv"}
    assert 0 <= best["test_accuracy"] <= 1
    plots = {p.name for p in (out / "plots").iterdir()}
    assert {
        "conv1_filters.png",
        "conv1_maps.png",
        "conv1_maps_relu.png",
        "test_images.png",
    } <= plots

    model = load_model(out)
    assert model.arch == best["arch"] and model.config["batch_size"] == best["batch_size"]
    data = load("mnist", idx_dir, seed=0)
    with torch.inference_mode():
        accuracy = (model(normalize(data.test.images)).argmax(1) == data.test.labels).float().mean()
    assert accuracy.item() == pytest.approx(best["test_accuracy"])


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
    assert read_json(out / "config.json")["bf16"] is False
    assert (out / "results.md").read_text().startswith("# Fashion-MNIST, convolutional")
    (run,) = read_json(out / "results.json")["runs"]
    assert run["reached_target"] and run["iterations"] % 3 == 0 and run["iterations"] < 9 * 20


def test_same_seed_same_results(cli, tmp_path, idx_dir):
    outs = [tmp_path / name for name in ("a", "b")]
    for out in outs:
        result = cli(
            "mnist",
            "fc",
            "--iterations",
            "15",
            "--data-dir",
            str(idx_dir),
            "--seed",
            "3",
            "--out",
            str(out),
            "--quiet",
        )
        assert result.returncode == 0, result.stderr
    a, b = (_without_timings(read_json(out / "results.json")) for out in outs)
    assert a == b


def test_load_model_rejects_a_bad_file(tmp_path):
    from dlclassics.errors import InputError

    bad = tmp_path / "best.pt"
    bad.write_bytes(b"junk")
    with pytest.raises(InputError, match="cannot load a model"):
        load_model(bad)
