import json
import re
from dataclasses import fields
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import assert_one_line_error, load_xor, read_json, without_timings

from dlclassics.cli import xor as xor_cli
from dlclassics.core.checkpoint import find_checkpoint
from dlclassics.core.errors import InputError
from dlclassics.xor.config import SolveConfig, SweepConfig, XorTrainConfig
from dlclassics.xor.model import XorNet, net_name
from dlclassics.xor.solutions import HAND_WEIGHTS
from dlclassics.xor.train import truth_table

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "args", [[], ["xor"], ["xor", "solve"], ["xor", "train"], ["xor", "sweep"]]
)
def test_help_everywhere(cli, args):
    result = cli(*args, "--help")
    assert result.returncode == 0
    assert "Usage:" in result.stdout


@pytest.mark.parametrize(
    "name, config_type",
    [("solve", SolveConfig), ("train", XorTrainConfig), ("sweep", SweepConfig)],
)
def test_options_take_their_defaults_from_the_config(name, config_type):
    defaults = {p.name: p.default for p in xor_cli.commands[name].params}
    for field in fields(config_type):
        default = field.default
        expected = ",".join(map(str, default)) if isinstance(default, tuple) else default
        assert defaults[field.name] == expected, field.name


@pytest.mark.parametrize(
    "args",
    [
        ["xor", "train", "--lr", "0"],
        ["xor", "train", "--epochs", "0"],
        ["xor", "solve", "--temperature", "-1"],
        ["xor", "sweep", "--max-epochs", "0"],
        ["xor", "sweep", "--hidden", "0"],
        ["xor", "sweep", "--lrs", "-0.1"],
        # nan and inf pass every comparison-based bound unless refused by name.
        ["xor", "train", "--lr", "nan"],
        ["xor", "solve", "--temperature", "nan"],
        ["xor", "solve", "--temperature", "inf"],
        ["xor", "sweep", "--lrs", "0.1,nan"],
        ["xor", "sweep", "--min-delta", "nan"],
        ["mnist", "fc", "--lr", "inf"],
        ["mnist", "cnn", "--target-accuracy", "nan"],
        ["lm", "train", "--lr", "nan"],
    ],
)
def test_bad_hyperparameters_are_one_line_exit_2_no_output(cli, tmp_path, args):
    out = tmp_path / "run"
    assert_one_line_error(cli(*args, "--out", str(out)), out)


def test_wrong_weight_shape_is_rejected(cli, tmp_path):
    weights = tmp_path / "w.json"
    weights.write_text(
        '[{"k": 2, "bypass": false, "hidden_weight": [[1, 1]], "hidden_bias": [0, 0],'
        ' "out_weight": [1, 1], "out_bias": 0}]'
    )
    out = tmp_path / "run"
    result = cli("xor", "solve", "--weights", str(weights), "--out", str(out))
    assert_one_line_error(result, out)
    assert "hidden_weight must have shape (2, 2)" in result.stderr


def test_refuses_a_non_run_directory(cli, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    assert_one_line_error(cli("xor", "solve", "--out", str(tmp_path)))
    assert (tmp_path / "notes.txt").read_text() == "mine"


def _trial_files(run: Path, name: str = "result.json") -> dict[str, tuple[int, int]]:
    """Each trial's file, identified by inode and mtime: a rewrite (always to a new file,
    renamed into place) changes the inode even where mtimes are coarse."""
    files = (run / "trials").glob(f"*/{name}")
    return {p.parent.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in files}


def test_solve_run_directory_and_checkpoints(cli, tmp_path):
    result = cli("xor", "solve", "--out", str(tmp_path / "r"))
    assert result.returncode == 0, result.stderr
    run = tmp_path / "r"
    config = read_json(run / "config.json")
    assert config["command"] == "xor solve"
    assert config["seed"] == 0 and config["version"]
    results = read_json(run / "results.json")
    assert [(c["k"], c["bypass"]) for c in results["configs"]] == [
        (1, True),
        (2, False),
        (4, False),
    ]
    for c in results["configs"]:
        assert c["loss"] == 0.0
        assert c["outputs"] == [0, 1, 1, 0]
        assert c["solves_xor"]
    assert "| 1 | yes | 0 | yes |" in (run / "results.md").read_text()
    assert "k2: loss 0, outputs [0.0, 1.0, 1.0, 0.0]" in result.stdout
    for name, c in zip(["k1-bypass", "k2", "k4"], results["configs"], strict=True):
        trial = run / "trials" / name
        assert list((trial / "tensorboard").glob("events.out.tfevents.*"))
        net = load_xor(trial)
        assert (net.k, net.bypass, net.temperature) == (c["k"], c["bypass"], 0.001)
        assert truth_table(net) == c["outputs"]
    with pytest.raises(InputError, match="holds 3 models"):
        find_checkpoint(run)


def test_solve_rerun_sees_an_edited_weights_file(cli, tmp_path):
    weights, out = tmp_path / "w.json", tmp_path / "run"
    weights.write_text(json.dumps(HAND_WEIGHTS[1:2]))
    assert cli("xor", "solve", "--weights", str(weights), "--out", str(out)).returncode == 0
    assert read_json(out / "results.json")["configs"][0]["solves_xor"]
    # The same file name, other weights (an OR): the trial runs again.
    broken = HAND_WEIGHTS[1] | {"out_weight": [1.0, 0.0]}
    weights.write_text(json.dumps([broken]))
    assert cli("xor", "solve", "--weights", str(weights), "--out", str(out)).returncode == 0
    (config,) = read_json(out / "results.json")["configs"]
    assert config["outputs"] == [0, 1, 1, 1] and not config["solves_xor"]
    assert load_xor(out / "trials" / "k2").weights()["out_weight"] == [1.0, 0.0]


TRAIN = ["xor", "train", "--epochs", "300", "--lr", "0.05", "--quiet"]


@pytest.mark.slow
def test_train_same_seed_same_results(cli, tmp_path):
    runs = []
    for name in ("a", "b"):
        result = cli(*TRAIN, "--out", str(tmp_path / name))
        assert result.returncode == 0, result.stderr
        runs.append(read_json(tmp_path / name / "results.json"))
    assert runs[0] == runs[1]
    assert (tmp_path / "a" / "plots" / "loss_curves.png").stat().st_size > 0
    curves = runs[0]["loss_curves"]
    assert list(curves) == ["k1-bypass", "k2", "k4"]
    assert all(len(c) == 300 and c[-1] < c[0] for c in curves.values())
    # At lr 0.05 and this seed, k=2 ends in a local minimum; the other two learn XOR.
    assert [c["learned_xor"] for c in runs[0]["configs"]] == [True, False, True]
    for name, c in zip(curves, runs[0]["configs"], strict=True):
        assert c["final_loss"] == curves[name][-1]
        assert c["learned_xor"] == ([round(o) for o in c["outputs"]] == [0, 1, 1, 0])
        assert load_xor(tmp_path / "a" / "trials" / name / "checkpoint.pt").temperature == 0.5
        assert truth_table(load_xor(tmp_path / "a" / "trials" / name)) == c["outputs"]


def test_train_rerun_reuses_the_finished_trials(cli, tmp_path):
    out, args = tmp_path / "run", [*TRAIN[:3], "50", *TRAIN[4:]]
    assert cli(*args, "--out", str(out)).returncode == 0
    first, finished = read_json(out / "results.json"), _trial_files(out)
    checkpoints = _trial_files(out, "checkpoint.pt")
    assert sorted(finished) == sorted(checkpoints) == ["k1-bypass", "k2", "k4"]
    assert cli(*args, "--out", str(out)).returncode == 0
    assert _trial_files(out) == finished
    assert _trial_files(out, "checkpoint.pt") == checkpoints
    assert read_json(out / "results.json") == first
    # Other settings are other trials: they train again.
    assert cli(*TRAIN[:3], "40", *TRAIN[4:], "--out", str(out)).returncode == 0
    rerun = _trial_files(out)
    assert all(rerun[name] != finished[name] for name in finished)
    assert all(len(c) == 40 for c in read_json(out / "results.json")["loss_curves"].values())


INIT = {
    "k": 2,
    "bypass": False,
    "hidden_weight": [[0.3, -0.2], [0.5, 0.4]],
    "hidden_bias": [0.1, -0.1],
    "out_weight": [0.2, -0.3],
    "out_bias": 0.05,
}


def _sgd_by_hand(spec: dict, epochs: int, lr: float, temperature: float) -> tuple[list, dict]:
    """Full-batch SGD on BCE in float64, the network written out as tensors: what `xor train
    --optimizer sgd --dtype float64` must compute."""
    w1 = torch.tensor(spec["hidden_weight"], dtype=torch.float64, requires_grad=True)
    b1 = torch.tensor(spec["hidden_bias"], dtype=torch.float64, requires_grad=True)
    w2 = torch.tensor(spec["out_weight"], dtype=torch.float64, requires_grad=True)
    b2 = torch.tensor(spec["out_bias"], dtype=torch.float64, requires_grad=True)
    x = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    y = torch.tensor([0.0, 1.0, 1.0, 0.0], dtype=torch.float64)
    losses = []
    for _ in range(epochs):
        h = torch.sigmoid((x @ w1.T + b1) / temperature)
        p = torch.sigmoid((h @ w2 + b2) / temperature)
        loss = -(y * p.log() + (1 - y) * (1 - p).log()).mean()
        losses.append(loss.item())
        grads = torch.autograd.grad(loss, (w1, b1, w2, b2))
        with torch.no_grad():
            for param, grad in zip((w1, b1, w2, b2), grads, strict=True):
                param -= lr * grad
    weights = {"hidden_weight": w1.tolist(), "hidden_bias": b1.tolist()}
    return losses, weights | {"out_weight": w2.tolist(), "out_bias": b2.item()}


def test_train_one_network_from_an_init_file_with_sgd_in_float64(cli, tmp_path):
    init, out = tmp_path / "weights.json", tmp_path / "run"
    init.write_text(json.dumps([INIT, HAND_WEIGHTS[0]]))  # the k=2 net is picked by --k
    args = ["xor", "train", "--k", "2", "--optimizer", "sgd", "--lr", "0.5", "--epochs", "200"]
    args += ["--temperature", "0.8", "--dtype", "float64", "--init", str(init), "--quiet"]
    assert cli(*args, "--out", str(out)).returncode == 0
    results = read_json(out / "results.json")
    assert list(results["loss_curves"]) == ["k2"]
    losses, weights = _sgd_by_hand(INIT, 200, 0.5, 0.8)
    # The same float64 arithmetic up to the order of a few sums.
    assert results["loss_curves"]["k2"] == pytest.approx(losses, abs=1e-12)
    trained = results["configs"][0]["weights"]
    for name, value in weights.items():
        assert torch.allclose(torch.tensor(trained[name]), torch.tensor(value), atol=1e-12), name
    # The starting weights are the file's: the seed changes nothing.
    again = tmp_path / "again"
    assert cli(*args, "--seed", "7", "--out", str(again)).returncode == 0
    assert read_json(again / "results.json")["loss_curves"] == results["loss_curves"]


def test_train_with_adam_from_an_init_file_starts_at_its_loss(cli, tmp_path):
    init, out = tmp_path / "weights.json", tmp_path / "run"
    init.write_text(json.dumps(HAND_WEIGHTS))
    result = cli(*TRAIN, "--init", str(init), "--temperature", "0.5", "--out", str(out))
    assert result.returncode == 0, result.stderr
    results = read_json(out / "results.json")
    for spec in HAND_WEIGHTS:
        net = XorNet.from_spec(spec, 0.5)
        inputs = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
        first = F.binary_cross_entropy(net(inputs).flatten(), torch.tensor([0.0, 1, 1, 0]))
        curve = results["loss_curves"][net_name(spec["k"], spec["bypass"])]
        assert curve[0] == pytest.approx(first.item(), rel=1e-6)
        assert curve[-1] < curve[0]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--bypass"], "--bypass is for the one network of --k"),
        (["--k", "4", "--init", "{init}"], "has no network k4 (it has k2)"),
        (["--init", "{init}"], "has no network k1-bypass, k4"),
        (["--k", "2", "--init", "{missing}"], "missing.json"),
        (["--optimizer", "rmsprop"], "rmsprop"),
        (["--dtype", "float16"], "float16"),
    ],
)
def test_train_refuses_bad_networks_and_choices_in_one_line(cli, tmp_path, args, message):
    init = tmp_path / "weights.json"
    init.write_text(json.dumps([INIT]))
    paths = {"init": str(init), "missing": str(tmp_path / "missing.json")}
    out = tmp_path / "run"
    result = cli(*TRAIN, *(a.format(**paths) for a in args), "--out", str(out))
    assert_one_line_error(result, out)
    assert message in result.stderr


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.+?)\n```", readme, re.S)
    test_command = next(b for b in blocks if "pytest" in b)
    assert test_command in (ROOT / ".ci" / "run").read_text()


SWEEP = ["xor", "sweep", "--lrs", "0.5", "--hidden", "2", "--max-epochs", "3000"]
SWEEP += ["--successes", "2", "--max-runs", "4", "--quiet"]


@pytest.mark.slow
def test_sweep_run_directory_and_reproducibility(cli, tmp_path):
    results = []
    for name in ("a", "b"):
        result = cli(*SWEEP, "--out", str(tmp_path / name))
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("# XOR hyperparameter study")
        results.append(read_json(tmp_path / name / "results.json"))
    assert without_timings(results[0]) == without_timings(results[1])
    configs = results[0]["configs"]
    assert [(c["lr"], c["hidden"], c["bypass"]) for c in configs] == [
        (0.5, 2, False),
        (0.5, 2, True),
        (0.25, 1, True),
    ]
    trial = read_json(tmp_path / "a" / "trials" / "study" / "result.json")["result"]
    assert results[0]["seconds"] == trial["seconds"]
    for k, c in enumerate(configs):
        runs = range(4 * k, 4 * k + c["runs"])
        assert c["successes"] + c["failures"] == c["runs"] <= 4
        assert c["epochs"] == [trial["epochs"][i] for i in runs if trial["succeeded"][i]]
        if c["successes"]:
            assert c["mean_epochs"] == sum(c["epochs"]) / len(c["epochs"])
    assert any(c["successes"] for c in configs)
    (analysis,) = results[0]["hidden_unit"]
    assert sum(analysis["functions"].values()) == configs[2]["successes"]
    plots = {p.name for p in (tmp_path / "a" / "plots").iterdir()}
    assert {"epochs_vs_hidden.png", "epochs_vs_bypass.png", "std_epochs_vs_lr.png"} <= plots
    assert "| lr | hidden | bypass |" in (tmp_path / "a" / "results.md").read_text()
    assert list((tmp_path / "a" / "trials" / "study" / "tensorboard").glob("events.*"))


def test_sweep_rerun_reuses_the_study(cli, tmp_path):
    out = tmp_path / "run"
    args = [*SWEEP[:7], "1000", *SWEEP[8:], "--out", str(out)]
    assert cli(*args).returncode == 0
    first, finished = read_json(out / "results.json"), _trial_files(out)
    assert list(finished) == ["study"]
    result = cli(*args)
    assert result.returncode == 0
    assert _trial_files(out) == finished
    # Reused, the study reports the time it took when it ran.
    assert read_json(out / "results.json") == first
    assert f"run-epochs in {first['seconds']:.2f} s" in result.stdout
