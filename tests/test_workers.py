"""Studies shared through Optuna's storage (`--storage`, `--workers`, `study report`), on small
generated data: results equal to a one-process run's, a SIGKILLed worker, bad input.

The PostgreSQL test runs against $DLCLASSICS_TEST_POSTGRES (a URL); it skips without one, unless
DLCLASSICS_REQUIRE_POSTGRES=1 (as CI sets).
"""

import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import replace

import pytest
from conftest import (
    MAIN,
    TINY_LM,
    assert_one_line_error,
    assert_results_match,
    invoke_cli,
    read_json,
    without_timings,
    write_corpus,
)

optuna = pytest.importorskip("optuna")

from dlclassics import workers  # noqa: E402 (after the skip: it needs Optuna)
from dlclassics.experiments import find  # noqa: E402
from dlclassics.mnist.config import CnnConfig  # noqa: E402
from dlclassics.mnist.experiment import with_data_sha256  # noqa: E402
from dlclassics.scale import EMBEDDED  # noqa: E402

# Four trials of a few seconds each.
GRID = ["--archs", "single_conv,double_conv", "--batch-sizes", "50,100", "--eval-every", "5"]
TRIALS = {"single_conv_b50", "single_conv_b100", "double_conv_b50", "double_conv_b100"}


def cnn_args(idx_dir, epochs: int = 2) -> list[str]:
    # float32: bf16 products round differently with other thread counts, and training carries
    # the difference further than assert_results_match's float32 tolerance (docs/scale.md).
    args = ["mnist", "cnn", *GRID, "--max-epochs", str(epochs), "--no-bf16"]
    return [*args, "--data-dir", str(idx_dir)]


@pytest.fixture(scope="module")
def one_process(tmp_path_factory, idx_dir):
    """results.json of the grid run in one process."""
    out = tmp_path_factory.mktemp("one") / "run"
    result = invoke_cli(*cnn_args(idx_dir), "--quiet", "--out", str(out))
    assert result.returncode == 0, result.stderr
    return without_timings(read_json(out / "results.json"))


def runs_per_trial(url: str, name: str) -> dict[str, int]:
    """How many times each trial finished; the tests print the trials that ran twice."""
    study = optuna.load_study(study_name=name, storage=url)
    counts: dict[str, int] = {}
    for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)):
        counts[t.user_attrs[workers.NAME]] = counts.get(t.user_attrs[workers.NAME], 0) + 1
    print("trials that ran twice:", [t for t, n in counts.items() if n > 1])
    return counts


def postgres_url() -> str:
    url = os.environ.get("DLCLASSICS_TEST_POSTGRES")
    if url:
        return url
    if os.environ.get("DLCLASSICS_REQUIRE_POSTGRES") == "1":
        pytest.fail("DLCLASSICS_REQUIRE_POSTGRES=1 but DLCLASSICS_TEST_POSTGRES is not set")
    pytest.skip("no PostgreSQL server: set DLCLASSICS_TEST_POSTGRES=postgresql://...")


@pytest.mark.slow
@pytest.mark.parametrize("database", ["embedded", "postgresql"])
def test_two_workers_run_each_trial_once_and_write_the_one_process_results(
    database, tmp_path, idx_dir, one_process
):
    out = tmp_path / "run"
    if database == "embedded":
        url, name, shared = f"sqlite:///{out / EMBEDDED}", "mnist-cnn", []
    else:
        url, name = postgres_url(), f"test-{uuid.uuid4().hex}"
        shared = ["--storage", url, "--study-name", name]
    args = [*cnn_args(idx_dir), "--quiet", "--out", str(out), "--workers", "2", *shared]
    result = invoke_cli(*args)
    assert result.returncode == 0, result.stderr
    shared = without_timings(read_json(out / "results.json"))
    assert_results_match(shared, one_process)  # each worker has half the threads
    assert runs_per_trial(url, name) == dict.fromkeys(TRIALS, 1)
    # A worker started on the finished study only reports, and writes the same results.
    again = invoke_cli(
        *cnn_args(idx_dir), "--quiet", "--out", str(out), "--storage", url, "--study-name", name
    )
    assert again.returncode == 0, again.stderr
    assert without_timings(read_json(out / "results.json")) == shared
    assert runs_per_trial(url, name) == dict.fromkeys(TRIALS, 1)


@pytest.mark.slow
def test_a_worker_killed_mid_trial_is_replaced_and_every_trial_counts_once(
    tmp_path, idx_dir, one_process
):
    out, url = tmp_path / "run", f"sqlite:///{tmp_path / 'study.db'}"
    args = [*MAIN, *cnn_args(idx_dir), "--quiet", "--out", str(out), "--storage", url]
    doomed = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        # A trial folder exists once a trial has started, after its heartbeat began.
        while not list(out.glob("trials/*/tensorboard")) and time.monotonic() < deadline:
            assert doomed.poll() is None, "the worker ended before it could be killed"
            time.sleep(0.05)
        doomed.send_signal(signal.SIGKILL)
    finally:
        doomed.wait()
    study = optuna.load_study(study_name="mnist-cnn", storage=url)
    running = study.get_trials(states=(optuna.trial.TrialState.RUNNING,))
    assert len(running) == 1  # the dead worker's trial, never to finish by itself
    survivor = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert survivor.returncode == 0, survivor.stderr
    assert_results_match(without_timings(read_json(out / "results.json")), one_process)
    assert runs_per_trial(url, "mnist-cnn") == dict.fromkeys(TRIALS, 1)
    stale = study.get_trials(states=(optuna.trial.TrialState.FAIL,))
    assert [t.user_attrs[workers.NAME] for t in stale] == [running[0].user_attrs[workers.NAME]]


@pytest.mark.slow
def test_lm_study_with_two_workers_equals_one_process(tmp_path):
    corpus = write_corpus(tmp_path / "corpus.txt")
    args = ["lm", "study", "--corpus", str(corpus), *TINY_LM, "--epochs", "1", "--quiet"]
    assert invoke_cli(*args, "--out", str(tmp_path / "one")).returncode == 0
    result = invoke_cli(*args, "--out", str(tmp_path / "two"), "--workers", "2")
    assert result.returncode == 0, result.stderr
    one, two = (without_timings(read_json(tmp_path / d / "results.json")) for d in ("one", "two"))
    assert_results_match(two, one)  # a worker has half the threads


@pytest.mark.slow
def test_a_one_process_run_does_not_import_optuna(tmp_path, idx_dir):
    code = (
        "import sys\nfrom dlclassics.cli import main\n"
        f"try:\n    main(['mnist', 'fc', '--iterations', '3', '--data-dir', {str(idx_dir)!r},"
        f" '--out', {str(tmp_path / 'run')!r}, '--quiet'])\nexcept SystemExit as e:\n"
        "    assert e.code == 0, e.code\nassert 'optuna' not in sys.modules\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("storage", "says"),
    [
        ("not a url", "is not a database URL"),
        ("nosuchdb://host/x", "cannot open storage"),
        ("sqlite:////nonexistent-folder/study.db", "folder /nonexistent-folder does not exist"),
        ("postgresql://nobody:secret@127.0.0.1:9/db", "cannot open storage"),  # nothing listens
    ],
)
def test_bad_storage_is_one_line_exit_2_and_no_run_directory(tmp_path, idx_dir, storage, says):
    out = tmp_path / "run"
    result = invoke_cli(*cnn_args(idx_dir), "--out", str(out), "--storage", storage)
    assert_one_line_error(result, out)
    assert says in result.stderr
    assert "secret" not in result.stderr


def test_bad_worker_options_are_one_line_exit_2(tmp_path, idx_dir, monkeypatch):
    out = tmp_path / "run"
    result = invoke_cli(*cnn_args(idx_dir), "--out", str(out), "--workers", "0")
    assert_one_line_error(result, out)
    assert "--workers" in result.stderr
    result = invoke_cli(*cnn_args(idx_dir), "--out", str(out), "--study-name", "grid")
    assert_one_line_error(result, out)
    assert "--study-name is for --storage or --workers" in result.stderr
    monkeypatch.chdir(tmp_path)
    result = invoke_cli(*cnn_args(idx_dir), "--storage", "sqlite:///study.db")
    assert_one_line_error(result, tmp_path / "runs")
    assert "--storage needs --out" in result.stderr
    assert not (tmp_path / "study.db").exists()


def prepared(tmp_path, idx_dir) -> tuple[str, str]:
    """A study of the 4-trial grid with nothing run yet."""
    url, name = f"sqlite:///{tmp_path / 'study.db'}", "grid"
    config = replace(
        CnnConfig(),
        archs=("single_conv", "double_conv"),
        batch_sizes=(50, 100),
        eval_every=5,
        max_epochs=2,
        data_dir=str(idx_dir),
    )
    config = with_data_sha256(config, 100)  # as the command records its data
    workers.prepare(find("mnist cnn"), config, url, name, tmp_path / "first")
    return url, name


@pytest.mark.parametrize(
    ("command", "says"),
    [
        (["cnn", *GRID, "--max-epochs", "2", "--lr", "0.01"], "other settings (lr)"),
        (["cnn", *GRID, "--max-epochs", "3"], "other settings (max_epochs)"),
        (["fc"], "a `dlclassics mnist cnn` study"),
    ],
)
def test_a_study_of_another_command_or_settings_is_refused(tmp_path, idx_dir, command, says):
    url, name = prepared(tmp_path, idx_dir)
    args = ["mnist", *command, "--data-dir", str(idx_dir)]
    out = tmp_path / "run"
    result = invoke_cli(*args, "--out", str(out), "--storage", url, "--study-name", name)
    assert_one_line_error(result, out)
    assert says in result.stderr


def test_report_of_an_unfinished_study_marks_every_trial_and_writes_no_results(tmp_path, idx_dir):
    url, name = prepared(tmp_path, idx_dir)
    out = tmp_path / "report"
    result = invoke_cli(
        "study", "report", "--storage", url, "--study-name", name, "--out", str(out)
    )
    assert result.returncode == 0, result.stderr
    assert "0 of 4 trials finished" in result.stdout
    assert not (out / "results.json").exists()
    markdown = (out / "results.md").read_text()
    assert all(f"| {trial} | waiting |" in markdown for trial in TRIALS)
    missing = invoke_cli(
        "study", "report", "--storage", url, "--study-name", "nope", "--out", str(tmp_path / "none")
    )
    assert_one_line_error(missing, tmp_path / "none")
    assert "no study 'nope'" in missing.stderr


def test_a_no_wait_worker_leaves_the_running_trials_to_their_workers(tmp_path, idx_dir):
    url, name = prepared(tmp_path, idx_dir)
    study = optuna.load_study(study_name=name, storage=url)
    for _ in TRIALS:
        study.ask()  # every trial claimed, as by workers that are still running them
    out = tmp_path / "run"
    args = [*cnn_args(idx_dir), "--out", str(out), "--storage", url, "--study-name", name]
    result = invoke_cli(*args, "--no-wait")
    assert result.returncode == 0, result.stderr
    assert f"study {name}: no trial left here" in result.stdout
    assert not (out / "results.json").exists()
    assert len(study.get_trials(states=(optuna.trial.TrialState.RUNNING,))) == len(TRIALS)
    for bad in (cnn_args(idx_dir), [*args, "--workers", "2"]):
        refused = invoke_cli(*bad, "--no-wait", "--out", str(tmp_path / "bad"))
        assert_one_line_error(refused, tmp_path / "bad")
        assert "--no-wait is for one worker" in refused.stderr


@pytest.mark.slow
def test_an_xor_study_with_two_workers_equals_one_process_and_reports(tmp_path):
    args = ["xor", "train", "--epochs", "300", "--quiet"]
    assert invoke_cli(*args, "--out", str(tmp_path / "one")).returncode == 0
    result = invoke_cli(*args, "--out", str(tmp_path / "two"), "--workers", "2")
    assert result.returncode == 0, result.stderr
    one = read_json(tmp_path / "one" / "results.json")
    assert read_json(tmp_path / "two" / "results.json") == one
    url = f"sqlite:///{tmp_path / 'two' / EMBEDDED}"
    name, out = ["--study-name", "xor-train"], ["--out", str(tmp_path / "r")]
    report = invoke_cli("study", "report", "--storage", url, *name, *out)
    assert report.returncode == 0, report.stderr
    assert "3 of 3 trials finished, 0 ran twice" in report.stdout
    assert read_json(tmp_path / "r" / "results.json") == one


@pytest.mark.parametrize("args", [["study"], ["study", "report"]])
def test_help(args):
    result = invoke_cli(*args, "--help")
    assert result.returncode == 0
    assert ("report" if args == ["study"] else "--study-name") in result.stdout
