import re
from pathlib import Path

import pytest
from conftest import read_json

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "args", [[], ["xor"], ["xor", "solve"], ["xor", "train"], ["xor", "sweep"]]
)
def test_help_everywhere(cli, args):
    result = cli(*args, "--help")
    assert result.returncode == 0
    assert "Usage:" in result.stdout


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
    result = cli(*args, "--out", str(out))
    assert result.returncode == 2
    assert result.stderr.startswith("error: ")
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr
    assert not out.exists()


def test_wrong_weight_shape_is_rejected(cli, tmp_path):
    weights = tmp_path / "w.json"
    weights.write_text(
        '[{"k": 2, "bypass": false, "hidden_weight": [[1, 1]], "hidden_bias": [0, 0],'
        ' "out_weight": [1, 1], "out_bias": 0}]'
    )
    out = tmp_path / "run"
    result = cli("xor", "solve", "--weights", str(weights), "--out", str(out))
    assert result.returncode == 2
    assert "hidden_weight must have shape (2, 2)" in result.stderr
    assert not out.exists()


def test_refuses_a_non_run_directory(cli, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    result = cli("xor", "solve", "--out", str(tmp_path))
    assert result.returncode == 2
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_solve_run_directory(cli, tmp_path):
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
    assert "| 1 | yes | 0 | yes |" in (run / "results.md").read_text()
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert len(list((run / "checkpoints").glob("*.pt"))) == 3


def test_train_same_seed_same_results(cli, tmp_path):
    runs = []
    for name in ("a", "b"):
        result = cli(
            "xor",
            "train",
            "--epochs",
            "300",
            "--lr",
            "0.05",
            "--quiet",
            "--out",
            str(tmp_path / name),
        )
        assert result.returncode == 0, result.stderr
        runs.append(read_json(tmp_path / name / "results.json"))
    assert runs[0] == runs[1]
    assert (tmp_path / "a" / "plots" / "loss_curves.png").stat().st_size > 0
    curves = runs[0]["loss_curves"]
    assert all(len(c) == 300 and c[-1] < c[0] for c in curves.values())


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.+?)\n```", readme, re.S)
    test_command = next(b for b in blocks if "pytest" in b)
    assert test_command in (ROOT / ".ci" / "run").read_text()


def test_sweep_run_directory_and_reproducibility(cli, tmp_path):
    args = ["xor", "sweep", "--lrs", "0.5", "--hidden", "2", "--max-epochs", "3000"]
    args += ["--successes", "2", "--max-runs", "4", "--quiet"]
    results = []
    for name in ("a", "b"):
        result = cli(*args, "--out", str(tmp_path / name))
        assert result.returncode == 0, result.stderr
        results.append(read_json(tmp_path / name / "results.json"))
    for r in results:
        assert r.pop("seconds") > 0
    assert results[0] == results[1]
    configs = results[0]["configs"]
    assert [(c["lr"], c["hidden"], c["bypass"]) for c in configs] == [
        (0.5, 2, False),
        (0.5, 2, True),
        (0.25, 1, True),
    ]
    for c in configs:
        assert c["successes"] + c["failures"] <= 4
        assert len(c["epochs"]) == c["successes"]
        if c["successes"]:
            assert c["mean_epochs"] == sum(c["epochs"]) / len(c["epochs"])
    (analysis,) = results[0]["hidden_unit"]
    assert sum(analysis["functions"].values()) == configs[2]["successes"]
    plots = {p.name for p in (tmp_path / "a" / "plots").iterdir()}
    assert {"epochs_vs_hidden.png", "epochs_vs_bypass.png", "std_epochs_vs_lr.png"} <= plots
    assert "| lr | hidden | bypass |" in (tmp_path / "a" / "results.md").read_text()
