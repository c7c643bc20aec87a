"""Run directories and checkpoints are input too: result.json of another shape, checkpoints with
bad fields, symbolic links, data changed before a resume, training that diverges, odd shapes of
the run directory and a full disk. Each is a clean outcome: the trial runs again, or one line and
exit code 2, with nothing partial left."""

import copy
import errno
import json
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from conftest import (
    TINY_LM,
    assert_one_line_error,
    invoke_cli,
    read_json,
    train_tiny_lm,
    write_corpus,
    write_idx_set,
)

from dlclassics.core import rundir
from dlclassics.core.checkpoint import load_checkpoint
from dlclassics.core.errors import InputError
from dlclassics.core.rundir import RunDir, file_sha256, write_json
from dlclassics.experiments import PARTS, find
from dlclassics.lm.evaluate import exp
from dlclassics.lm.experiment import LmResult
from dlclassics.mnist.models import build
from dlclassics.mnist.models import load_classifier as load_mnist
from dlclassics.mnist.models import save_model as save_mnist
from dlclassics.reproduce import report
from dlclassics.reproduce.config import ReproduceConfig
from dlclassics.reproduce.parts import Outcome
from dlclassics.study import RESULT_FORMAT, load_result, run_trials, save_result
from dlclassics.xor.config import SolveConfig

MAIN_CLASSES = [str(d) for d in range(10)]


def one_line(result, *fragments: str, out: Path | None = None) -> None:
    """assert_one_line_error (with `out`, no run directory there), its line naming each of
    `fragments`, whatever their case."""
    assert_one_line_error(result, out)
    for fragment in fragments:
        assert fragment.lower() in result.stderr.lower(), result.stderr


def no_temporary_files(root: Path) -> bool:
    return not [p for p in root.rglob(".*.tmp")]


# ---------------------------------------------------------------- result.json of another shape


@dataclass(frozen=True)
class Settings:
    seed: int = 0


@dataclass(frozen=True)
class Cell:
    name: str = "cell"


GOOD = LmResult(
    perplexity={"train": 10.0, "val": 11.0, "test": None},
    steps=3,
    epochs_completed=1,
    train_tokens=30,
    train_seconds=0.5,
    train_tokens_per_second=60.0,
)


def _set(path: tuple, value):
    def edit(record):
        target = record
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        return record

    return edit


def _drop(path: tuple):
    def edit(record):
        target = record
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]
        return record

    return edit


def _text(text: str):
    return lambda record: text


DEEP = "[" * 100_000 + "]" * 100_000
MALFORMED_RESULTS = {
    "a list": _text("[]"),
    "a string": _text('"finished"'),
    "null": _text("null"),
    "a number": _text("1"),
    "empty": _text(""),
    "truncated": _text('{"format": 1, "config"'),
    "nested 100,000 deep": _text(DEEP),
    "no format (an older version)": _drop(("format",)),
    "format 0": _set(("format",), 0),
    "format 2 (a newer version)": _set(("format",), 2),
    "format as a string": _set(("format",), "1"),
    "an extra top-level key": _set(("notes",), "x"),
    "no result": _drop(("result",)),
    "result a list": _set(("result",), [1, 2]),
    "result without a field": _drop(("result", "steps")),
    "result with an extra field": _set(("result", "loss"), 1.0),
    "steps a string": _set(("result", "steps"), "3"),
    "steps a float": _set(("result", "steps"), 3.5),
    "steps a bool": _set(("result", "steps"), True),
    "train_seconds null": _set(("result", "train_seconds"), None),
    "epochs_completed a dict": _set(("result", "epochs_completed"), {}),
    "perplexity a list": _set(("result", "perplexity"), [10.0, 11.0, 12.0]),
    "perplexity without test": _drop(("result", "perplexity", "test")),
    "perplexity with an extra split": _set(("result", "perplexity", "dev"), 1.0),
    "perplexity a string": _set(("result", "perplexity", "val"), "11"),
    "a NaN": lambda record: json.dumps(record).replace('"val": 11.0', '"val": NaN'),
    "an Infinity": lambda record: json.dumps(record).replace('"val": 11.0', '"val": Infinity'),
}


def _run_cell(root: Path, ran: list) -> LmResult:
    def run_trial(config, trial, directory, quiet=False):
        ran.append(trial.name)
        return GOOD

    return run_trials(Settings(), [Cell()], run_trial, LmResult, root)[0]


@pytest.mark.parametrize("case", list(MALFORMED_RESULTS))
def test_a_result_json_of_another_shape_or_version_runs_its_trial_again(tmp_path, case):
    ran: list = []
    _run_cell(tmp_path, ran)
    path = tmp_path / "trials" / "cell" / "result.json"
    record = read_json(path)
    assert record["format"] == RESULT_FORMAT
    assert _run_cell(tmp_path, ran) == GOOD and ran == ["cell"]  # a good one is reused
    edited = MALFORMED_RESULTS[case](copy.deepcopy(record))
    path.write_text(edited if isinstance(edited, str) else json.dumps(edited))
    assert _run_cell(tmp_path, ran) == GOOD
    assert ran == ["cell", "cell"]  # run again, and its result written again
    assert read_json(path) == record


def test_a_finished_xor_trial_with_an_old_result_json_runs_again(tmp_path):
    out = tmp_path / "run"
    args = ["xor", "train", "--epochs", "5", "--out", str(out), "--quiet"]
    assert invoke_cli(*args).returncode == 0
    path = out / "trials" / "k2" / "result.json"
    old = read_json(path)
    del old["format"]  # as the version before result.json had a format wrote it
    old["result"]["final_loss"] = "0.5"
    path.write_text(json.dumps(old))
    result = invoke_cli(*args)
    assert result.returncode == 0, result.stderr
    assert read_json(path)["format"] == RESULT_FORMAT


def test_a_result_json_that_is_a_link_is_refused(tmp_path):
    ran: list = []
    _run_cell(tmp_path, ran)
    path = tmp_path / "trials" / "cell" / "result.json"
    (tmp_path / "elsewhere.json").write_text(path.read_text())
    path.unlink()
    path.symlink_to(tmp_path / "elsewhere.json")
    with pytest.raises(InputError, match="symbolic link"):
        load_result(Settings(), Cell(), path.parent, LmResult, tmp_path / "trials")


@pytest.mark.slow
def test_a_finished_shared_study_reports_no_linked_summary(tmp_path):
    pytest.importorskip("optuna")
    args = ["xor", "solve", "--workers", "2", "--quiet", "--out", str(tmp_path / "run")]
    assert invoke_cli(*args).returncode == 0
    secret = tmp_path / "secret.md"
    secret.write_text("another user's notes\n")
    summary = tmp_path / "run" / "results.md"
    summary.unlink()
    summary.symlink_to(secret)
    again = invoke_cli(*args)  # a finished study only reports: it must not print the link's file
    assert_one_line_error(again)
    assert "symbolic link" in again.stderr and "another user" not in again.stdout


# ---------------------------------------------------------------- checkpoints with bad fields


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory):
    return train_tiny_lm(tmp_path_factory.mktemp("lm"), epochs=1)


def _edit_checkpoint(path: Path, edit) -> None:
    checkpoint = torch.load(path, weights_only=True)
    edit(checkpoint)
    torch.save(checkpoint, path)


def _args(key, value):
    def edit(c):
        c["model_args"][key] = value

    return edit


def _weights(edit_weights):
    def edit(c):
        edit_weights(c["model"])

    return edit


def _nan_weight(w):
    w["out.bias"] = torch.full_like(w["out.bias"], math.nan)


BAD_LM_CHECKPOINTS = {
    "model_args a list": lambda c: c.update(model_args=[1, 2]),
    "model_args without hidden_size": lambda c: c["model_args"].pop("hidden_size"),
    "model_args with an extra key": _args("dropout", 0.5),
    "vocab_size a string": _args("vocab_size", "16"),
    "vocab_size 10^12": _args("vocab_size", 10**12),
    "hidden_size a bool": _args("hidden_size", True),
    "hidden_size 0": _args("hidden_size", 0),
    "embedding_size other than the weights'": _args("embedding_size", 9),
    "layers 3": _args("layers", 3),
    "direction sideways": _args("direction", "sideways"),
    "a weight missing": _weights(lambda w: w.pop("out.bias")),
    "an extra weight": _weights(lambda w: w.update(extra=torch.zeros(2))),
    "a weight of the wrong shape": _weights(lambda w: w.update({"out.bias": torch.zeros(3)})),
    "a weight that is a list": _weights(lambda w: w.update({"out.bias": [0.0]})),
    "NaN weights": _weights(_nan_weight),
    "weights a list": lambda c: c.update(model=[1]),
    "vocabulary an integer": lambda c: c.update(vocab=16),
    "vocabulary of integers": lambda c: c.update(vocab=list(range(len(c["vocab"])))),
    "vocabulary one word short": lambda c: c.update(vocab=c["vocab"][:-1]),
    "no vocabulary": lambda c: c.pop("vocab"),
    "config a list": lambda c: c.update(config=[1]),
}


@pytest.mark.parametrize("case", list(BAD_LM_CHECKPOINTS))
@pytest.mark.parametrize("command", ["next", "prob", "generate"])
def test_a_language_model_with_bad_fields_is_one_line_naming_it(lm_run, tmp_path, case, command):
    path = tmp_path / "checkpoint.pt"
    shutil.copy(lm_run[0] / "trials" / "layers1-forward" / "checkpoint.pt", path)
    _edit_checkpoint(path, BAD_LM_CHECKPOINTS[case])
    words = [] if command == "generate" else ["love i"]
    one_line(invoke_cli("lm", command, "--model", str(path), *words), str(path))


def _unfinished_copy(lm_run, tmp_path) -> Path:
    """The trained run as if killed after its model was saved, before its result.json."""
    out = tmp_path / "run"
    shutil.copytree(lm_run[0], out)
    (out / "trials" / "layers1-forward" / "result.json").unlink()
    (out / "results.json").unlink()
    return out


def _progress(key, value):
    def edit(c):
        c[key] = value

    return edit


def _bad_optimizer(c):
    c["optimizer"] = {"state": {0: {"exp_avg": torch.zeros(3)}}, "param_groups": []}


BAD_STATES = {
    "step a string": _progress("step", "3"),
    "epoch negative": _progress("epoch", -1),
    "tokens a float": _progress("tokens", 1.5),
    "seconds a string": _progress("seconds", "fast"),
    "epoch_nll NaN": _progress("epoch_nll", math.nan),
    "step 10^400": _progress("step", 10**400),
    "seconds 10^400": _progress("seconds", 10**400),
    "step 10^5000 (no str())": _progress("step", 10**5000),
    "tokens 2^63": _progress("tokens", 2**63),
    "no batch counter": lambda c: c.pop("batch"),
    "an optimiser state that fits nothing": _bad_optimizer,
    "a weight of the wrong shape": _weights(lambda w: w.update({"out.bias": torch.zeros(3)})),
    "model_args of another model": _args("hidden_size", 17),
}


@pytest.mark.parametrize("case", list(BAD_STATES))
def test_resuming_from_a_state_with_bad_fields_is_one_line_naming_it(lm_run, tmp_path, case):
    out = _unfinished_copy(lm_run, tmp_path)
    path = out / "trials" / "layers1-forward" / "checkpoint.pt"
    _edit_checkpoint(path, BAD_STATES[case])
    one_line(invoke_cli("lm", "train", "--resume", str(out)), str(path))
    assert not (out / "results.json").exists()


def test_an_unfinished_run_resumes_from_its_saved_model(lm_run, tmp_path):
    out = _unfinished_copy(lm_run, tmp_path)
    result = invoke_cli("lm", "train", "--resume", str(out))
    assert result.returncode == 0, result.stderr
    assert (
        read_json(out / "results.json")["steps"] == read_json(lm_run[0] / "results.json")["steps"]
    )


def _mnist_checkpoint(path: Path, edit) -> Path:
    save_mnist(path, build("logreg"), "logreg", {"lr": 0.1}, MAIN_CLASSES)
    _edit_checkpoint(path, edit)
    return path


BAD_MNIST_CHECKPOINTS = {
    "model_args a list": lambda c: c.update(model_args=["logreg"]),
    "arch an integer": _args("arch", 3),
    "arch a list": _args("arch", ["logreg"]),
    "arch unknown": _args("arch", "resnet"),
    "model_args with an extra key": _args("dropout", 0.5),
    "classes an integer": lambda c: c.update(classes=10),
    "nine classes": lambda c: c.update(classes=MAIN_CLASSES[:9]),
    "classes of integers": lambda c: c.update(classes=list(range(10))),
    "no classes": lambda c: c.pop("classes"),
    "a weight missing": _weights(lambda w: w.pop("1.bias")),
    "an extra weight": _weights(lambda w: w.update(extra=torch.zeros(2))),
    "a weight of the wrong shape": _weights(lambda w: w.update({"1.bias": torch.zeros(3)})),
    "NaN weights": _weights(lambda w: w.update({"1.bias": torch.full((10,), math.nan)})),
    "config a list": lambda c: c.update(config=[1]),
}


@pytest.mark.parametrize("case", list(BAD_MNIST_CHECKPOINTS))
def test_an_mnist_model_with_bad_fields_is_an_input_error_naming_it(tmp_path, case):
    path = _mnist_checkpoint(tmp_path / "checkpoint.pt", BAD_MNIST_CHECKPOINTS[case])
    with pytest.raises(InputError, match=str(path)):
        load_mnist(path)


def test_a_good_mnist_checkpoint_still_loads(tmp_path):
    model = load_mnist(_mnist_checkpoint(tmp_path / "checkpoint.pt", lambda c: None))
    assert model.arch == "logreg" and model.classes == MAIN_CLASSES


class RunsCode:
    """Unpickling this runs code: it would create `marker`."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').close()",))


def _plant(path: Path, marker: Path) -> None:
    path.unlink(missing_ok=True)
    torch.save(
        {"model": {}, "model_args": {}, "config": {}, "version": "0", "x": RunsCode(marker)}, path
    )


@pytest.mark.slow  # several commands, one of them a four-model study
def test_a_checkpoint_that_would_run_code_never_runs_when_the_run_is_read_again(lm_run, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(lm_run[0], out)
    corpus, args = lm_run[1], list(lm_run[2])
    marker = tmp_path / "ran"
    trial = out / "trials" / "layers1-forward"
    _plant(trial / "checkpoint.pt", marker)
    _plant(trial / "train_state.pt", marker)
    args[args.index(str(lm_run[0]))] = str(out)
    # The same settings: the finished trial is kept, and its files are not read.
    assert invoke_cli("lm", "train", *args).returncode == 0
    # Other settings: the trial trains again, resuming from nothing it cannot trust.
    other = [*args, "--max-steps", "2"]
    one_line(invoke_cli("lm", "train", *other), "train_state.pt")
    (trial / "result.json").unlink()
    one_line(invoke_cli("lm", "train", "--resume", str(out)), "train_state.pt")
    (trial / "train_state.pt").unlink()
    one_line(invoke_cli("lm", "train", "--resume", str(out)), "checkpoint.pt")
    for command, extra in (("next", ["love"]), ("prob", ["love i"]), ("generate", [])):
        one_line(invoke_cli("lm", command, "--model", str(out), *extra), "checkpoint.pt")
    study = tmp_path / "study"
    study_args = ["--corpus", str(corpus), *TINY_LM, "--max-steps", "1", "--out", str(study)]
    assert invoke_cli("lm", "study", *study_args, "--quiet").returncode == 0
    _plant(study / "trials" / "layers2-reverse" / "checkpoint.pt", marker)
    (study / "results.json").unlink()
    one_line(invoke_cli("lm", "study", *study_args, "--quiet"), "checkpoint.pt")
    assert not marker.exists()


# ---------------------------------------------------------------- symbolic links


@pytest.fixture(scope="module")
def idx_dir(tmp_path_factory):
    return write_idx_set(tmp_path_factory.mktemp("idx"), n_train=300, n_test=50, gz=False)


@pytest.fixture(scope="module")
def cnn_run(tmp_path_factory, idx_dir):
    out = tmp_path_factory.mktemp("cnn") / "run"
    args = ["--archs", "single_conv", "--batch-sizes", "50", "--eval-every", "5"]
    args += ["--max-epochs", "1", "--data-dir", str(idx_dir), "--quiet"]
    result = invoke_cli("mnist", "cnn", *args, "--out", str(out))
    assert result.returncode == 0, result.stderr
    return out, args


def _secret(tmp_path: Path, data: bytes = b"another user's secret") -> Path:
    secret = tmp_path / "secret"
    secret.write_bytes(data)
    secret.chmod(0o600)
    return secret


def test_mnist_cnn_never_copies_a_linked_checkpoint_into_the_run(cnn_run, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(cnn_run[0], out)
    best = read_json(out / "results.json")["best"]
    trial = out / "trials" / f"{best['arch']}_b{best['batch_size']}"
    # A valid checkpoint elsewhere, and a file that is none: both refused, neither copied.
    for target in (_secret(tmp_path), tmp_path / "valid.pt"):
        if target.name == "valid.pt":
            shutil.copy(trial / "checkpoint.pt", target)
        (trial / "checkpoint.pt").unlink()
        (trial / "checkpoint.pt").symlink_to(target)
        (out / "results.json").unlink(missing_ok=True)
        (out / "checkpoint.pt").unlink(missing_ok=True)
        result = invoke_cli("mnist", "cnn", *cnn_run[1], "--out", str(out))
        one_line(result, "symbolic link", str(trial / "checkpoint.pt"))
        assert not (out / "checkpoint.pt").exists()
        assert not (out / "results.json").exists()


def test_a_trial_folder_linked_out_of_the_run_is_refused(cnn_run, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(cnn_run[0], out)
    best = read_json(out / "results.json")["best"]
    trial = out / "trials" / f"{best['arch']}_b{best['batch_size']}"
    shutil.move(trial, tmp_path / "moved")
    trial.symlink_to(tmp_path / "moved")
    (out / "results.json").unlink()
    one_line(invoke_cli("mnist", "cnn", *cnn_run[1], "--out", str(out)), "outside the run")


def _report_part(root: Path) -> Outcome:
    part = PARTS[0]
    directory = root / part.name
    (directory / "plots").mkdir(parents=True)
    (directory / "results.md").write_text("# XOR\n")
    return Outcome(part, directory, 1.0, command=["dlclassics", *part.command.split()])


def test_the_report_embeds_no_image_from_outside_the_run(tmp_path):
    root = tmp_path / "run"
    outcome = _report_part(root)
    secret = _secret(tmp_path, b"\x89PNG secret")
    (outcome.directory / "plots" / "loss.png").symlink_to(secret)
    with pytest.raises(InputError, match="symbolic link"):
        report.write_report(RunDir(root), [outcome], True, 1.0, None)
    (outcome.directory / "plots" / "loss.png").unlink()
    # A results.md, which the report includes, naming an image elsewhere.
    (outcome.directory / "results.md").write_text(f"# XOR\n\n![x]({secret}.png)\n")
    shutil.copy(secret, f"{secret}.png")
    with pytest.raises(InputError, match="outside the run"):
        report.write_report(RunDir(root), [outcome], True, 1.0, None)
    (outcome.directory / "results.md").unlink()
    (outcome.directory / "results.md").symlink_to(secret)
    with pytest.raises(InputError, match="symbolic link"):
        report.write_report(RunDir(root), [outcome], True, 1.0, None)
    assert not (root / "report.html").exists()


def _reproduce_run(tmp_path: Path, corpus: Path) -> Path:
    out = tmp_path / "run"
    out.mkdir()
    config = ReproduceConfig(
        quick=True, parts=("xor-solve",), corpus=str(corpus), corpus_sha256=file_sha256(corpus)
    )
    RunDir(out).save_config("reproduce", config)
    return out


def test_reproduce_resume_with_an_edited_corpus_path_reads_nothing_of_it(tmp_path):
    corpus = write_corpus(tmp_path / "corpus.txt")
    out = _reproduce_run(tmp_path, corpus)
    config = read_json(out / "config.json")
    config["corpus"] = str(_secret(tmp_path, b"root:x:0:0\n" * 20))
    (out / "config.json").write_text(json.dumps(config))
    one_line(invoke_cli("reproduce", "--resume", str(out)), "corpus")
    assert not (out / "corpus-slice.txt").exists()


# ---------------------------------------------------------------- resuming on changed data


def test_lm_resume_on_an_edited_corpus_is_refused(lm_run, tmp_path):
    out = _unfinished_copy(lm_run, tmp_path)
    corpus = Path(read_json(out / "config.json")["corpus"])
    original = corpus.read_bytes()
    try:
        # The same words, other sentences: the same vocabulary size, other word ids.
        corpus.write_text("\n".join(reversed(original.decode().splitlines())) + "\n")
        one_line(invoke_cli("lm", "train", "--resume", str(out)), str(corpus), "sha256")
        assert not (out / "results.json").exists()
    finally:
        corpus.write_bytes(original)
    assert invoke_cli("lm", "train", "--resume", str(out)).returncode == 0


@pytest.mark.slow  # a resume that trains again
def test_mnist_cnn_resume_on_other_images_is_refused(cnn_run, idx_dir, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(cnn_run[0], out)
    data = tmp_path / "idx"
    shutil.copytree(idx_dir, data)
    config = read_json(out / "config.json")
    config["data_dir"] = str(data)  # the same files, copied: still the run's data
    (out / "config.json").write_text(json.dumps(config))
    (out / "results.json").unlink()
    assert invoke_cli("mnist", "cnn", "--resume", str(out)).returncode == 0
    labels = data / "train-labels-idx1-ubyte"
    raw = bytearray(labels.read_bytes())
    raw[8], raw[9] = raw[9], raw[8]  # two labels swapped: a valid file, other data
    labels.write_bytes(bytes(raw))
    (out / "results.json").unlink()
    one_line(invoke_cli("mnist", "cnn", "--resume", str(out)), "sha256")


def test_reproduce_resume_on_an_edited_corpus_is_refused(tmp_path):
    corpus = write_corpus(tmp_path / "corpus.txt")
    out = _reproduce_run(tmp_path, corpus)
    write_corpus(corpus, seed=1)
    one_line(invoke_cli("reproduce", "--resume", str(out)), str(corpus), "sha256")
    assert not (out / "corpus-slice.txt").exists()


# ---------------------------------------------------------------- training that diverges


def test_lm_training_that_diverges_stops_before_saving(lm_run, tmp_path, monkeypatch):
    from dlclassics.lm.model import LanguageModel

    calls = []
    loss_sum = LanguageModel.loss_sum

    def diverging(self, *args):
        calls.append(1)
        loss = loss_sum(self, *args)
        return loss * math.nan if len(calls) >= 4 else loss

    monkeypatch.setattr(LanguageModel, "loss_sum", diverging)
    out = tmp_path / "run"
    args = ["--corpus", str(lm_run[1]), *TINY_LM, "--checkpoint-every", "1", "--out", str(out)]
    for _ in range(2):  # a rerun meets the same divergence and says so again
        result = invoke_cli("lm", "train", *args, "--quiet")
        one_line(result, "training diverged at step 4: the loss is nan; try a lower --lr")
    trial = out / "trials" / "layers1-forward"
    assert not (trial / "checkpoint.pt").exists() and not (trial / "result.json").exists()
    state = load_checkpoint(trial / "train_state.pt")  # the last good state, step 3
    assert state["step"] == 3
    assert all(torch.isfinite(w).all() for w in state["model"].values())


def test_mnist_training_that_diverges_stops_before_saving(idx_dir, tmp_path, monkeypatch):
    from dlclassics.mnist import train

    monkeypatch.setattr(train, "normalize", lambda images: images.unsqueeze(1).float() * math.inf)
    out = tmp_path / "run"
    args = ["--iterations", "10", "--data-dir", str(idx_dir), "--out", str(out), "--quiet"]
    one_line(invoke_cli("mnist", "fc", *args), "training diverged at step", "try a lower --lr")
    assert not list(out.glob("trials/*/checkpoint.pt"))


def test_xor_training_that_diverges_stops_before_saving(tmp_path, monkeypatch):
    from dlclassics.xor import train

    bce = train.F.binary_cross_entropy
    monkeypatch.setattr(train.F, "binary_cross_entropy", lambda *a: bce(*a) * math.nan)
    out = tmp_path / "run"
    result = invoke_cli("xor", "train", "--epochs", "5", "--out", str(out), "--quiet")
    one_line(result, "training diverged at step 1: the loss is nan")
    assert not list(out.glob("trials/*/checkpoint.pt"))


def test_xor_sweep_that_diverges_stops_before_saving(tmp_path, monkeypatch):
    from dlclassics.xor import sweep

    train_batched = sweep.train_batched

    def diverging(*args, **kwargs):
        runs = train_batched(*args, **kwargs)
        runs.val_loss = torch.where(torch.arange(len(runs.val_loss)) == 0, math.nan, runs.val_loss)
        return runs

    monkeypatch.setattr(sweep, "train_batched", diverging)
    out = tmp_path / "run"
    args = ["--hidden", "1", "--max-epochs", "200", "--max-runs", "1", "--successes", "1"]
    result = invoke_cli("xor", "sweep", *args, "--out", str(out), "--quiet")
    one_line(result, "training diverged at step 200: the loss is nan; try a lower --lrs")
    assert not list(out.glob("trials/*/checkpoint.pt")) and not list(out.glob("trials/*/*.json"))


@pytest.mark.parametrize("command", [["train"], ["sweep", "--max-epochs", "10"]])
def test_xor_learning_rate_far_too_large_is_one_line_before_a_run_directory(tmp_path, command):
    option = "--lr" if command == ["train"] else "--lrs"
    out = tmp_path / "run"
    result = invoke_cli("xor", *command, option, "1e300", "--out", str(out), "--quiet")
    one_line(result, option, "1e+300", out=out)


def test_results_json_is_never_nan_and_an_overflowed_perplexity_is_null(
    lm_run, tmp_path, monkeypatch
):
    with pytest.raises(ValueError):
        write_json(tmp_path / "results.json", {"perplexity": math.nan})
    assert not (tmp_path / "results.json").exists() and no_temporary_files(tmp_path)
    assert exp(1000.0) == math.inf
    monkeypatch.setattr("dlclassics.lm.experiment.perplexity", lambda *a, **k: math.inf)
    out = tmp_path / "run"
    args = ["--corpus", str(lm_run[1]), *TINY_LM, "--max-steps", "2", "--out", str(out), "--quiet"]
    result = invoke_cli("lm", "train", *args)
    assert result.returncode == 0, result.stderr
    assert "train overflowed, val overflowed, test overflowed" in result.stdout
    assert read_json(out / "results.json")["perplexity"] == {
        "train": None,
        "val": None,
        "test": None,
    }


# ---------------------------------------------------------------- odd shapes and a full disk

XOR = ["xor", "solve", "--quiet"]
XOR_TRAIN = ["xor", "train", "--epochs", "5", "--quiet"]  # it also writes plots


def _xor_run(tmp_path: Path, command: list[str] = XOR) -> Path:
    out = tmp_path / "run"
    assert invoke_cli(*command, "--out", str(out)).returncode == 0
    return out


def _dir(path: Path) -> None:
    if path.exists():
        path.unlink()
    path.mkdir()


def _file(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    path.unlink(missing_ok=True)
    path.write_text("x")


SHAPES = {
    "trials a file": (lambda out: _file(out / "trials"), "trials is not a folder"),
    "a trial folder a file": (lambda out: _file(out / "trials" / "k2"), "k2 is not a folder"),
    "result.json a folder": (
        lambda out: _dir(out / "trials" / "k2" / "result.json"),
        "result.json: is a directory",
    ),
    "checkpoint.pt a folder": (
        lambda out: (
            (out / "trials" / "k2" / "result.json").unlink(),
            _dir(out / "trials" / "k2" / "checkpoint.pt"),
        ),
        "checkpoint.pt: is a directory",
    ),
    "results.json a folder": (lambda out: _dir(out / "results.json"), "results.json: is a"),
    "config.json a folder": (lambda out: _dir(out / "config.json"), "not a dlclassics run"),
}


@pytest.mark.parametrize("case", [*SHAPES, "plots a file"])
def test_an_odd_run_directory_shape_is_one_line(tmp_path, case):
    command = XOR_TRAIN if case == "plots a file" else XOR
    out = _xor_run(tmp_path, command)
    make, message = SHAPES.get(case, (lambda out: _file(out / "plots"), "plots is not a folder"))
    make(out)
    one_line(invoke_cli(*command, "--out", str(out)), message)
    assert no_temporary_files(out)


def test_resume_from_a_config_json_that_is_a_folder_is_one_line(lm_run, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(lm_run[0], out)
    _dir(out / "config.json")
    one_line(invoke_cli("lm", "train", "--resume", str(out)), "not a 'lm train' run directory")


@pytest.mark.parametrize(
    "code, reason", [(errno.ENOSPC, "no space left on device"), (errno.EROFS, "read-only file")]
)
def test_a_full_disk_or_read_only_folder_is_one_line_naming_the_file(
    tmp_path, monkeypatch, code, reason
):
    out = _xor_run(tmp_path)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    real_fdopen = os.fdopen

    class Full:
        def __init__(self, fd):
            self.file = real_fdopen(fd, "wb")

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.file.close()

        def write(self, data):
            raise OSError(code, os.strerror(code))

    monkeypatch.setattr(rundir.os, "fdopen", lambda fd, mode: Full(fd))
    for args in ([*XOR, "--out", str(out)], [*XOR, "--out", str(tmp_path / "new")]):
        one_line(invoke_cli(*args), "config.json", reason)
    # Nothing partial: every file as it was, no temporary file, no new run directory.
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert no_temporary_files(tmp_path) and not (tmp_path / "new").exists()


def test_a_full_disk_while_saving_a_trial_leaves_its_previous_files(tmp_path, monkeypatch):
    out = _xor_run(tmp_path)
    path = out / "trials" / "k2" / "result.json"
    previous = path.read_bytes()
    record = read_json(path)
    monkeypatch.setattr(rundir.os, "replace", _raise(errno.ENOSPC))
    with pytest.raises(InputError, match=f"{path}: no space left on device"):
        save_result(Settings(), Cell("k2"), path.parent, GOOD)
    assert path.read_bytes() == previous and record["format"] == RESULT_FORMAT
    assert no_temporary_files(out)


def _raise(code: int):
    def fail(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    return fail


def test_study_report_of_results_stored_by_another_version_is_one_line(tmp_path):
    optuna = pytest.importorskip("optuna")
    from optuna.artifacts import upload_artifact

    from dlclassics import workers
    from dlclassics.xor import solve

    url, name = f"sqlite:///{tmp_path / 'study.db'}", "solve"
    config = SolveConfig()
    workers.prepare(find("xor solve"), config, url, name, tmp_path / "first")
    study = optuna.load_study(study_name=name, storage=url)
    checkpoint = tmp_path / "checkpoint.pt"
    checkpoint.write_bytes(b"a checkpoint")
    for _ in solve.trials(config):
        trial = study.ask()  # a finished cell, its result in another version's fields
        trial.set_user_attr(workers.RESULT, {"k": "1", "loss": 0.0})
        store = workers._artifact_store(study)
        artifact = upload_artifact(
            artifact_store=store, file_path=str(checkpoint), study_or_trial=trial
        )
        trial.set_user_attr(workers.CHECKPOINT_ID, artifact)
        study.tell(trial, 0.0)
    out = tmp_path / "report"
    result = invoke_cli(
        "study", "report", "--storage", url, "--study-name", name, "--out", str(out)
    )
    one_line(result, "not one this version reads")
    assert not (out / "results.json").exists()


def test_resume_from_a_linked_config_json_is_refused(lm_run, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(lm_run[0], out)
    shutil.move(out / "config.json", tmp_path / "config.json")
    (out / "config.json").symlink_to(tmp_path / "config.json")
    one_line(invoke_cli("lm", "train", "--resume", str(out)), "not a 'lm train' run directory")


def test_a_fifo_in_the_run_directory_is_refused_without_waiting(tmp_path):
    fifo = tmp_path / "trials" / "cell" / "checkpoint.pt"
    fifo.parent.mkdir(parents=True)
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="not a regular file"):
        load_checkpoint(fifo, root=tmp_path)


def test_a_file_over_its_cap_is_refused_unread(tmp_path):
    record = tmp_path / "result.json"
    with record.open("wb") as f:
        f.truncate(rundir.MAX_RECORD_BYTES + 1)  # sparse: refused by its size, not read
    with pytest.raises(InputError, match=r"result\.json is larger than 64 MiB"):
        rundir.read_run_file(tmp_path, record, rundir.MAX_RECORD_BYTES)
    assert rundir.read_regular(Path("/proc/self/status"), 2**20).startswith(b"Name:")
    with pytest.raises(InputError, match="status is larger than"):  # its st_size says 0
        rundir.read_regular(Path("/proc/self/status"), 10)


def test_a_fifo_is_refused_by_the_data_readers_without_waiting(tmp_path):
    corpus = tmp_path / "corpus.txt"
    os.mkfifo(corpus)
    # The check is on the opened file (O_NONBLOCK, fstat): no look at the path before it to race.
    for read in (file_sha256, lambda p: rundir.read_regular(p, 10, "corpus")):
        with pytest.raises(InputError, match="not a regular file"):
            read(corpus)
