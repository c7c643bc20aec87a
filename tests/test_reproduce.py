import hashlib
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
from conftest import (
    PART,
    PNG,
    assert_one_line_error,
    assert_results_match,
    invoke_cli,
    open_terminal,
    read_json,
    read_terminal,
    without_timings,
    write_svo_corpus,
)

import dlclassics
from dlclassics import __version__
from dlclassics.experiments import PARTS
from dlclassics.mnist.data import SOURCES
from dlclassics.reproduce import parts as parts_module
from dlclassics.reproduce.config import QUICK_LINES, ReproduceConfig
from dlclassics.reproduce.parts import Outcome, command_line, run_parts, selected
from dlclassics.reproduce.report import report_html, report_markdown, results
from dlclassics.scale import Scale
from dlclassics.serve.models import newest_lm_model, newest_mnist_model


def test_a_part_gets_the_quick_settings_the_seed_and_its_data(tmp_path):
    idx = str(tmp_path)
    config = ReproduceConfig(quick=True, dataset="fashion-mnist", data_dir=idx, seed=3)
    assert command_line(PART["mnist-cnn"], Path("r/mnist-cnn"), config, "/c.txt") == [
        *("mnist", "cnn", "--out", "r/mnist-cnn", "--quiet"),
        *("--target-accuracy", "0.5", "--max-epochs", "1", "--eval-every", "50"),
        *("--dataset", "fashion-mnist", "--data-dir", idx, "--seed", "3"),
    ]
    full = ReproduceConfig()
    assert command_line(PART["lm-study"], Path("lm"), full, "/c.txt") == [
        *("lm", "study", "--out", "lm", "--quiet", "--corpus", "/c.txt"),
    ]
    assert command_line(PART["xor-solve"], Path("x"), config, "/c.txt")[2:] == [
        *("--out", "x", "--quiet", "--seed", "3"),
    ]


def test_a_parts_command_line_gives_it_the_settings_of_its_config(tmp_path):
    """What `command_line` writes, the command reads back as the same config."""
    from dlclassics.cli import cli
    from dlclassics.reproduce.parts import part_config

    config = ReproduceConfig(quick=True, dataset="fashion-mnist", data_dir=str(tmp_path), seed=3)
    for part in PARTS:
        args = command_line(part, tmp_path / part.name, config, str(tmp_path / "c.txt"))
        group, name, *options = args
        command = cli.commands[group].commands[name]
        params = command.make_context(name, list(options)).params
        expected = part_config(part, config, str(tmp_path / "c.txt"))
        fields = {f: getattr(expected, f) for f in params if hasattr(expected, f)}
        assert {f: params[f] for f in fields} == {
            f: list(v) if isinstance(v, tuple) else v for f, v in fields.items()
        }, part.name


def test_run_parts_runs_the_chosen_parts_in_order_on_a_slice_of_the_corpus(tmp_path, monkeypatch):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("".join(f"sentence {i}.\n" for i in range(QUICK_LINES + 10)))
    ran = []

    def fake_run_part(part, root, config, corpus):
        ran.append((part.name, corpus))
        return Outcome(part, root / part.name, 0.5)

    monkeypatch.setattr(parts_module, "run_part", fake_run_part)
    config = ReproduceConfig(quick=True, parts=("lm-study", "xor-solve"), corpus=str(corpus))
    outcomes = run_parts(config, tmp_path, *selected(config, tmp_path), quiet=True)
    sliced = tmp_path / "corpus-slice.txt"
    assert ran == [("xor-solve", str(sliced)), ("lm-study", str(sliced))]
    assert [o.part.name for o in outcomes] == ["xor-solve", "lm-study"]
    assert sliced.read_text().splitlines() == corpus.read_text().splitlines()[:QUICK_LINES]
    ran.clear()
    config = ReproduceConfig(parts=("lm-study",), corpus=str(corpus))
    run_parts(config, tmp_path, *selected(config, tmp_path), quiet=True)
    assert ran == [("lm-study", str(corpus))]


def test_the_report_shows_each_parts_results_plots_and_failures(tmp_path):
    done = tmp_path / "xor-train"
    (done / "plots").mkdir(parents=True)
    (done / "results.md").write_text("# XOR trained\n\n| k | loss |\n|---|---|\n| 2 | 0.1 |\n")
    (done / "plots" / "loss.png").write_bytes(PNG)
    outcomes = [
        Outcome(PART["xor-train"], done, 1.25, command=["dlclassics", "xor", "train"]),
        Outcome(PART["mnist-fc"], tmp_path / "mnist-fc", 0.5, "no MNIST in /nowhere"),
    ]
    md = report_markdown(outcomes, tmp_path, "Title", 1.9, None)
    assert md.startswith("# Title\n\n| part | status | seconds |\n|---|---|---|\n")
    assert "| XOR networks trained | ok | 1.2 |" in md
    assert "| MNIST: fully connected | FAILED: no MNIST in /nowhere | 0.5 |" in md
    assert "Total: 1.8 s." in md
    assert "`dlclassics xor train` took 1.2 s." in md
    assert "### XOR trained\n\n| k | loss |" in md, "a part's headings sit below its section"
    assert "![loss](xor-train/plots/loss.png)" in md
    html = report_html(md, tmp_path, "Title")
    assert re.findall(r'<img[^>]*src="([^"]{0,22})', html) == ["data:image/png;base64,"]
    assert "Failed: no MNIST in /nowhere" in html
    assert results(outcomes, 1.9, None) == {
        "parts": [
            {"name": "xor-train", "ok": True, "error": "", "seconds": 1.25},
            {"name": "mnist-fc", "ok": False, "error": "no MNIST in /nowhere", "seconds": 0.5},
        ],
        "seconds": 1.9,
        "workers": None,
    }
    # Shared among workers, a part's seconds are its workers' sum, beside the whole's wall time.
    shared = report_markdown(outcomes, tmp_path, "Title", 1.0, 2)
    assert "Total: 1.8 s spent in the parts by 2 workers here" in shared
    assert "1.0 s from start to end." in shared
    assert "`dlclassics xor train`: its workers spent 1.2 s in it." in shared


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--only", "nonsense"), "'nonsense' is not one of 'xor-solve', 'xor-train', "),
        (("--only", " , "), "expected a comma-separated list, got ' , '"),
        (("--dataset", "cifar"), "'cifar' is not one of " + ", ".join(map(repr, SOURCES))),
        (("--mnist-dir", "no-such-dir"), "no-such-dir"),
        (("--corpus", "no-such-file.txt"), "no-such-file.txt"),
        (("--storage", "nosuchdb://host/x"), "cannot open storage nosuchdb://host/x"),
        (("--workers", "2", "--storage", "not a url"), "is not a database URL"),
        (("--study-name", "all-1"), "--study-name is for --storage or --workers"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_no_run(cli, tmp_path, args, message):
    result = cli("reproduce", *args, "--out", str(tmp_path / "r"))
    assert_one_line_error(result, tmp_path / "r")
    assert message in result.stderr


def test_a_shared_quick_run_without_optuna_or_with_a_bad_storage_leaves_no_folder(
    cli, tmp_path, monkeypatch
):
    # --quick with a corpus writes its slice in the folder first: the checks come before it.
    corpus = write_svo_corpus(tmp_path / "corpus.txt")
    args = ["reproduce", "--quick", "--corpus", str(corpus), "--out", str(tmp_path / "r")]
    result = cli(*args, "--storage", "nosuchdb://host/x")
    assert_one_line_error(result, tmp_path / "r")
    assert "cannot open storage" in result.stderr
    monkeypatch.setitem(sys.modules, "optuna", None)  # as if the `scale` extra were missing
    monkeypatch.delitem(sys.modules, "dlclassics.workers", raising=False)
    monkeypatch.delattr(dlclassics, "workers", raising=False)  # an earlier test's import
    result = cli(*args, "--workers", "2")
    assert_one_line_error(result, tmp_path / "r")
    assert (
        result.stderr
        == "error: --storage and --workers need optuna: pip install 'dlclassics[scale]'\n"
    )


def test_storage_needs_out(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = cli("reproduce", "--storage", f"sqlite:///{tmp_path / 'x.db'}")
    assert_one_line_error(result)
    assert "--storage needs --out" in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_quick_reproduction_on_generated_data(quick_run, quick_data):
    out, result = quick_run
    idx, corpus = Path(quick_data[1]), Path(quick_data[3])
    assert result.returncode == 0, result.stderr
    *progress, last = result.stdout.splitlines()
    assert [re.sub(r"\(.* s\)", "", line) for line in progress] == [f"{p.name}: ok " for p in PARTS]
    assert last == f"wrote {out / 'report.html'}"
    config = ReproduceConfig(
        quick=True,
        data_dir=str(idx.resolve()),
        corpus=str(corpus.resolve()),
        corpus_sha256=hashlib.sha256(corpus.read_bytes()).hexdigest(),
    )
    expected = {"command": "reproduce", "version": __version__, "processes": 1, **asdict(config)}
    assert read_json(out / "config.json") == expected | {"parts": list(config.parts)}
    parts = read_json(out / "results.json")["parts"]
    assert [(p["name"], p["ok"], p["error"]) for p in parts] == [(p.name, True, "") for p in PARTS]
    md = (out / "report.md").read_text()
    for part in PARTS:
        assert f"## {part.title}\n\n`dlclassics {part.command} --out {out / part.name}" in md
        # Each part's own results, its headings one level down.
        title = (out / part.name / "results.md").read_text().splitlines()[0]
        assert f"\n##{title}\n" in md
        assert read_json(out / part.name / "config.json")["command"] == part.command
    assert f"--corpus {out / 'corpus-slice.txt'}" in md
    # The lab of every model the parts trained, linked from the report.
    models = read_json(out / "site" / "models.json")["models"]
    assert {m["kind"] for m in models} == {"lm", "mnist", "xor"}
    assert "[site/index.html](site/index.html)" in md
    html = (out / "report.html").read_text()
    assert html.count("<table>") >= len(PARTS) + 1
    sources = re.findall(r'src="([^"]*)"', html)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    assert md.count("![") == len(sources)
    # The demo finds the reproduction's models: the last forward model the study trained.
    assert newest_lm_model(out) == out / "lm-study" / "trials" / "layers2-forward"
    assert newest_mnist_model(out) == out / "mnist-cnn"


@pytest.mark.slow
def test_two_workers_share_every_parts_trials_and_write_the_one_process_results(
    tmp_path, quick_data, quick_run
):
    optuna = pytest.importorskip("optuna")
    from dlclassics import workers

    one, _ = quick_run
    out = tmp_path / "report"
    result = invoke_cli(
        "reproduce", "--quick", "--quiet", *quick_data, "--out", str(out), "--workers", "2"
    )
    assert result.returncode == 0, result.stderr
    assert sorted(result.stdout.splitlines()[:-1]) == sorted(f"{p.name}: ok" for p in PARTS)
    parts = read_json(out / "results.json")
    assert parts["workers"] == 2
    assert [(p["name"], p["ok"]) for p in parts["parts"]] == [(p.name, True) for p in PARTS]
    storage = f"sqlite:///{out / 'study.db'}"
    for part in PARTS:
        # Each worker has half the threads: the same results, to rounding.
        assert_results_match(
            without_timings(read_json(out / part.name / "results.json")),
            without_timings(read_json(one / part.name / "results.json")),
            part.name,
        )
        study = optuna.load_study(study_name=f"reproduce-{part.name}", storage=storage)
        done = study.get_trials(states=[optuna.trial.TrialState.COMPLETE])
        names = [t.user_attrs[workers.NAME] for t in done]
        print(part.name, "trials that ran twice:", {n for n in names if names.count(n) > 1})
        assert sorted(set(names)) == sorted(t.name for t in (one / part.name / "trials").iterdir())
    # Each worker went through every part without waiting first; its log says so.
    logs = [log.read_text() for log in (out / "logs").glob("*.log")]
    assert len(logs) == 2
    for log in logs:
        assert [line.split()[2] for line in log.splitlines() if "wait: False" in line] == [
            f"{p.name}," for p in PARTS
        ]
    assert "Total: " in (out / "report.md").read_text()
    again = invoke_cli(
        "reproduce", "--quick", "--quiet", *quick_data, "--out", str(out), "--workers", "2"
    )
    assert again.returncode == 0, again.stderr  # a finished reproduction only reports
    assert without_timings(read_json(out / "results.json")) == without_timings(parts)


def test_a_shared_worker_runs_each_part_without_waiting_then_waiting(tmp_path, monkeypatch):
    pytest.importorskip("optuna")
    from dlclassics.reproduce import shared

    calls = []

    def fake_run_command(args, log, env, running):
        calls.append((args[args.index("--study-name") + 1], "--no-wait" in args, env))
        out = Path(args[args.index("--out") + 1])
        # xor-solve's folder is written at the first go; mnist-fc's only when it is run again,
        # the fifth command, as its folder was missing.
        if (out.name == "xor-solve" and "--no-wait" in args) or len(calls) == 5:
            out.mkdir()
            (out / "results.json").write_text("{}")
        return 1.5, 0, ""

    monkeypatch.setattr(shared, "run_command", fake_run_command)
    config = ReproduceConfig(parts=("xor-solve", "mnist-fc"), workers=1)
    scale = Scale(storage=f"sqlite:///{tmp_path / 'x.db'}", study_name="r", workers=1)
    chosen = [PART["xor-solve"], PART["mnist-fc"]]
    outcomes = shared.run_parts_shared(config, tmp_path, chosen, None, scale)
    assert [c[:2] for c in calls] == [
        ("r-xor-solve", True),
        ("r-mnist-fc", True),
        ("r-xor-solve", False),
        ("r-mnist-fc", False),
        # mnist-fc's study finished, but the worker that ran its last trial did not write its
        # folder (it died, say): run once more, which writes it.
        ("r-mnist-fc", False),
    ]
    assert calls[0][2]["OMP_NUM_THREADS"] == str(torch.get_num_threads())
    assert [(o.part.name, o.ok, o.seconds) for o in outcomes] == [
        ("xor-solve", True, 3.0),
        ("mnist-fc", True, 4.5),
    ]


@pytest.mark.slow
def test_a_failing_part_is_reported_and_the_others_run(cli, tmp_path):
    empty = tmp_path / "no-mnist-here"
    empty.mkdir()
    out = tmp_path / "report"
    result = cli(
        "reproduce",
        "--quick",
        "--quiet",
        *("--only", "mnist-fc,xor-solve", "--mnist-dir", str(empty), "--out", str(out)),
    )
    assert result.returncode == 1
    parts = read_json(out / "results.json")["parts"]
    assert [(p["name"], p["ok"]) for p in parts] == [("xor-solve", True), ("mnist-fc", False)]
    error = parts[1]["error"]
    assert str(empty) in error and not error.startswith("error")
    assert error.startswith(f"--data-dir {empty} lacks")  # the one name, given as --mnist-dir
    assert f"FAILED: {error}" in (out / "report.md").read_text()
    assert f"Failed: {error}" in (out / "report.html").read_text()
    assert (out / "xor-solve" / "results.json").exists()
    assert not (out / "mnist-fc" / "results.json").exists()


def _reproduce_xor_solve(tmp_path, stderr) -> subprocess.CompletedProcess:
    command = ["reproduce", "--only", "xor-solve", "--out", str(tmp_path / f"r{stderr}")]
    main = [sys.executable, "-c", "from dlclassics.cli import main; main()"]
    return subprocess.run(main + command, stdout=subprocess.PIPE, stderr=stderr, timeout=120)


@pytest.mark.slow  # two reproductions, each starting a part's process
def test_the_progress_bar_draws_on_a_terminal_only(tmp_path):
    piped = _reproduce_xor_solve(tmp_path, subprocess.PIPE)
    assert piped.returncode == 0, piped.stderr
    assert piped.stderr == b""  # not one redraw in a log
    assert piped.stdout.decode().startswith("xor-solve: ok")
    terminal, child = open_terminal()
    on_terminal = _reproduce_xor_solve(tmp_path, child)
    os.close(child)
    drawn = b""
    while chunk := read_terminal(terminal):
        drawn += chunk
    os.close(terminal)
    assert on_terminal.returncode == 0
    assert b"reproduce: 100%" in drawn and b"1/1" in drawn


def _processes_running(*words: str) -> list[int]:
    """The pids whose command line holds every one of `words`."""
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue  # it ended meanwhile
        if all(w.encode() in args for w in words):
            pids.append(int(cmdline.parent.name))
    return pids


@pytest.mark.slow
def test_a_part_process_killed_mid_trial_is_replaced_and_the_reproduction_completes(tmp_path):
    optuna = pytest.importorskip("optuna")
    out = tmp_path / "report"
    main = [sys.executable, "-c", "from dlclassics.cli import main; main()"]
    # The full XOR study: one trial of seconds, long enough to be killed in.
    args = [*main, "reproduce", "--only", "xor-sweep", "--quiet", "--out", str(out)]
    reproduction = subprocess.Popen([*args, "--workers", "2"], stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not list(out.glob("xor-sweep/trials/*/tensorboard")):
            assert reproduction.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        # Every process of the part: the one in the trial, and the other worker's, if it is on
        # its way to see that no trial is left waiting.
        victims = _processes_running("xor", "sweep", str(out / "xor-sweep"))
        assert victims
        for pid in victims:
            os.kill(pid, signal.SIGKILL)
        stdout, _ = reproduction.communicate(timeout=300)
    finally:
        reproduction.kill()
    assert reproduction.returncode == 0
    assert stdout.splitlines()[0] == "xor-sweep: ok"
    assert read_json(out / "results.json")["parts"][0]["ok"]
    study = optuna.load_study(study_name="reproduce-xor-sweep", storage=f"sqlite:///{out}/study.db")
    states = [t.state.name for t in study.get_trials()]
    # The killed run failed and was run again: by both waiting workers at times, as Optuna warns
    # SQLite can; the part's results count it once all the same, and equal a one-process run's.
    print("runs of the trial:", states)
    assert "FAIL" in states and "COMPLETE" in states
    one = tmp_path / "one"
    assert invoke_cli("xor", "sweep", "--quiet", "--out", str(one)).returncode == 0
    assert_results_match(
        without_timings(read_json(out / "xor-sweep" / "results.json")),
        without_timings(read_json(one / "results.json")),
    )


@pytest.mark.slow
def test_ctrl_c_stops_every_worker_and_the_same_command_continues(tmp_path):
    pytest.importorskip("optuna")
    out = tmp_path / "report"
    main = [sys.executable, "-c", "from dlclassics.cli import main; main()"]
    args = ["reproduce", "--only", "xor-sweep", "--quiet", "--out", str(out), "--workers", "2"]
    reproduction = subprocess.Popen(
        [*main, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 120
        while not list(out.glob("xor-sweep/trials/*/tensorboard")):
            assert reproduction.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        os.killpg(reproduction.pid, signal.SIGINT)  # Ctrl-C: the terminal signals them all
        _, stderr = reproduction.communicate(timeout=60)
    finally:
        reproduction.kill()
    assert reproduction.returncode == 130, stderr
    assert stderr.decode().strip().splitlines()[-1] == "interrupted"
    assert _processes_running("xor", "sweep", str(out / "xor-sweep")) == []
    assert not (out / "results.json").exists()
    again = subprocess.run([*main, *args], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert read_json(out / "results.json")["parts"][0]["ok"]
