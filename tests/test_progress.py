"""Progress: the training commands' bars, and the live line `reproduce` shows of each part."""

import io
import os
import subprocess
import sys
import threading
import time

import pytest
from conftest import MAIN, open_terminal, read_terminal, write_idx_set
from tqdm import tqdm

from dlclassics.core import progress
from dlclassics.core.progress import ENV, Bar, Report, describe, read_report
from dlclassics.reproduce.parts import Watch, _show, _wait


def on_terminal(*args: str, env: dict[str, str] | None = None) -> tuple[int, bytes]:
    """`dlclassics ARGS` in a process whose stderr is a terminal: its exit code and what it drew."""
    terminal, child = open_terminal()
    proc = subprocess.Popen([*MAIN, *args], stdout=subprocess.DEVNULL, stderr=child, env=env)
    os.close(child)
    drawn = b""
    while chunk := read_terminal(terminal):
        drawn += chunk
    os.close(terminal)
    return proc.wait(timeout=300), drawn


def test_a_bar_writes_its_progress_where_the_variable_says(tmp_path, monkeypatch):
    path = tmp_path / "part.progress"
    monkeypatch.setenv(ENV, str(path))
    monkeypatch.setattr(progress, "EVERY", 0.0)
    reports = []
    with Bar("mlp", 5, quiet=True) as bar:
        assert read_report(path) == Report(
            trial="mlp", step=0, total=5, eta=None, status="", values={}
        )
        for step in range(5):
            if bar.advance():
                bar.show(loss=1 / (step + 1))
            reports.append(read_report(path))
        with bar.doing("evaluating val"):
            assert read_report(path)["status"] == "evaluating val"
    assert [r["step"] for r in reports] == [1, 2, 3, 4, 5]
    assert all(r["trial"] == "mlp" and r["total"] == 5 for r in reports)
    assert [r["values"]["loss"] for r in reports] == [1, 1 / 2, 1 / 3, 1 / 4, 1 / 5]
    # The rate is timed from the first step on, the one that warms up left out.
    assert reports[0]["eta"] is None and reports[1]["eta"] > 0 and reports[-1]["eta"] == 0
    assert describe(reports[1]) == f"mlp 2/5 loss=0.5 eta {tqdm.format_interval(reports[1]['eta'])}"
    assert read_report(path)["status"] == ""


def test_a_bar_is_throttled_and_inert_when_quiet_without_the_variable(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    with Bar("mlp", 3, quiet=True) as bar:
        assert [bar.advance() for _ in range(3)] == [False] * 3  # nothing to show anywhere
    monkeypatch.setenv(ENV, str(tmp_path / "part.progress"))
    with Bar("mlp", 3, quiet=True) as bar:
        # The first step shows at once, the next ones `EVERY` seconds later.
        assert bar.advance()
        bar.show(loss=1.0)
        assert not bar.advance()


def test_a_reader_never_sees_a_partial_report(tmp_path, monkeypatch):
    path = tmp_path / "part.progress"
    monkeypatch.setenv(ENV, str(path))
    monkeypatch.setattr(progress, "EVERY", 0.0)
    done = threading.Event()

    def write() -> None:
        with Bar("layers1-forward " * 20, 2000, quiet=True) as bar:
            for _ in range(2000):
                bar.advance()
                bar.show(loss=0.5)
        done.set()

    writer = threading.Thread(target=write)
    writer.start()
    while not path.exists():
        time.sleep(0.001)
    steps = []
    while not done.is_set():
        report = read_report(path)
        assert report is not None
        steps.append(report["step"])
    writer.join()
    assert steps == sorted(steps) and len(steps) > 1
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_report_not_of_the_format_is_none(tmp_path):
    path = tmp_path / "part.progress"
    assert read_report(path) is None
    for text in ("{", "[]", '{"trial": "x"}', "NaN"):
        path.write_text(text)
        assert read_report(path) is None


FAKE_PART = """
import sys, time
from dlclassics.core import progress
progress.EVERY = 0.0
sys.stderr.write("x" * 300_000 + "\\n")  # more than a pipe holds
with progress.Bar("k2", 20, quiet=True) as bar:
    for step in range(20):
        bar.advance()
        bar.show(loss=1 / (step + 1))
        time.sleep(0.1)
sys.stderr.write("error: the end\\n")
"""


@pytest.mark.slow  # a process
def test_reproduce_shows_the_progress_of_a_running_part(tmp_path):
    """The wait on a part gives its progress as it runs, and reads its stderr meanwhile."""
    path = tmp_path / "xor-train.progress"
    proc = subprocess.Popen(
        [sys.executable, "-c", FAKE_PART],
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ | {ENV: str(path)},
    )
    shown: list[Report | None] = []
    stderr = _wait(proc, Watch(path, shown.append))
    assert stderr.endswith("error: the end\n") and len(stderr) > 300_000
    reports = [r for r in shown if r is not None]
    assert len(reports) >= 2
    assert all(r["trial"] == "k2" and r["total"] == 20 for r in reports)
    steps = [r["step"] for r in reports]
    assert steps == sorted(steps) and steps[0] < steps[-1]
    bar = tqdm(total=1, file=io.StringIO())
    _show(bar, "xor-train", reports[-1])
    assert bar.postfix.startswith(f"xor-train: k2 {steps[-1]}/20 loss=")
    assert "eta" in bar.postfix


@pytest.mark.slow  # two processes
def test_quiet_draws_no_bar_and_xor_train_draws_one_per_network(tmp_path):
    args = ["xor", "train", "--epochs", "300"]
    code, drawn = on_terminal(*args, "--out", str(tmp_path / "quiet"), "--quiet")
    assert code == 0 and drawn == b""
    code, drawn = on_terminal(*args, "--out", str(tmp_path / "bars"))
    assert code == 0
    for name in (b"k1-bypass", b"k2", b"k4"):
        assert name + b": " in drawn
    assert b"loss=" in drawn


@pytest.mark.slow  # a process
def test_mnist_fc_bars_are_labelled_by_model(tmp_path):
    idx = write_idx_set(tmp_path / "idx", n_train=500, n_test=100)
    args = ["mnist", "fc", "--iterations", "40", "--data-dir", str(idx)]
    code, drawn = on_terminal(*args, "--out", str(tmp_path / "run"))
    assert code == 0, drawn
    assert b"logreg: " in drawn and b"mlp: " in drawn and b"train: " not in drawn
    assert b"loss=" in drawn and b"val_acc=" in drawn


@pytest.mark.slow  # a reproduction: a part's process, the three networks' full training
def test_reproduce_draws_the_running_parts_live_line(tmp_path):
    out = tmp_path / "report"
    code, drawn = on_terminal("reproduce", "--quick", "--only", "xor-train", "--out", str(out))
    assert code == 0, drawn
    assert b"reproduce:" in drawn and b"xor-train: k" in drawn and b"/1000 loss=" in drawn
    assert not list(out.glob("*.progress"))


def test_progress_leaves_the_results_as_they_were(tmp_path, monkeypatch):
    """The same seed gives the same results whether progress is written or not."""
    from conftest import invoke_cli, read_json, without_timings

    args = ["xor", "train", "--epochs", "200", "--quiet"]
    monkeypatch.delenv(ENV, raising=False)
    assert invoke_cli(*args, "--out", str(tmp_path / "plain")).returncode == 0
    monkeypatch.setenv(ENV, str(tmp_path / "xor.progress"))
    monkeypatch.setattr(progress, "EVERY", 0.0)
    start = time.perf_counter()
    assert invoke_cli(*args, "--out", str(tmp_path / "watched")).returncode == 0
    assert time.perf_counter() - start < 60
    assert read_report(tmp_path / "xor.progress")["step"] == 200
    plain, watched = (read_json(tmp_path / d / "results.json") for d in ("plain", "watched"))
    assert without_timings(plain) == without_timings(watched)
