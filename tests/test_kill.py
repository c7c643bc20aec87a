"""Runs that survive a kill: SIGKILL at chosen points, or of the whole process group, then
--resume, which keeps what was finished and ends where an uninterrupted run ends."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import (
    CNN_FAST,
    MAIN,
    TINY_LM,
    invoke_cli,
    read_json,
    without_timings,
    write_corpus,
    write_idx_set,
)

# Runs `dlclassics ARGS` after arranging for the process to SIGKILL itself at one point:
# "step N" after the N-th optimiser step; "write N" half-way through writing the N-th checkpoint
# file (its temporary file holds half the bytes); "rename N" with the N-th checkpoint file fully
# written but not yet renamed into place; "result" just before the trial's result.json is written.
KILLER = """
import os, signal, sys
point, n = sys.argv[1], int(sys.argv[2])
del sys.argv[1:3]
calls = [0]
def die():
    os.kill(os.getpid(), signal.SIGKILL)
def nth():
    calls[0] += 1
    return calls[0] == n
import dlclassics.core.checkpoint, dlclassics.lm.train, dlclassics.core.rundir, dlclassics.study
if point == "step":
    step = dlclassics.lm.train._step
    def _step(*args, **kwargs):
        loss = step(*args, **kwargs)
        if nth():
            die()
        return loss
    dlclassics.lm.train._step = _step
elif point in ("write", "rename"):
    write = dlclassics.core.checkpoint.atomic_write_bytes
    def atomic_write_bytes(path, data):
        if nth():
            fd, tmp = dlclassics.core.rundir.create_temporary(path)
            os.write(fd, data[: len(data) // 2] if point == "write" else data)
            os.fsync(fd)
            die()
        write(path, data)
    dlclassics.core.checkpoint.atomic_write_bytes = atomic_write_bytes
elif point == "result":
    write_json = dlclassics.study.write_json
    def kill_before_result(path, obj):
        if path.name == "result.json":
            die()
        write_json(path, obj)
    dlclassics.study.write_json = kill_before_result
from dlclassics.cli import main
main()
"""

# 240 training sentences in batches of 16: 15 steps an epoch, 45 in all. States are written after
# steps 4, 8, 12, 15 (end of epoch 1), 16, ..., then the finished model.
EVERY = 4
STEPS = 45


def lm_args(corpus: Path, out: Path) -> list[str]:
    args = ["lm", "train", "--corpus", str(corpus), *TINY_LM, "--epochs", "3"]
    return [*args, "--checkpoint-every", str(EVERY), "--out", str(out), "--quiet"]


def weights(run: Path) -> dict[str, torch.Tensor]:
    path = run / "trials" / "layers1-forward" / "checkpoint.pt"
    return torch.load(path, weights_only=True)["model"]


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """The uninterrupted run everything is compared with."""
    tmp = tmp_path_factory.mktemp("straight")
    corpus = write_corpus(tmp / "corpus.txt")
    result = invoke_cli(*lm_args(corpus, tmp / "run"))
    assert result.returncode == 0, result.stderr
    return corpus, tmp / "run"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("point", "n", "lost"),
    [
        ("step", 7, 3),  # mid-epoch: the state of step 4 is on disk
        ("step", 15, 3),  # the epoch's last step, before its end-of-epoch state (step 12's is)
        ("step", 33, 1),  # mid-epoch 3: the state of step 32
        ("write", 3, 4),  # half-way through writing step 12's state: step 8's stays
        ("rename", 4, 3),  # step 15's end-of-epoch state written, not renamed: step 12's stays
        ("result", 1, 0),  # the model saved, its result.json not yet written
    ],
)
def test_lm_train_killed_anywhere_resumes_to_the_same_weights(straight, tmp_path, point, n, lost):
    corpus, reference = straight
    out = tmp_path / "run"
    killed = subprocess.run(
        [sys.executable, "-c", KILLER, point, str(n), *lm_args(corpus, out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not (out / "results.json").exists()
    trial = out / "trials" / "layers1-forward"
    saved = trial / ("checkpoint.pt" if point == "result" else "train_state.pt")
    step = torch.load(saved, weights_only=True)["step"]
    killed_at = {"step": n, "write": EVERY * n, "rename": 15, "result": STEPS}[point]
    if point in ("write", "rename"):  # the temporary file the kill left is never read
        assert len(list(trial.glob(".train_state.pt.*.tmp"))) == 1
    assert killed_at - step == lost  # the work lost: at most --checkpoint-every steps

    resumed = invoke_cli("lm", "train", "--resume", str(out), "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    a, b = weights(out), weights(reference)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert without_timings(read_json(out / "results.json")) == without_timings(
        read_json(reference / "results.json")
    )
    assert not (trial / "train_state.pt").exists()


def kill_group_once(args: list[str], ready) -> None:
    """Start `dlclassics ARGS` in its own process group and SIGKILL the whole group (children
    too) as soon as `ready()` holds."""
    proc = subprocess.Popen(
        [*MAIN, *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    while not ready():
        assert proc.poll() is None, f"the run ended before the kill: {proc.stderr.read()}"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stderr.close()


def snapshot(folder: Path, names: list[str]) -> dict[str, tuple[int, bytes]]:
    return {n: ((folder / n).stat().st_mtime_ns, (folder / n).read_bytes()) for n in names}


def assert_resume_keeps_the_trial(args: list[str], out: Path, first: Path, straight: Path) -> None:
    """After a kill: `--resume` leaves the finished trial `first` untouched and ends with the
    results.json of an uninterrupted run of `args` into `straight`."""
    kept = snapshot(first, ["result.json", "checkpoint.pt"])
    assert not (out / "results.json").exists()
    command = args[:2]  # e.g. ["lm", "study"]
    resumed = invoke_cli(*command, "--resume", str(out), "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert snapshot(first, list(kept)) == kept
    assert invoke_cli(*args, "--out", str(straight)).returncode == 0
    a, b = read_json(out / "results.json"), read_json(straight / "results.json")
    assert without_timings(a) == without_timings(b)


def assert_nothing_half_written(root: Path) -> None:
    for path in root.rglob("*.json"):
        read_json(path)  # every JSON file under its final name parses


@pytest.mark.slow
def test_lm_study_killed_mid_model_resumes_keeping_the_finished_ones(tmp_path):
    corpus = write_corpus(tmp_path / "corpus.txt", n=100)
    args = ["lm", "study", "--corpus", str(corpus), *TINY_LM, "--batch-size", "8", "--epochs", "2"]
    args += ["--checkpoint-every", "3", "--quiet"]
    out = tmp_path / "study"
    trials = out / "trials"
    second = trials / "layers1-reverse" / "train_state.pt"
    kill_group_once([*args, "--out", str(out)], second.exists)
    assert_nothing_half_written(out)
    assert_resume_keeps_the_trial(args, out, trials / "layers1-forward", tmp_path / "straight")


@pytest.mark.slow
def test_mnist_cnn_killed_after_a_trial_resumes_keeping_it(tmp_path):
    idx = write_idx_set(tmp_path / "idx", n_train=500, n_test=100)
    args = ["mnist", "cnn", *CNN_FAST, "--max-epochs", "2", "--data-dir", str(idx), "--quiet"]
    out = tmp_path / "run"
    first = out / "trials" / "single_conv_b50"
    kill_group_once([*args, "--out", str(out)], lambda: (first / "result.json").exists())
    assert_nothing_half_written(out)
    assert_resume_keeps_the_trial(args, out, first, tmp_path / "straight")


@pytest.mark.slow
def test_reproduce_killed_with_its_parts_resumes_keeping_the_finished_ones(tmp_path):
    idx = write_idx_set(tmp_path / "idx", n_train=400, n_test=100)
    corpus = write_corpus(tmp_path / "corpus.txt")
    out = tmp_path / "report"
    args = ["reproduce", "--quick", "--quiet", "--data-dir", str(idx), "--corpus", str(corpus)]
    # Killed while the mnist-cnn part (a child process) is between its trials.
    trials = out / "mnist-cnn" / "trials"
    kill_group_once([*args, "--out", str(out)], lambda: any(trials.glob("*/result.json")))
    assert_nothing_half_written(out)
    done = ["xor-solve", "xor-train", "xor-sweep", "mnist-fc"]
    kept = snapshot(out, [f"{name}.json" for name in done] + ["mnist-fc/results.json"])
    trial = next(trials.glob("*/result.json")).parent
    kept_trial = snapshot(trial, ["result.json", "checkpoint.pt"])
    assert not (out / "mnist-cnn.json").exists() and not (out / "report.html").exists()

    resumed = invoke_cli("reproduce", "--resume", str(out), "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert snapshot(out, list(kept)) == kept
    assert snapshot(trial, list(kept_trial)) == kept_trial
    parts = read_json(out / "results.json")["parts"]
    assert [(p["name"], p["ok"]) for p in parts] == [
        (n, True) for n in [*done, "mnist-cnn", "lm-study"]
    ]
    assert (out / "report.html").is_file()
