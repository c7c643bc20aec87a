"""Data-parallel training under torchrun, on CPUs with gloo: two processes train the model one
process trains. The slow tests start real torchrun jobs on 127.0.0.1."""

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import (
    assert_one_line_error,
    open_terminal,
    read_json,
    read_terminal,
    write_corpus,
    write_idx_set,
)

from dlclassics.core import distributed
from dlclassics.core.errors import InputError

TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]
DLCLASSICS = ["-m", "dlclassics"]
# 230 sentences: 184 to train on, in batches of 61 (three, then one of a single row, which
# leaves the second process without rows), of uneven lengths; float32 on the CPU.
LM = ["--embedding-size", "8", "--hidden-size", "16", "--batch-size", "61", "--no-bf16"]
LM += ["--device", "cpu"]  # and --quiet, but where a test watches rank 0's progress bar
# No dropout: its masks are drawn per process.
CNN = ["--archs", "single_conv,double_conv", "--batch-sizes", "50", "--max-epochs", "1"]
CNN += ["--eval-every", "3", "--target-accuracy", "0.999", "--no-bf16", "--device", "cpu"]
CNN += ["--quiet"]
JOB_TIMEOUT = 240  # seconds: a job that takes longer has hung


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run(
        list(args), capture_output=True, text=True, timeout=JOB_TIMEOUT, env=env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def one_process(*args: str) -> subprocess.CompletedProcess:
    # One thread, as each process of a two-process job on two cores: tiny models run slower on
    # more threads, much slower on a busy machine.
    return run(sys.executable, *DLCLASSICS, *args, env=os.environ | {"OMP_NUM_THREADS": "1"})


def two_processes(*args: str) -> subprocess.CompletedProcess:
    return run(*TORCHRUN, "--standalone", "--nproc-per-node", "2", *DLCLASSICS, *args)


def weights(trial: Path) -> dict[str, torch.Tensor]:
    return torch.load(trial / "checkpoint.pt", weights_only=True)["model"]


def assert_close(a: float | torch.Tensor, b: float | torch.Tensor, rtol: float = 1e-5) -> None:
    """Within `rtol` of each other, relative to the size of the whole value."""
    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    assert (a - b).norm() <= rtol * b.norm(), f"{(a - b).norm() / b.norm():.3g} apart"


def assert_same_weights(run_a: Path, run_b: Path) -> None:
    trials = sorted(p.name for p in (run_a / "trials").iterdir())
    assert trials == sorted(p.name for p in (run_b / "trials").iterdir())
    for trial in trials:
        a, b = weights(run_a / "trials" / trial), weights(run_b / "trials" / trial)
        assert a.keys() == b.keys()
        for name in a:
            assert_close(a[name], b[name])


def batch_losses(trial: Path) -> list[float]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(trial / "tensorboard"))
    events.Reload()
    return [e.value for e in events.Scalars("loss/batch")]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("corpus") / "corpus.txt", n=230)


@pytest.fixture(scope="module")
def lm_alone(tmp_path_factory, corpus) -> Path:
    """`lm train` in one process: what the jobs must match."""
    out = tmp_path_factory.mktemp("alone") / "run"
    args = ["--corpus", str(corpus), *LM, "--epochs", "3", "--quiet"]
    one_process("lm", "train", *args, "--out", str(out))
    return out


def test_without_torchrun_one_process_of_one():
    assert distributed.world() == distributed.World(0, 1, 0, 1)
    assert not distributed.active() and distributed.is_main()
    assert distributed.part(5) == (slice(0, 5), 1.0)
    assert distributed.shard([1, 2, 3]) == [1, 2, 3]
    values = torch.tensor([1.5, 2.0])
    assert distributed.sum_over_ranks(values) is values
    assert distributed.from_main(lambda: 7) == 7


def test_each_rank_takes_a_disjoint_part_and_a_rank_without_rows_adds_nothing(monkeypatch):
    monkeypatch.setattr(distributed, "active", lambda: True)

    def parts(rows: int, size: int) -> list[tuple[slice, float]]:
        found = []
        for rank in range(size):
            env = {"RANK": rank, "WORLD_SIZE": size, "LOCAL_RANK": rank, "LOCAL_WORLD_SIZE": size}
            for k, v in env.items():
                monkeypatch.setenv(k, str(v))
            found.append(distributed.part(rows))
        return found

    for rows in (3, 7, 8):
        rows_of = [list(range(rows))[s] for s, weight in parts(rows, 3) if weight]
        assert [i for part in rows_of for i in part] == list(range(rows))
        assert max(map(len, rows_of)) - min(map(len, rows_of)) <= 1
    # One row for three ranks: one trains on it, the others on a stand-in weighted 0.
    assert sorted(parts(1, 3), key=lambda p: p[1]) == [(slice(0, 1), 0.0)] * 2 + [
        (slice(0, 1), 1.0)
    ]


def torchrun_env(monkeypatch, size: int) -> None:
    for k, v in {"RANK": 0, "WORLD_SIZE": size, "LOCAL_RANK": 0, "LOCAL_WORLD_SIZE": size}.items():
        monkeypatch.setenv(k, str(v))


def test_bad_jobs_are_refused_before_joining(monkeypatch):
    torchrun_env(monkeypatch, 4)
    with pytest.raises(InputError, match="global batch of 3 cannot be split over 4 processes"):
        distributed.start("cpu", 3)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(InputError, match="4 processes on this machine but 2 GPUs"):
        distributed.start("cuda", 8)
    assert not distributed.active()


@pytest.mark.parametrize(
    "args",
    [
        ["lm", "train", "--batch-size", "1"],
        ["mnist", "cnn", "--batch-sizes", "50,1"],
        ["mnist", "fc", "--device", "cuda"] if not torch.cuda.is_available() else ["--bad"],
    ],
)
def test_bad_input_under_torchrun_is_one_line_exit_2(cli, monkeypatch, tmp_path, args):
    torchrun_env(monkeypatch, 2)
    out = tmp_path / "run"
    assert_one_line_error(cli(*args, "--out", str(out)), out)
    assert not distributed.active()


@pytest.mark.slow
def test_two_processes_train_the_language_model_one_process_trains(tmp_path, corpus, lm_alone):
    out = tmp_path / "run"
    args = ["--corpus", str(corpus), *LM, "--epochs", "3", "--quiet"]
    two_processes("lm", "train", *args, "--out", str(out))
    assert read_json(out / "config.json")["processes"] == 2
    assert read_json(lm_alone / "config.json")["processes"] == 1
    assert_same_weights(out, lm_alone)
    trial = "trials/layers1-forward"
    assert_close(batch_losses(out / trial)[:5], batch_losses(lm_alone / trial)[:5])
    together, alone = read_json(out / "results.json"), read_json(lm_alone / "results.json")
    for split in ("train", "val", "test"):
        assert_close(together["perplexity"][split], alone["perplexity"][split])
    assert (together["steps"], together["train_tokens"]) == (alone["steps"], alone["train_tokens"])


@pytest.mark.slow
def test_two_processes_train_the_cnns_one_process_trains(tmp_path):
    idx = write_idx_set(tmp_path / "idx", n_train=400, n_test=100)
    runs = {name: tmp_path / name for name in ("alone", "together")}
    one_process("mnist", "cnn", *CNN, "--data-dir", str(idx), "--out", str(runs["alone"]))
    two_processes("mnist", "cnn", *CNN, "--data-dir", str(idx), "--out", str(runs["together"]))
    assert_same_weights(runs["together"], runs["alone"])
    together, alone = (read_json(run / "results.json") for run in runs.values())
    for a, b in zip(together["runs"], alone["runs"], strict=True):
        assert (a["iterations"], a["kept_iteration"]) == (b["iterations"], b["kept_iteration"])
        assert_close(a["best_val_accuracy"], b["best_val_accuracy"])
    assert_close(together["best_test"]["accuracy"], alone["best_test"]["accuracy"])


@pytest.mark.slow
def test_two_machines_simulated_on_one_train_the_same_model(tmp_path, corpus, lm_alone):
    out = tmp_path / "run"
    job = [*TORCHRUN, "--nnodes", "2", "--nproc-per-node", "1", "--master-addr", "127.0.0.1"]
    job += ["--master-port", str(free_port())]
    args = [*DLCLASSICS, "lm", "train", "--corpus", str(corpus), *LM, "--epochs", "3", "--quiet"]
    nodes = [
        subprocess.Popen(
            [*job, "--node-rank", str(rank), *args, "--out", str(out)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in (0, 1)
    ]
    for node in nodes:
        _, stderr = node.communicate(timeout=JOB_TIMEOUT)
        assert node.returncode == 0, stderr[-3000:]
    assert read_json(out / "config.json")["processes"] == 2
    assert_same_weights(out, lm_alone)


def start_job(args: list[str]) -> tuple[subprocess.Popen, int]:
    """A two-process torchrun job in its own process group, as a terminal starts one, and that
    terminal: its stderr (progress bars draw only on one)."""
    terminal, child = open_terminal()
    job = subprocess.Popen(
        [*TORCHRUN, "--standalone", "--nproc-per-node", "2", *DLCLASSICS, *args],
        stdout=subprocess.DEVNULL,
        stderr=child,
        env=os.environ | {"PYTHONUNBUFFERED": "1"},
        start_new_session=True,
    )
    os.close(child)
    return job, terminal


def wait_for_steps(terminal: int, total: int) -> bytes:
    """Until rank 0's progress bar shows, and half a second of steps after; what it showed."""
    seen = b""
    while f"/{total}".encode() not in seen:
        chunk = read_terminal(terminal)
        assert chunk, f"the job ended before it trained: {seen.decode()[-3000:]}"
        seen += chunk
    time.sleep(0.5)
    return seen


@pytest.mark.slow
def test_an_interrupted_job_resumes_in_one_process_to_the_same_model(tmp_path, corpus):
    args = ["lm", "train", "--corpus", str(corpus), *LM, "--epochs", "60"]  # 240 steps
    alone = tmp_path / "alone"
    one_process(*args, "--quiet", "--out", str(alone))
    out = tmp_path / "run"
    job, terminal = start_job([*args, "--out", str(out)])
    seen = wait_for_steps(terminal, 240)
    os.killpg(job.pid, signal.SIGINT)  # Ctrl-C: every process of the job gets it
    while chunk := read_terminal(terminal):
        seen += chunk
    job.wait(timeout=JOB_TIMEOUT)
    os.close(terminal)
    assert job.returncode != 0
    assert f"continue with: dlclassics lm train --resume {out}" in seen.decode()
    state = torch.load(out / "trials/layers1-forward/train_state.pt", weights_only=True)
    assert 0 < state["step"] < 240
    one_process("lm", "train", "--resume", str(out), "--quiet")
    assert read_json(out / "results.json")["steps"] == 240
    assert_same_weights(out, alone)


@pytest.mark.slow
@pytest.mark.parametrize("rank", [0, 1])
def test_a_killed_rank_ends_the_job_naming_it(tmp_path, corpus, rank):
    out = tmp_path / "run"
    args = ["lm", "train", "--corpus", str(corpus), *LM, "--epochs", "1000"]
    job, terminal = start_job([*args, "--out", str(out)])
    seen = wait_for_steps(terminal, 4000)
    started = time.monotonic()
    workers = Path(f"/proc/{job.pid}/task/{job.pid}/children").read_text().split()
    victim = next(
        pid
        for pid in workers
        if f"RANK={rank}\0".encode() in Path(f"/proc/{pid}/environ").read_bytes()
    )
    os.kill(int(victim), signal.SIGKILL)
    while chunk := read_terminal(terminal):
        seen += chunk
    job.wait(timeout=JOB_TIMEOUT)
    os.close(terminal)
    assert job.returncode != 0
    assert time.monotonic() - started < 120  # not a hang
    # torchrun's report: the first failure is the killed rank.
    root_cause = seen.decode().split("Root Cause")[1]
    assert re.search(rf"rank\s*: {rank} \(local_rank: {rank}\)", root_cause), root_cause
    assert "Signal 9 (SIGKILL)" in root_cause
    assert not (out / "results.json").exists()
