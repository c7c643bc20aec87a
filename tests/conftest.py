import contextlib
import json
import os
import pty
import signal
import subprocess
import sys
import termios
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from dlclassics.cli import main


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """Run the real console entry point in a subprocess, where a separate process is the point
    (signals, exit codes of the interpreter, standard input)."""
    return subprocess.run(
        [sys.executable, "-c", "from dlclassics.cli import main; main()", *args],
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
        [sys.executable, "-c", "from dlclassics.cli import main; main()", *args],
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


def assert_one_line_error(result: Any) -> None:
    """Bad input: exit code 2 and one line on stderr starting with "error: ", no traceback."""
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-2000:]


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
