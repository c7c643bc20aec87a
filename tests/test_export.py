"""`dlclassics export`: the site's format, weights equal to the checkpoints bit for bit, the
model cards, an `xor sweep`'s study, and bad input refused in one line with nothing left
behind."""

import hashlib
import json
import shutil
import struct
from collections import Counter
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
import torch
from conftest import (
    CNN_FAST,
    assert_one_line_error,
    invoke_cli,
    make_run,
    read_json,
    train_tiny_lm,
    write_corpus,
    write_idx_set,
)
from safetensors.numpy import load_file
from sklearn.metrics import balanced_accuracy_score, precision_recall_fscore_support
from torch import nn

from dlclassics import __version__
from dlclassics.core.checkpoint import load_checkpoint
from dlclassics.lab.export import STATIC, export, mnist_test_files
from dlclassics.mnist.data import Split, load, normalize
from dlclassics.mnist.models import load_classifier
from dlclassics.xor.analysis import unit_function
from dlclassics.xor.sweep import load_weights

ENTRY_KEYS = {"name", "kind", "path", "run", "command"}
# A small `xor sweep` with every outcome: configurations that fail, some that solve, lone units.
SWEEP = ["--lrs", "1", "--hidden", "1,2", "--max-epochs", "3000", "--max-runs", "4"]
SWEEP += ["--successes", "3"]
CARD_KEYS = {"name", "kind", "command", "run", "architecture", "settings", "machine", "results"}
CARD_KEYS |= {"data", "seed", "version", "text", "model_path"}


def export_cli(*args: str):
    """`dlclassics export ARGS` through the entry point."""
    return invoke_cli("export", *args)


def run_ok(*args: str) -> None:
    result = invoke_cli(*args, "--quiet")
    assert result.returncode == 0, result.stderr


@pytest.fixture(scope="module")
def xor_runs(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("xor")
    run_ok("xor", "solve", "--out", str(root / "solve"))
    run_ok("xor", "train", "--epochs", "20", "--out", str(root / "train"))
    return root / "solve", root / "train"


@pytest.fixture(scope="module")
def sweep_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sweep") / "sweep"
    run_ok("xor", "sweep", *SWEEP, "--out", str(out))
    return out


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory) -> Path:
    return train_tiny_lm(tmp_path_factory.mktemp("lm"), epochs=1)[0]


def header(path: Path) -> dict:
    """A safetensors file's JSON header."""
    data = path.read_bytes()
    (size,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8 : 8 + size])


def trial_of(entry: dict, runs: dict[str, Path]) -> Path:
    """The trial folder an entry was exported from (its name, less a run prefix)."""
    run = runs[entry["run"]]
    prefix = entry["run"].rsplit("/", 1)[-1] + "-"  # a reproduction's part: the part alone
    name = entry["name"]
    if not (run / "trials" / name).is_dir():
        assert name.startswith(prefix), entry
        name = name[len(prefix) :]
    return run / "trials" / name


def check_site(site: Path, runs: dict[str, Path]) -> list[dict]:
    """The site's format, and every model's weights equal to its checkpoint's bit for bit;
    `runs`: the run folders by the label the entries give."""
    for page in STATIC.rglob("*"):
        if page.is_file():
            assert (site / page.relative_to(STATIC)).read_bytes() == page.read_bytes()
    if (STATIC / "index.html").is_file():
        assert (site / "index.html").is_file()
    index = read_json(site / "models.json")
    assert index.keys() == {"version", "models", "studies"} and index["version"] == __version__
    names = [e["name"] for e in index["models"]]
    assert len(set(names)) == len(names)
    assert sorted(p.name for p in (site / "models").iterdir()) == sorted(names)
    studies = [e["name"] for e in index["studies"]]
    assert sorted(p.name for p in (site / "studies").glob("*")) == sorted(studies)
    for entry in index["studies"]:
        assert entry.keys() == ENTRY_KEYS and entry["path"] == f"studies/{entry['name']}"
        assert [p.name for p in (site / entry["path"]).iterdir()] == ["study.json"]
    for entry in index["models"]:
        assert entry.keys() == ENTRY_KEYS
        assert entry["path"] == f"models/{entry['name']}"
        folder = site / entry["path"]
        expected = {"weights.safetensors", "card.json"}
        if entry["kind"] == "lm":
            expected.add("vocab.json")
        if "test" in read_json(folder / "card.json"):
            assert entry["kind"] == "mnist"
            expected |= {"test.json", "samples.json"}
            if read_json(folder / "test.json")["sprite"] is not None:
                expected.add("test-mistakes.png")
        assert {p.name for p in folder.iterdir()} == expected
        trial = trial_of(entry, runs)
        checkpoint = load_checkpoint(trial / "checkpoint.pt")
        state = checkpoint["model"]
        loaded = load_file(folder / "weights.safetensors")
        assert loaded.keys() == state.keys()
        for key, tensor in state.items():
            assert loaded[key].dtype == np.float32 and loaded[key].shape == tuple(tensor.shape)
            bits = tensor.float().contiguous().numpy().view(np.uint32)
            assert np.array_equal(loaded[key].view(np.uint32), bits), key
        # The header holds the tensors only, each F32.
        described = header(folder / "weights.safetensors")
        assert described.keys() == state.keys()
        assert {v["dtype"] for v in described.values()} == {"F32"}
        card = read_json(folder / "card.json")
        assert card.keys() >= CARD_KEYS
        fields = ("name", "kind", "command", "run")
        assert {k: card[k] for k in fields} == {k: entry[k] for k in fields}
        assert card["version"] == checkpoint["version"]
        # What `dlclassics lm generate --model` takes, from any folder on this machine.
        assert Path(card["model_path"]) == trial.resolve()
        architecture = checkpoint["model_args"] | {
            "parameters": sum(t.numel() for t in state.values())
        }
        if checkpoint["model_args"].get("arch") == "double_conv_dropout":
            architecture["dropout"] = checkpoint["config"]["dropout"]
        assert card["architecture"] == architecture
        config = read_json(runs[entry["run"]] / "config.json")
        assert card["seed"] == config["seed"] and card["machine"] == config.get("machine")
        assert not {"command", "version", "processes", "machine"} & card["settings"].keys()
        assert card["settings"].items() <= config.items()
        assert isinstance(card["text"], str) and card["text"]
        if entry["kind"] == "lm":
            assert read_json(folder / "vocab.json") == checkpoint["vocab"]
    # No pickle anywhere: torch.save writes a zip archive, a pickle starts with its protocol.
    for path in site.rglob("*"):
        assert path.suffix not in {".pt", ".pth", ".pkl", ".pickle"}, path
        if path.is_file():
            start = path.read_bytes()[:4]
            assert start != b"PK\x03\x04" and start[:1] != b"\x80", path
    assert not [p for p in site.parent.iterdir() if p.name.startswith(f".{site.name}.")]
    return index["models"]


def test_export_xor_and_lm(tmp_path, xor_runs, lm_run):
    solve, train = xor_runs
    site = tmp_path / "site"
    result = export_cli(str(solve), str(train), str(lm_run), "--out", str(site))
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"exported 7 models from 3 runs to {site}\n"
    entries = check_site(site, {"solve": solve, "train": train, "run": lm_run})
    # The XOR nets are in both runs: prefixed by their run's folder; the LM's name is its own.
    assert [e["name"] for e in entries] == [
        "solve-k1-bypass",
        "solve-k2",
        "solve-k4",
        "train-k1-bypass",
        "train-k2",
        "train-k4",
        "layers1-forward",
    ]
    assert {e["kind"] for e in entries} == {"xor", "lm"}

    lm = read_json(site / "models/layers1-forward/card.json")
    config = read_json(lm_run / "config.json")
    corpus = Path(config["corpus"])
    results = read_json(lm_run / "results.json")
    assert lm["results"] == results
    assert lm["data"] == {
        "corpus": corpus.name,
        "corpus_sha256": hashlib.sha256(corpus.read_bytes()).hexdigest(),
        "vocab_size": lm["architecture"]["vocab_size"],
        "sentences": results["sentences"],
    }
    assert set(lm["architecture"]) == {
        "vocab_size",
        "layers",
        "direction",
        "embedding_size",
        "hidden_size",
        "parameters",
    }
    vocab = read_json(site / "models/layers1-forward/vocab.json")
    assert vocab[:4] == ["<PAD>", "<START>", "<UNK>", "<EOS>"]

    # The hand-set nets: their results.json entry, and weights that are the hand-set ones.
    hand = read_json(site / "models/solve-k1-bypass/card.json")
    configs = read_json(solve / "results.json")["configs"]
    assert hand["results"] == configs[0]
    assert hand["architecture"] == {"k": 1, "bypass": True, "temperature": 0.001, "parameters": 7}
    weights = load_file(site / "models/solve-k1-bypass/weights.safetensors")
    assert weights["out.weight"].flatten().tolist() == configs[0]["weights"]["out_weight"]
    assert hand["data"]["targets"] == [0.0, 1.0, 1.0, 0.0]
    trained = read_json(site / "models/train-k2/card.json")
    assert trained["results"] == read_json(train / "results.json")["configs"][1]


def test_export_replaces_a_previous_site(tmp_path, xor_runs, lm_run):
    site = tmp_path / "site"
    assert export_cli(str(xor_runs[0]), "--out", str(site)).returncode == 0
    assert [e["name"] for e in read_json(site / "models.json")["models"]] == [
        "k1-bypass",
        "k2",
        "k4",
    ]
    # A failed export leaves the previous site as it was,
    before = (site / "models.json").read_bytes()
    assert_one_line_error(export_cli(str(tmp_path / "missing"), "--out", str(site)))
    assert (site / "models.json").read_bytes() == before
    # and one that succeeds replaces it whole.
    index = export([lm_run], site)
    assert [e["name"] for e in index["models"]] == ["layers1-forward"] and index["studies"] == []
    assert sorted(p.name for p in (site / "models").iterdir()) == ["layers1-forward"]
    assert [p.name for p in tmp_path.iterdir()] == ["site"]


def test_export_a_reproduction_with_its_sweep(tmp_path, xor_runs, sweep_run):
    solve, train = xor_runs
    reproduction = make_run(tmp_path / "rep", "reproduce")
    shutil.copytree(solve, reproduction / "xor-solve")
    shutil.copytree(train, reproduction / "xor-train")
    shutil.copytree(sweep_run, reproduction / "xor-sweep")
    (reproduction / "plots").mkdir()
    site = tmp_path / "site"
    result = export_cli(str(reproduction), "--out", str(site))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout == f"exported 6 models and 1 study from 1 run to {site}\n"
    runs = {
        "rep/xor-solve": reproduction / "xor-solve",
        "rep/xor-train": reproduction / "xor-train",
    }
    names = [e["name"] for e in check_site(site, runs)]
    assert names[0] == "xor-solve-k1-bypass" and names[3] == "xor-train-k1-bypass"
    studies = read_json(site / "models.json")["studies"]
    assert studies == [
        {
            "name": "xor-sweep",
            "kind": "xor-sweep",
            "path": "studies/xor-sweep",
            "run": "rep/xor-sweep",
            "command": "xor sweep",
        }
    ]
    # A sweep part that saved no checkpoint (it failed) is skipped, with a note.
    shutil.rmtree(reproduction / "xor-sweep")
    make_run(reproduction / "xor-sweep", "xor sweep")
    result = export_cli(str(reproduction), "--out", str(site))
    assert result.returncode == 0, result.stderr
    assert result.stderr.startswith("note: skipped") and "xor-sweep" in result.stderr
    assert read_json(site / "models.json")["studies"] == []
    # A reproduction of the sweep alone: a site of its study.
    alone = make_run(tmp_path / "alone", "reproduce")
    shutil.copytree(sweep_run, alone / "xor-sweep")
    assert export_cli(str(alone), "--out", str(site)).returncode == 0
    index = read_json(site / "models.json")
    assert index["models"] == [] and [s["run"] for s in index["studies"]] == ["alone/xor-sweep"]


def protocol_runs(succeeded: list[bool], configs: int, max_runs: int, successes: int):
    """Per configuration, the candidate runs "until N successes or M runs" makes."""
    used = []
    for c in range(configs):
        made, solved = [], 0
        for i in range(c * max_runs, (c + 1) * max_runs):
            made.append(i)
            solved += succeeded[i]
            if solved == successes:
                break
        used.append(made)
    return used


def test_export_a_sweep_as_a_study(tmp_path, xor_runs, sweep_run):
    site = tmp_path / "site"
    result = export_cli(str(sweep_run), str(xor_runs[0]), "--out", str(site))
    assert result.returncode == 0, result.stderr
    check_site(site, {"solve": xor_runs[0]})
    index = read_json(site / "models.json")
    assert [e["name"] for e in index["models"]] == ["k1-bypass", "k2", "k4"]
    assert index["studies"] == [
        {
            "name": "sweep",
            "kind": "xor-sweep",
            "path": "studies/sweep",
            "run": "sweep",
            "command": "xor sweep",
        }
    ]
    study = read_json(site / "studies/sweep/study.json")
    config = read_json(sweep_run / "config.json")
    results = read_json(sweep_run / "results.json")
    trial = read_json(sweep_run / "trials/study/result.json")["result"]
    weights = load_weights(sweep_run)
    assert {k: study[k] for k in ("name", "kind", "command", "run", "version")} == {
        "name": "sweep",
        "kind": "xor-sweep",
        "command": "xor sweep",
        "run": "sweep",
        "version": config["version"],
    }
    assert Path(study["run_path"]) == sweep_run.resolve()
    protocol = study["protocol"]
    for key in ("extra", "max_runs", "successes", "max_epochs", "patience", "min_delta", "goal"):
        assert protocol[key] == config[key], key
    assert protocol["seed"] == config["seed"]
    # The grid: lr x hidden x bypass, then the extra configuration (lr 0.25, 1 unit, bypass).
    assert protocol["grid"] == [
        {"lr": 1.0, "hidden": h, "bypass": b} for h in (1, 2) for b in (False, True)
    ] + [{"lr": 0.25, "hidden": 1, "bypass": True}]
    assert [c["extra"] for c in study["configs"]] == [False] * 4 + [True]
    assert (study["seconds"], study["run_epochs"]) == (results["seconds"], results["run_epochs"])
    # Each configuration: its figures as results.json has them, and every run the protocol
    # made, with the trial's figures and, for one hidden unit, the checkpoint's unit.
    used = protocol_runs(trial["succeeded"], len(protocol["grid"]), 4, 3)
    assert len(study["configs"]) == len(results["configs"]) == len(used)
    for ours, theirs, runs in zip(study["configs"], results["configs"], used, strict=True):
        assert {k: v for k, v in ours.items() if k not in ("extra", "outcomes")} == theirs
        assert len(ours["outcomes"]) == theirs["runs"] == len(runs)
        for outcome, i in zip(ours["outcomes"], runs, strict=True):
            figures = {k: trial[k][i] for k in ("epochs", "train_loss", "val_loss")}
            assert outcome.items() >= (figures | {"succeeded": trial["succeeded"][i]}).items()
            if ours["hidden"] == 1:
                assert outcome["weight"] == weights.hidden[:2, 0, i].tolist()
                assert outcome["bias"] == weights.hidden[2, 0, i].item()
                assert outcome["function"] == unit_function(
                    weights.hidden[:2, 0, i], outcome["bias"]
                )
            else:
                assert outcome.keys() == figures.keys() | {"succeeded"}
        assert [o["epochs"] for o in ours["outcomes"] if o["succeeded"]] == theirs["epochs"]
    # The lone hidden units: results.json's analysis, its units the solved runs' ones.
    lone = [n for n, c in enumerate(study["configs"]) if c["hidden"] == 1]
    assert [h["config"] for h in study["hidden_unit"]] == lone
    for ours, theirs in zip(study["hidden_unit"], results["hidden_unit"], strict=True):
        assert ours == {"config": ours["config"]} | {
            k: v for k, v in theirs.items() if k != "units"
        }
        solved = [o for o in study["configs"][ours["config"]]["outcomes"] if o["succeeded"]]
        assert [{"weight": o["weight"], "bias": o["bias"]} for o in solved] == theirs["units"]
        assert sum(ours["functions"].values()) == len(solved)
    assert any(h["functions"] for h in study["hidden_unit"])  # the tiny sweep solves one
    assert study["hand_set"] == {"weight": [1.0, 1.0], "bias": -1.5, "function": "AND"}
    # A sweep alone makes a site of one study and no model.
    result = export_cli(str(sweep_run), "--out", str(site))
    assert result.returncode == 0, result.stderr
    index = read_json(site / "models.json")
    assert index["models"] == [] and [s["name"] for s in index["studies"]] == ["sweep"]


def _tampered(tmp_path: Path, sweep_run: Path, name: str) -> Path:
    run = tmp_path / name
    shutil.copytree(sweep_run, run)
    return run


def _edit_json(path: Path, change) -> None:
    data = read_json(path)
    change(data)
    path.write_text(json.dumps(data))


def _edit_weights(run: Path, change) -> None:
    path = run / "trials/study/checkpoint.pt"
    checkpoint = load_checkpoint(path)
    change(checkpoint["model"])
    torch.save(checkpoint, path)


def test_a_bad_sweep_is_one_line_and_leaves_nothing(tmp_path, sweep_run):
    out = tmp_path / "site"
    cases = []

    def case(name: str, says: str):
        run = _tampered(tmp_path, sweep_run, name)
        cases.append((run, says))
        return run

    shutil.rmtree(case("no-checkpoint", "no model") / "trials")
    (case("damaged", "cannot load a checkpoint") / "trials/study/checkpoint.pt").write_bytes(b"x")
    (case("unfinished", "not finished") / "results.json").unlink()
    _edit_weights(case("narrow", "shape"), lambda w: w.update(out_direct=w["out_direct"][:, :-1]))
    _edit_weights(case("nan", "not finite"), lambda w: w["hidden"].fill_(np.nan))
    _edit_json(case("more-runs", "not this run's") / "config.json", lambda c: c.update(max_runs=5))
    _edit_json(case("bad-config", "config.json") / "config.json", lambda c: c.update(lrs="x"))
    _edit_json(
        case("trial", "result.json") / "trials/study/result.json",
        lambda r: r["result"]["epochs"].pop(),
    )
    _edit_json(
        case("successes", "does not match") / "results.json",
        lambda r: r["configs"][2].update(successes=r["configs"][2]["successes"] + 1),
    )
    _edit_json(
        case("functions", "lone hidden units") / "results.json",
        lambda r: r["hidden_unit"][1].update(functions={"AND": 99}),
    )
    _edit_json(case("fewer", "configurations") / "results.json", lambda r: r["configs"].pop())
    for run, says in cases:
        result = export_cli(str(run), "--out", str(out))
        assert_one_line_error(result, out)
        assert says in result.stderr, (run.name, result.stderr)


def test_bad_input_is_one_line_and_leaves_nothing(tmp_path, xor_runs):
    solve = xor_runs[0]
    out = tmp_path / "site"
    empty = tmp_path / "empty"
    empty.mkdir()
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    no_model = make_run(tmp_path / "no-model", "xor solve")
    tune = make_run(tmp_path / "tune", "tune")
    for bad, says in [
        (tmp_path / "missing", "not a run directory"),
        (empty, "not a run directory"),
        (a_file, "not a run directory"),
        (no_model, "no model"),
        (tune, "tune"),
    ]:
        result = export_cli(str(solve), str(bad), "--out", str(out))
        assert_one_line_error(result, out)
        assert says in result.stderr
    # An --out that is a file, a non-empty folder that is no site, or under a file.
    full = tmp_path / "full"
    full.mkdir()
    (full / "notes.txt").write_text("mine")
    for bad in (a_file, full):
        result = export_cli(str(solve), "--out", str(bad))
        assert_one_line_error(result)
    assert a_file.read_text() == "x" and (full / "notes.txt").read_text() == "mine"
    assert_one_line_error(export_cli(str(solve), "--out", str(a_file / "site")))
    # A checkpoint through a symbolic link is refused.
    linked = tmp_path / "linked"
    shutil.copytree(solve, linked)
    checkpoint = linked / "trials/k2/checkpoint.pt"
    checkpoint.unlink()
    checkpoint.symlink_to(solve / "trials/k2/checkpoint.pt")
    result = export_cli(str(linked), "--out", str(out))
    assert_one_line_error(result, out)
    assert "symbolic link" in result.stderr
    # A damaged checkpoint too.
    damaged = tmp_path / "damaged"
    shutil.copytree(solve, damaged)
    (damaged / "trials/k4/checkpoint.pt").write_bytes(b"not a checkpoint")
    assert_one_line_error(export_cli(str(damaged), "--out", str(out)), out)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted(["empty", "a-file", "no-model", "tune", "full", "linked", "damaged"])


def test_weights_beyond_the_bound_are_refused(tmp_path, xor_runs):
    run = tmp_path / "big"
    shutil.copytree(xor_runs[0], run)
    path = run / "trials/k2/checkpoint.pt"
    checkpoint = load_checkpoint(path)
    checkpoint["model"]["hidden.bias"] = torch.full((2,), 1e30)
    torch.save(checkpoint, path)
    result = export_cli(str(run), "--out", str(tmp_path / "site"))
    assert_one_line_error(result, tmp_path / "site")
    assert "hidden.bias" in result.stderr


def sprite_tiles(path: Path, count: int, columns: int) -> np.ndarray:
    """The first `count` 28x28 tiles of a sprite PNG, as 0..255 grey levels; the rest black."""
    image = matplotlib.image.imread(path)
    if image.ndim == 3:  # RGB(A): every channel the grey level, opaque
        assert (image[..., :3] == image[..., :1]).all()
        if image.shape[2] == 4:
            assert (image[..., 3] == 1).all()
        image = image[..., 0]
    pixels = np.rint(image * 255).astype(np.int64)
    rows = -(-count // columns)
    assert pixels.shape == (rows * 28, columns * 28)
    tiles = pixels.reshape(rows, 28, columns, 28).transpose(0, 2, 1, 3).reshape(-1, 28, 28)
    assert not tiles[count:].any()
    return tiles[:count]


def expected_mistakes(labels: list[int], preds: list[int], per_cell: int = 100) -> list[int]:
    counts: Counter[tuple[int, int]] = Counter()
    wrong = []
    for i, (t, p) in enumerate(zip(labels, preds, strict=True)):
        if t != p and counts[t, p] < per_cell:
            counts[t, p] += 1
            wrong.append(i)
    return wrong


def check_test_figures(folder: Path, trial: Path, test: Split) -> None:
    """test.json, the sprite and samples.json of an exported MNIST model, recomputed here."""
    card = read_json(folder / "card.json")
    assert card["test"] == "test.json"
    figures = read_json(folder / "test.json")
    assert figures["classes"] == card["classes"] and figures["sprite_columns"] == 40
    model = load_classifier(trial)
    with torch.inference_mode():
        logits = model(normalize(test.images))
    labels, preds = test.labels.numpy(), logits.argmax(1).numpy()
    confusion = np.zeros((10, 10), dtype=np.int64)
    np.add.at(confusion, (labels, preds), 1)
    assert figures["confusion"] == confusion.tolist()
    assert figures["accuracy"] == np.trace(confusion) / confusion.sum()
    assert figures["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(labels, preds))
    precision, recall, _, _ = precision_recall_fscore_support(
        labels, preds, labels=np.arange(10), zero_division=0
    )
    assert figures["precision"] == pytest.approx(precision.tolist())
    assert figures["recall"] == pytest.approx(recall.tolist())
    mistakes = figures["mistakes"]
    wrong = expected_mistakes(labels.tolist(), preds.tolist())
    assert [m["index"] for m in mistakes] == wrong
    assert [m["sprite"] for m in mistakes] == list(range(len(wrong)))
    probabilities = logits.softmax(1)
    for m in mistakes:
        assert (m["true"], m["pred"]) == (labels[m["index"]], preds[m["index"]])
        assert m["p_pred"] == pytest.approx(probabilities[m["index"], m["pred"]].item(), abs=1e-6)
        assert m["p_true"] == pytest.approx(probabilities[m["index"], m["true"]].item(), abs=1e-6)
    if wrong:  # the easy tiny set: a model may make none (the sprite's own test has some)
        assert figures["sprite"] == "test-mistakes.png"
        tiles = sprite_tiles(folder / figures["sprite"], len(wrong), 40)
        assert np.array_equal(tiles, test.images[wrong].numpy())
    else:
        assert figures["sprite"] is None and not (folder / "test-mistakes.png").exists()
    samples = read_json(folder / "samples.json")
    assert samples["classes"] == card["classes"]
    picks = [i for c in range(10) for i in np.flatnonzero(labels == c)[:2].tolist()]
    assert len(picks) == 20  # the tiny set has two test images of every class
    assert samples["labels"] == labels[picks].tolist()
    assert samples["images"] == test.images[picks].reshape(-1, 784).tolist()


class ByPixel(nn.Module):
    """A fake classifier: its logits one-hot at `answer[v]` for an image whose pixels are v."""

    def __init__(self, answer: dict[int, int]) -> None:
        super().__init__()
        self.answer = answer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values = ((x[:, 0, 0, 0] + 1) * 255 / 2).round().long().tolist()
        return nn.functional.one_hot(torch.tensor([self.answer[v] for v in values]), 10) * 5.0


def test_mistakes_are_the_first_100_of_a_cell():
    labels = [1] * 250 + [2] * 3 + [3] * 30
    images = torch.tensor(labels, dtype=torch.uint8)[:, None, None].expand(-1, 28, 28)
    test = Split(images.contiguous(), torch.tensor(labels))
    classes = [str(c) for c in range(10)]
    # Every 1 taken for a 0, every 3 for a 2: 100 of the first cell, all 30 of the second.
    files = mnist_test_files(ByPixel({1: 0, 2: 2, 3: 2}), test, classes)
    figures = json.loads(files["test.json"])
    assert figures["confusion"][1][0] == 250 and figures["confusion"][3][2] == 30
    assert [m["index"] for m in figures["mistakes"]] == list(range(100)) + list(range(253, 283))
    assert figures["accuracy"] == 3 / 283
    p_pred = np.exp(5) / (np.exp(5) + 9)
    assert figures["mistakes"][0]["p_pred"] == pytest.approx(p_pred)
    assert figures["mistakes"][0]["p_true"] == pytest.approx(1 / (np.exp(5) + 9))
    samples = json.loads(files["samples.json"])
    assert samples["labels"] == [1, 1, 2, 2, 3, 3]
    assert samples["images"][2] == [2] * 784
    # No mistake: no sprite.
    right = mnist_test_files(ByPixel({1: 1, 2: 2, 3: 3}), test, classes)
    assert set(right) == {"test.json", "samples.json"}
    figures = json.loads(right["test.json"])
    assert figures["mistakes"] == [] and figures["sprite"] is None and figures["accuracy"] == 1


def test_the_sprite_holds_the_mistakes_pixels(tmp_path):
    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.integers(0, 256, size=(45, 28, 28), dtype=np.uint8))
    images[:, 0, 0] = torch.arange(45, dtype=torch.uint8)  # the fake model's key
    test = Split(images, torch.full((45,), 7))
    files = mnist_test_files(ByPixel(dict.fromkeys(range(45), 0)), test, [*"0123456789"])
    (tmp_path / "sprite.png").write_bytes(files["test-mistakes.png"])
    assert np.array_equal(sprite_tiles(tmp_path / "sprite.png", 45, 40), images.numpy())


@pytest.mark.slow
def test_export_lm_study_and_mnist(tmp_path):
    corpus = write_corpus(tmp_path / "corpus.txt")
    idx = write_idx_set(tmp_path / "idx", n_train=500, n_test=100)
    study, fc, cnn = tmp_path / "study", tmp_path / "fc", tmp_path / "cnn"
    tiny = ["--embedding-size", "8", "--hidden-size", "16", "--batch-size", "16", "--no-bf16"]
    run_ok("lm", "study", "--corpus", str(corpus), *tiny, "--max-steps", "3", "--out", str(study))
    run_ok("mnist", "fc", "--iterations", "20", "--data-dir", str(idx), "--out", str(fc))
    data = ["--data-dir", str(idx), "--max-epochs", "1"]
    run_ok("mnist", "cnn", *CNN_FAST, *data, "--out", str(cnn))
    site = tmp_path / "site"
    result = export_cli(str(study), str(fc), str(cnn), "--out", str(site))
    assert result.returncode == 0, result.stderr
    entries = check_site(site, {"study": study, "fc": fc, "cnn": cnn})
    assert [e["name"] for e in entries] == [
        "layers1-forward",
        "layers1-reverse",
        "layers2-forward",
        "layers2-reverse",
        "logreg",
        "mlp",
        "double_conv_b50",
        "single_conv_b50",
    ]
    # lm study: each trial's entry of the study's results.
    models = read_json(study / "results.json")["models"]
    for i, name in enumerate(["layers1-forward", "layers1-reverse", "layers2-forward"]):
        assert read_json(site / f"models/{name}/card.json")["results"] == models[i]
    # mnist fc: its entry, the split sizes, and the normalisation `normalize` applies.
    logreg = read_json(site / "models/logreg/card.json")
    assert logreg["results"] == read_json(fc / "results.json")["models"][0]
    assert logreg["data"]["images"] == {"train": 450, "val": 50, "test": 100}
    assert logreg["data"]["data_sha256"] == read_json(fc / "config.json")["data_sha256"]
    assert logreg["classes"] == [str(d) for d in range(10)]
    norm = logreg["normalization"]
    pixels = torch.arange(256, dtype=torch.uint8).reshape(1, 16, 16)
    expected = (pixels.float() / 255 - norm["mean"]) / norm["std"]
    assert torch.allclose(normalize(pixels)[:, 0], expected, atol=1e-6)
    # mnist cnn: every trial, the chosen one marked with its test figures.
    results = read_json(cnn / "results.json")
    best = f"{results['best']['arch']}_b{results['best']['batch_size']}"
    for name in ("double_conv_b50", "single_conv_b50"):
        card = read_json(site / f"models/{name}/card.json")
        assert card["results"]["best"] == (name == best)
        assert ("best_test" in card["results"]) == (name == best)
        assert card["architecture"]["arch"] == name.removesuffix("_b50")
    # Every MNIST model's test figures, sprite and samples, recomputed from the test split.
    test = load("mnist", idx, 0).test
    for name, run in [
        ("logreg", fc),
        ("mlp", fc),
        ("double_conv_b50", cnn),
        ("single_conv_b50", cnn),
    ]:
        check_test_figures(site / "models" / name, run / "trials" / name, test)
    # A run whose data is gone: its models exported without them, and one note saying why.
    shutil.rmtree(idx)
    result = export_cli(str(fc), "--out", str(site))
    assert result.returncode == 0, result.stderr
    notes = [line for line in result.stderr.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "no test figures" in notes[0] and str(idx) in notes[0]
    check_site(site, {"fc": fc})
    for name in ("logreg", "mlp"):
        assert "test" not in read_json(site / f"models/{name}/card.json")
        assert not (site / f"models/{name}/test.json").exists()
