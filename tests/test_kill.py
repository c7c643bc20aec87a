"""Runs that survive a kill: SIGKILL at chosen points, or of the whole process group, then
--resume, which keeps what was finished and ends where an uninterrupted run ends."""

import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import invoke_cli, read_json, without_timings
from test_lm_cli import TINY, write_corpus

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
import dlclassics.checkpoint, dlclassics.lm.train, dlclassics.rundir, dlclassics.study
if point == "step":
    step = dlclassics.lm.train._step
    def _step(*args, **kwargs):
        loss = step(*args, **kwargs)
        if nth():
            die()
        return loss
    dlclassics.lm.train._step = _step
elif point in ("write", "rename"):
    write = dlclassics.checkpoint.atomic_write_bytes
    def atomic_write_bytes(path, data):
        if nth():
            fd, tmp = dlclassics.rundir.create_temporary(path)
            os.write(fd, data[: len(data) // 2] if point == "write" else data)
            os.fsync(fd)
            die()
        write(path, data)
    dlclassics.checkpoint.atomic_write_bytes = atomic_write_bytes
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
    args = ["lm", "train", "--corpus", str(corpus), *TINY, "--epochs", "3"]
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
