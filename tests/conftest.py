"""Helpers and fixtures shared by the test modules, which import them with `from conftest import
...`: no test module imports another."""

import contextlib
import functools
import json
import os
import pty
import shutil
import signal
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner

# The data generators live in small_data.py, which CI's site build runs as a script too; the test
# modules keep importing them from here.
from small_data import CORPUS_WORDS as CORPUS_WORDS
from small_data import idx_bytes as idx_bytes
from small_data import make_images as make_images
from small_data import write_corpus as write_corpus
from small_data import write_data_home as write_data_home
from small_data import write_idx_set as write_idx_set
from small_data import write_svo_corpus as write_svo_corpus

import dlclassics
from dlclassics.cli import main
from dlclassics.core.checkpoint import find_checkpoint, load_checkpoint
from dlclassics.core.rundir import write_json
from dlclassics.experiments import PARTS
from dlclassics.lm.corpus import Vocabulary
from dlclassics.lm.model import LanguageModel, ModelConfig
from dlclassics.lm.model import save_model as save_lm
from dlclassics.mnist.data import SOURCES
from dlclassics.xor.model import XorNet

# The console entry point, as a command line for subprocess.
MAIN = [sys.executable, "-c", "from dlclassics.cli import main; main()"]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """Run the real console entry point in a subprocess, where a separate process is the point
    (signals, exit codes of the interpreter, standard input)."""
    return subprocess.run(
        [*MAIN, *args],
        capture_output=True,
        text=True,
    )


ADDRESS_SPACE_LIMIT = 8 * 2**30  # the worst cases run under an 8 GB address-space limit


def run_limited(*args: str, timeout: float = 60, stdin: Any = None) -> subprocess.CompletedProcess:
    """`dlclassics ARGS` in a subprocess whose address space is capped at ADDRESS_SPACE_LIMIT, so
    a count or size that slipped past the checks fails the test (MemoryError, a crash, or the
    timeout) instead of taking the machine's memory. On the timeout its whole process group is
    killed, workers it started included, and the test fails."""
    import resource

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_LIMIT, ADDRESS_SPACE_LIMIT))

    proc = subprocess.Popen(
        [*MAIN, *args],
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=cap,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"dlclassics {' '.join(args)} ran past {timeout} s")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # whatever it left running
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def assert_one_line_error(result: Any, out: Path | None = None) -> None:
    """Bad input refused: exit code 2 and one line on stderr starting with "error: ", no
    traceback; with `out`, no run directory (nor anything else) left at `out`.

    `result` is a CompletedProcess (run_cli, run_limited, subprocess.run, text or bytes) or
    invoke_cli's Invocation: both have `returncode` and `stderr`. Check what the line says with
    `result.stderr` afterwards."""
    stderr = result.stderr
    if isinstance(stderr, bytes):
        stderr = stderr.decode(errors="replace")
    assert result.returncode == 2, (result.returncode, stderr[-2000:])
    one_line = stderr.endswith("\n") and stderr.count("\n") == 1
    assert one_line and stderr.startswith("error: "), stderr[-2000:]
    if out is not None:
        left = sorted(p.name for p in out.iterdir()) if out.is_dir() else "a file"
        assert not out.exists(), f"the refused command left {out}: {left}"


def open_terminal() -> tuple[int, int]:
    """A pseudo-terminal (its two ends) to give a process as its stderr, as a user's terminal:
    progress bars draw only on one."""
    terminal, child = pty.openpty()
    termios.tcsetwinsize(child, (24, 200))  # a fresh one is 0 columns wide: no room to draw
    return terminal, child


def read_terminal(terminal: int) -> bytes:
    """What the process has written to its terminal since the last read; b"" once it has ended."""
    try:
        return os.read(terminal, 4096)
    except OSError:  # the terminal closes once no process holds it
        return b""


@dataclass
class Invocation:
    """What an in-process run of the entry point returned, shaped like a CompletedProcess."""

    returncode: int
    stdout: str
    stderr: str


def invoke_cli(*args: str, input: str | bytes | None = None) -> Invocation:
    """Run `dlclassics ARGS` in this process, through the same `main` as the console script."""
    runner = CliRunner()
    code = 0
    with runner.isolation(input=input) as streams:
        try:
            main(list(args))
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        stdout, stderr = (s.getvalue().decode() for s in streams[:2])
    return Invocation(code, stdout, stderr)


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def without_timings(obj):
    """A results.json without its wall-clock figures, which no two runs share."""
    if isinstance(obj, dict):
        return {
            k: without_timings(v)
            for k, v in obj.items()
            if "seconds" not in k and "per_second" not in k
        }
    if isinstance(obj, list):
        return [without_timings(v) for v in obj]
    return obj


# Runs that differ in thread, process or rank count sum their float32 numbers in another order,
# so their results agree to rounding, not bit for bit. With AVX2 kernels (no AVX-512), a quick
# `reproduce` with two workers of one thread each against one process of two threads gave
# mnist fc figures up to 9.8e-6 apart (relative) and lm study's 4.8e-7; RESULTS_RTOL leaves that
# a factor of 10 to grow and still catches a wrong seed, batch or trial, which move results in
# the 2nd or 3rd digit.
RESULTS_RTOL = 1e-4
RESULTS_ATOL = 1e-7  # for figures near zero (a converged XOR loss), where relative is too strict


def assert_results_match(a: Any, b: Any, where: str = "results") -> None:
    """Two results.json (or parts of them) from runs that differ only in how the work was split:
    the same keys, lengths, strings, integers and flags, and floats within RESULTS_RTOL. Use `==`
    instead where both runs computed the same way (same threads, same process count)."""
    if isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys(), f"{where}: keys {sorted(a)} != {sorted(b)}"
        for k in a:
            assert_results_match(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), f"{where}: {len(a)} items != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_results_match(x, y, f"{where}[{i}]")
    elif isinstance(a, float) or isinstance(b, float):
        assert type(a) is type(b), f"{where}: {a!r} != {b!r}"
        assert a == pytest.approx(b, rel=RESULTS_RTOL, abs=RESULTS_ATOL), f"{where}: {a} != {b}"
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


@pytest.fixture
def cli():
    """The CLI in this process (fast); use `run_cli` where a real process matters."""
    return invoke_cli


class FaultyServer:
    """An HTTP server on 127.0.0.1 that answers each path from a script of faults, one per request
    (the last one repeats): ("ok", bytes), ("status", 503), ("stall", seconds), ("short", bytes)
    (a full Content-Length, half the bytes, then the connection closed) or ("redirect", path)."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.scripts: dict[str, list[tuple[str, Any]]] = {}
        self.requests: dict[str, int] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                count = server.requests.get(self.path, 0)
                server.requests[self.path] = count + 1
                script = server.scripts.get(self.path, [("status", 404)])
                kind, value = script[min(count, len(script) - 1)]
                if kind == "status":
                    self.send_error(value)
                elif kind == "redirect":
                    self.send_response(302)
                    self.send_header("Location", value)
                    self.end_headers()
                elif kind == "stall":
                    self.send_response(200)
                    self.send_header("Content-Length", "1000")
                    self.end_headers()
                    time.sleep(value)
                else:
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(value)))
                    self.end_headers()
                    self.wfile.write(value if kind == "ok" else value[: len(value) // 2])
                    self.wfile.flush()
                    if kind == "short":
                        self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def faulty_server():
    server = FaultyServer()
    yield server
    server.close()


# MNIST.

# A small `mnist cnn` grid that trains in seconds.
CNN_FAST = ["--archs", "single_conv,double_conv", "--batch-sizes", "50", "--eval-every", "5"]


@pytest.fixture(scope="module")
def idx_dir(tmp_path_factory) -> Path:
    """A tiny IDX set (500 training, 100 test images) shared by a module's tests; a module
    that needs another size defines its own `idx_dir`."""
    return write_idx_set(tmp_path_factory.mktemp("idx"), n_train=500, n_test=100)


# Language model: tiny models.

TINY_LM = ["--embedding-size", "8", "--hidden-size", "16", "--batch-size", "16", "--no-bf16"]


def train_tiny_lm(tmp: Path, epochs: int) -> tuple[Path, Path, list[str]]:
    """An `lm train` of TINY_LM sizes on a corpus written in `tmp`: its run folder, the corpus
    and the arguments it ran with."""
    corpus = write_corpus(tmp / "corpus.txt")
    out = tmp / "run"
    args = ["--corpus", str(corpus), *TINY_LM, "--epochs", str(epochs), "--out", str(out)]
    args.append("--quiet")
    result = invoke_cli("lm", "train", *args)
    assert result.returncode == 0, result.stderr
    return out, corpus, args


# XOR.


def load_xor(path: Path) -> XorNet:
    """The network a trial saved (the package itself never reloads one, the tests check it)."""
    checkpoint = load_checkpoint(find_checkpoint(path))
    net = XorNet(**checkpoint["model_args"])
    net.load_state_dict(checkpoint["model"])
    return net


# Run directories of tiny untrained models, as training saves them (for `serve`'s picking).

DIGITS = list(SOURCES["mnist"].classes)
SENTENCES = [s.split() for s in ["the cat sat on the mat", "a dog ran in the park", "the end"]]


def make_run(run: Path, command: str) -> Path:
    """A run directory of `command`: a config.json and nothing else."""
    run.mkdir(parents=True, exist_ok=True)
    write_json(run / "config.json", {"command": command, "seed": 0})
    return run


def make_lm(run: Path, *directions: str, command: str = "lm train") -> Path:
    """A run of `command` with one tiny untrained model per direction (default: one forward);
    returns the last model's trial folder."""
    make_run(run, command)
    torch.manual_seed(0)
    vocab = Vocabulary.build(SENTENCES, 20)
    for direction in directions or ("forward",):
        config = ModelConfig(len(vocab), 1, direction, embedding_size=8, hidden_size=8)
        trial = run / "trials" / f"layers1-{direction}"
        save_lm(trial / "checkpoint.pt", LanguageModel(config), vocab, {"seed": 0})
    return trial


# `reproduce`.

PART = {p.name: p for p in PARTS}
# A 1x1 PNG: enough for a report to embed.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


@pytest.fixture(scope="module")
def quick_data(tmp_path_factory) -> list[str]:
    """`reproduce --quick`'s data options, on generated IDX files and sentences."""
    root = tmp_path_factory.mktemp("data")
    idx = write_idx_set(root / "idx", n_train=400, n_test=100)
    return ["--data-dir", str(idx), "--corpus", str(write_svo_corpus(root / "corpus.txt"))]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory, quick_data) -> tuple[Path, Invocation]:
    """A quick reproduction, one part after another: its folder and its CLI invocation."""
    out = tmp_path_factory.mktemp("quick") / "report"
    return out, invoke_cli("reproduce", "--quick", "--quiet", *quick_data, "--out", str(out))


# The lab's page in a browser: Debian's Chromium driven by Playwright (no browser download), the
# site served as any static host would serve it.

CHROMIUM = os.environ.get("DLCLASSICS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def write_lab_site(root: Path, entries: list[dict[str, Any]]) -> None:
    """The lab's page (`dlclassics/lab/static/`, as `export` copies it) and a models.json of
    `entries` in `root`: a site of the models a test wrote there itself."""
    for file in (Path(dlclassics.__file__).parent / "lab" / "static").iterdir():
        shutil.copy(file, root / file.name)
    (root / "models.json").write_text(json.dumps({"version": "test", "models": entries}))


def _browser_missing() -> str | None:
    for module in ("playwright", "safetensors"):
        try:
            __import__(module)
        except ImportError:
            return f"{module} is not installed: pip install -e '.[demo]'"
    if not (os.access(CHROMIUM, os.X_OK) or shutil.which(CHROMIUM)):
        return f"no Chromium at {CHROMIUM}: apt-get install chromium (or set DLCLASSICS_CHROMIUM)"
    return None


def require_browser() -> None:
    """Skip without Playwright or Chromium; fail instead with DLCLASSICS_REQUIRE_BROWSER=1 (as CI
    sets), where the browser tests must run."""
    reason = _browser_missing()
    if reason is None:
        return
    if os.environ.get("DLCLASSICS_REQUIRE_BROWSER") == "1":
        pytest.fail(f"DLCLASSICS_REQUIRE_BROWSER=1 but {reason}")
    pytest.skip(reason)


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:  # no line per request in the test output
        pass


@contextlib.contextmanager
def serve_folder(folder: Path) -> Iterator[str]:
    """`folder` over http://127.0.0.1:PORT/, as `python -m http.server` in it would serve it."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        thread.join(timeout=10)


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium (Playwright's Browser)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def open_lab(
    browser: Any, url: str, requests: list[str], errors: list[str], timeout_ms: int, **context: Any
) -> Any:
    """The lab's page at `url`, drawn: every request's URL goes into `requests`, every page error
    into `errors`."""
    page = browser.new_page(**context)
    page.set_default_timeout(timeout_ms)
    page.on("request", lambda request: requests.append(request.url))
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(url)
    page.wait_for_function("document.body.dataset.ready === 'true'")
    return page


@pytest.fixture(scope="module")
def requests() -> list[str]:
    """The URLs a module's page requested."""
    return []


@pytest.fixture(scope="module")
def errors() -> list[str]:
    """The errors a module's page raised."""
    return []
