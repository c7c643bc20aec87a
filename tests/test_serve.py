"""`dlclassics serve`: the lab's page of exported runs over HTTP, the Host check against DNS
rebinding, the newest runs picked under runs/, the temporary site removed at the end, and bad
input refused in one line."""

import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import (
    DIGITS,
    MAIN,
    assert_one_line_error,
    invoke_cli,
    make_lm,
    make_run,
    read_json,
    train_tiny_lm,
)

from dlclassics.core.rundir import write_json
from dlclassics.lab.export import STATIC
from dlclassics.mnist.models import build
from dlclassics.mnist.models import save_model as save_classifier
from dlclassics.serve import server
from dlclassics.serve.cli import NO_MODELS
from dlclassics.serve.models import newest_lm_model, newest_mnist_model, newest_run, newest_runs
from dlclassics.serve.server import SiteServer, accepted_hosts, requested_host, site_server

FOREIGN = ["evil.example", "evil.example:8000", "0.0.0.0:8000", "localhost.evil.example", "[::2]"]
FOREIGN += ["localhost:80:80", "localhost:x", ""]
LOCAL = ["localhost", "localhost:8000", "LocalHost", "127.0.0.1", "127.0.0.1:8000", "[::1]:8000"]


def get(port: int, path: str = "/", host: str | None = None) -> http.client.HTTPResponse:
    """GET `path` from 127.0.0.1:`port` with the Host header `host` (default: as a browser here
    sends it); the response, its body read."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path, headers={"Host": f"127.0.0.1:{port}" if host is None else host})
    response = conn.getresponse()
    response.body = response.read()  # type: ignore[attr-defined]
    conn.close()
    return response


def sites(tmp: Path) -> list[Path]:
    """The temporary sites `serve` left in the temporary folder `tmp`."""
    return [p for p in tmp.iterdir() if p.name.startswith("dlclassics-serve-")]


# ---- the server, in a thread of this process


@pytest.fixture
def site(tmp_path) -> Path:
    folder = tmp_path / "site"
    folder.mkdir()
    (folder / "index.html").write_text("<!doctype html><title>lab</title>\n")
    (folder / "lab.js").write_text("export const lab = {};\n")
    write_json(folder / "models.json", {"version": "0", "models": []})
    return folder


@contextlib.contextmanager
def serving(site: Path, hosts: list[str] | None = None) -> Iterator[SiteServer]:
    httpd = site_server(site, "127.0.0.1", 0, hosts or accepted_hosts("127.0.0.1"))
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)


def test_the_site_files_are_served_with_their_types(site):
    with serving(site) as httpd:
        page = get(httpd.server_port)
        assert page.status == 200 and page.body == (site / "index.html").read_bytes()
        script = get(httpd.server_port, "/lab.js")
        assert script.getheader("Content-Type") == "text/javascript"
        assert script.getheader("Cache-Control") == "no-cache"
        assert get(httpd.server_port, "/models.json").getheader("Content-Type") == (
            "application/json"
        )
        assert get(httpd.server_port, "/missing.js").status == 404


@pytest.mark.parametrize("host", FOREIGN)
def test_requests_for_another_host_name_are_refused(site, host):
    # A DNS-rebinding page's requests name the page's host, though they reach this machine.
    with serving(site) as httpd:
        for path in ("/", "/models.json", "/missing"):
            r = get(httpd.server_port, path, host)
            assert r.status == 400 and b"Invalid host header" in r.body


@pytest.mark.parametrize("host", LOCAL)
def test_requests_for_this_machine_are_answered(site, host):
    with serving(site) as httpd:
        assert get(httpd.server_port, "/", host).status == 200


def test_the_host_names_answered(site):
    loopback = ["localhost", "127.0.0.1", "[::1]"]
    assert accepted_hosts("127.0.0.1") == loopback
    assert accepted_hosts("::1") == loopback
    assert accepted_hosts("0.0.0.0") == accepted_hosts("::") == loopback
    assert accepted_hosts("0.0.0.0", ["Demo.LAN", "fe80::1"]) == [
        *loopback,
        "demo.lan",
        "[fe80::1]",
    ]
    assert requested_host("[FE80::1]:8000") == "[fe80::1]"
    assert requested_host("Demo.LAN:80") == "demo.lan"
    assert requested_host(None) is requested_host("a:b:c") is None
    with serving(site, accepted_hosts("192.168.1.5", ["demo.lan"])) as httpd:
        for host in ("192.168.1.5:8000", "demo.lan", "localhost"):
            assert get(httpd.server_port, "/", host).status == 200
        assert get(httpd.server_port, "/", "evil.example").status == 400


def test_a_request_that_stalls_is_closed_within_the_timeout(site, monkeypatch):
    monkeypatch.setattr(server, "REQUEST_TIMEOUT", 1)
    head = b"GET / HTTP/1.1\r\nHost: localhost\r\n"
    with serving(site) as httpd:
        port = httpd.server_port
        stalls = {
            "nothing sent": b"",
            "half a head": head[:10],
            "a head without its end": head,
        }
        sockets = {n: socket.create_connection(("127.0.0.1", port), timeout=5) for n in stalls}
        start = time.monotonic()
        for name, data in stalls.items():
            sockets[name].sendall(data)
        # A head sent a byte at a time, each within the socket's timeout, is cut as well.
        with socket.create_connection(("127.0.0.1", port), timeout=5) as drip:
            with contextlib.suppress(OSError):
                for byte in head:
                    drip.sendall(bytes([byte]))
                    time.sleep(0.05)
            # A reset: its last bytes came after the server closed.
            with contextlib.suppress(ConnectionResetError):
                assert drip.recv(4096) == b""
        assert get(port).status == 200  # meanwhile the server answers others
        for name, sock in sockets.items():
            while sock.recv(4096):  # the end, or a 400 for half a request, then the end
                pass
            assert time.monotonic() - start < 4, name
            sock.close()


def test_connections_over_the_limit_answer_503(site, monkeypatch):
    monkeypatch.setattr(server, "MAX_CONNECTIONS", 4)
    with serving(site) as httpd:
        idle = [socket.create_connection(("127.0.0.1", httpd.server_port)) for _ in range(4)]
        deadline = time.monotonic() + 10
        while get(httpd.server_port).status != 503:  # once the server took the 4 idle ones
            assert time.monotonic() < deadline
            time.sleep(0.01)
        for s in idle:
            s.close()
        while get(httpd.server_port).status != 200:
            assert time.monotonic() < deadline
            time.sleep(0.01)


def test_many_clients_at_once_get_the_same_answers(site):
    # What the API's load test checked, for files: no 5xx, nothing dropped, the same bytes.
    cases = [("/", None, 200), ("/models.json", None, 200), ("/lab.js", None, 200)]
    cases += [("/missing.js", None, 404), ("/", "evil.example", 400)]
    with serving(site) as httpd, ThreadPoolExecutor(8) as pool:
        expected = {
            (path, host): get(httpd.server_port, path, host).body for path, host, _ in cases
        }

        def fetch(i: int) -> bool:
            path, host, status = cases[i % len(cases)]
            r = get(httpd.server_port, path, host)
            return r.status == status and r.body == expected[path, host]

        assert all(pool.map(fetch, range(400)))


# ---- the runs picked by default


def _age(trial: Path, seconds_ago: float) -> None:
    """Make a trial's checkpoint look written `seconds_ago`."""
    when = 1_700_000_000 - seconds_ago
    os.utime(trial / "checkpoint.pt", (when, when))


def make_trial(run: Path, command: str, name: str, seconds_ago: float = 0) -> Path:
    """A run of `command` with one trial checkpoint (empty: picking never reads it)."""
    make_run(run, command)
    trial = run / "trials" / name
    trial.mkdir(parents=True, exist_ok=True)
    (trial / "checkpoint.pt").write_bytes(b"")
    _age(trial, seconds_ago)
    return trial


def test_newest_runs_under_runs(tmp_path):
    assert newest_runs(tmp_path) == [] and newest_runs(tmp_path / "none") == []
    old_lm = make_lm(tmp_path / "1-lm")
    study_forward = make_lm(tmp_path / "2-study", "forward", "reverse", command="lm study")
    study_forward = study_forward.parent / "layers1-forward"
    for trial, age in (
        (old_lm, 300),
        (study_forward, 200),
        (study_forward.parent / "layers1-reverse", 200),
    ):
        _age(trial, age)
    fc = make_trial(tmp_path / "1-fc", "mnist fc", "logreg", 100).parent.parent
    solve = make_trial(tmp_path / "1-solve", "xor solve", "k2", 300).parent.parent
    assert newest_lm_model(tmp_path) == study_forward
    assert newest_mnist_model(tmp_path) == fc  # no CNN yet
    assert newest_runs(tmp_path) == [study_forward.parent.parent, fc, solve]
    # A CNN comes first even when older; a reproduction's parts are one level further down.
    cnn = make_trial(tmp_path / "4-reproduce" / "mnist-cnn", "mnist cnn", "single_conv_b50", 200)
    xor = make_trial(tmp_path / "4-reproduce" / "xor-train", "xor train", "k1-bypass", 100)
    nested_lm = make_lm(tmp_path / "4-reproduce" / "lm-study", command="lm study")
    _age(nested_lm, 100)
    assert newest_runs(tmp_path) == [nested_lm.parent.parent, cnn.parent.parent, xor.parent.parent]
    # A newer reverse model does not displace the newest forward one.
    _age(make_lm(tmp_path / "5-study", "reverse", command="lm study"), 0)
    assert newest_lm_model(tmp_path) == nested_lm


def test_the_direction_is_read_from_the_trial_record_without_loading_the_model(
    tmp_path, monkeypatch
):
    forward = make_lm(tmp_path / "study", "forward", "reverse", command="lm study")
    forward = forward.parent / "layers1-forward"
    _age(forward, 100)
    for trial in forward.parent.iterdir():
        direction = trial.name.split("-")[1]
        write_json(trial / "result.json", {"trial": {"layers": 1, "direction": direction}})

    def no_loading(path):
        raise AssertionError(f"loaded {path}")

    monkeypatch.setattr("dlclassics.serve.models.load_checkpoint", no_loading)
    assert newest_lm_model(tmp_path) == forward


def test_newest_runs_are_only_those_of_their_commands(tmp_path):
    lm = make_lm(tmp_path / "1-lm")
    solve = make_trial(tmp_path / "1-solve", "xor solve", "k2", 100)
    _age(lm, 100)
    # Newer, but no model to show: an unfinished trial, another command's trial, a batched
    # sweep's, and a folder that is no run at all.
    unfinished = make_run(tmp_path / "2-lm", "lm train") / "trials" / "layers1-forward"
    unfinished.mkdir(parents=True)
    (unfinished / "result.json").write_text("{}")
    make_trial(tmp_path / "2-tune", "tune", "layers1-forward")
    sweep = make_trial(tmp_path / "2-sweep", "xor sweep", "study")
    make_lm(tmp_path / "2-broken").parent.parent.joinpath("config.json").write_text("{")
    assert newest_lm_model(tmp_path) == lm
    assert newest_run(tmp_path, ("xor solve", "xor train")) == solve.parent.parent
    assert newest_mnist_model(tmp_path) is None
    # The sweep is the XOR tab's study, picked beside the XOR networks, not instead of them.
    assert newest_runs(tmp_path) == [lm.parent.parent, solve.parent.parent, sweep.parent.parent]


# ---- the command, in this process up to the server's loop


@pytest.fixture
def no_server(monkeypatch, tmp_path) -> list[dict]:
    """`serve` up to serving, which records the server's address and the site's models.json
    instead; run in an empty folder (no runs/), its temporary folders under tmp_path/tmp."""
    started: list[dict] = []

    def record(self: SiteServer, poll_interval: float = 0.5) -> None:
        site = Path(self.RequestHandlerClass.keywords["directory"])
        started.append({"address": self.server_address, "models": read_json(site / "models.json")})

    monkeypatch.setattr(SiteServer, "serve_forever", record)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    yield started
    assert sites(tmp_path / "tmp") == []  # every temporary site removed


def test_serve_help(cli):
    r = cli("serve", "--help")
    assert r.returncode == 0
    for option in ("RUN", "--host", "--port", "--allow-host"):
        assert option in r.stdout


def test_with_no_runs_the_page_is_served_and_says_how_to_get_models(no_server):
    r = invoke_cli("serve", "--port", "0")
    assert r.returncode == 0 and r.stderr == ""  # the default, 127.0.0.1, is this machine only
    assert NO_MODELS in r.stdout and "dlclassics lm train" in r.stdout
    assert no_server[0]["models"]["models"] == []


def test_the_newest_runs_are_served_and_one_that_cannot_be_is_left_out(no_server):
    runs = Path("runs")
    assert invoke_cli("xor", "solve", "--quiet", "--out", str(runs / "solve")).returncode == 0
    lm = make_lm(runs / "lm")
    # Newer, but damaged: the other models are still shown.
    cnn = make_trial(runs / "cnn", "mnist cnn", "single_conv_b50")
    r = invoke_cli("serve", "--port", "0")
    assert r.returncode == 0, r.stderr
    warnings = [line for line in r.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1 and warnings[0].startswith(f"warning: left out {cnn.parent.parent}")
    names = [m["name"] for m in no_server[0]["models"]["models"]]
    assert names == [lm.name, "k1-bypass", "k2", "k4"]
    assert r.stdout.startswith(f"exported 4 models from {lm.parent.parent}, {runs / 'solve'}\n")
    # A good classifier run is picked instead.
    save_classifier(cnn / "checkpoint.pt", build("single_conv"), "single_conv", {}, DIGITS)
    assert invoke_cli("serve", "--port", "0").returncode == 0
    assert "single_conv_b50" in [m["name"] for m in no_server[1]["models"]["models"]]
    # A damaged study is left out the same way; a good one is served, in the XOR tab.
    sweep = make_trial(runs / "sweep", "xor sweep", "study").parent.parent
    r = invoke_cli("serve", "--port", "0")
    assert f"warning: left out {sweep}" in r.stderr and r.returncode == 0
    shutil.rmtree(sweep)
    args = ["--lrs", "0.5", "--hidden", "1", "--max-epochs", "600", "--max-runs", "2"]
    sweep_args = ["xor", "sweep", *args, "--successes", "1", "--quiet", "--out", str(sweep)]
    assert invoke_cli(*sweep_args).returncode == 0
    r = invoke_cli("serve", "--port", "0")
    assert r.returncode == 0 and "warning" not in r.stderr, r.stderr
    assert [s["kind"] for s in no_server[-1]["models"]["studies"]] == ["xor-sweep"]


def test_serving_on_every_interface_says_so_in_one_line(no_server):
    r = invoke_cli("serve", "--host", "0.0.0.0", "--port", "0", "--allow-host", "demo.lan")
    assert r.returncode == 0, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "reachable from other machines" in lines[0]
    assert "localhost, 127.0.0.1, [::1], demo.lan" in lines[0] and "--allow-host" in lines[0]
    assert no_server[0]["address"][0] == "0.0.0.0"


@pytest.mark.parametrize("name", ["*", "*.example.com", "a b", "host:80", "[::1]", "a" * 254, ""])
def test_a_bad_host_or_allow_host_is_one_line(no_server, name):
    assert_one_line_error(invoke_cli("serve", "--allow-host", name))
    assert_one_line_error(invoke_cli("serve", "--host", name))
    assert not no_server


def test_at_most_16_allow_hosts(no_server):
    def serve(count: int):
        args = (a for i in range(count) for a in ("--allow-host", f"h{i}"))
        return invoke_cli("serve", "--port", "0", *args)

    assert_one_line_error(serve(17))
    assert serve(16).returncode == 0 and len(no_server) == 1


@pytest.mark.parametrize("port", ["-1", "65536", "http"])
def test_a_bad_port_is_one_line(no_server, port):
    assert_one_line_error(invoke_cli("serve", "--port", port))
    assert not no_server


def test_a_port_in_use_or_a_host_not_here_is_one_line(no_server):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        r = invoke_cli("serve", "--port", str(taken.getsockname()[1]))
    assert_one_line_error(r)
    assert "cannot listen on 127.0.0.1:" in r.stderr
    assert_one_line_error(invoke_cli("serve", "--host", "192.0.2.1", "--port", "0"))
    assert not no_server


def test_a_run_that_is_not_a_run_directory_is_one_line(no_server, tmp_path):
    (tmp_path / "folder").mkdir()
    empty = make_run(tmp_path / "empty", "xor solve")
    for path in (tmp_path / "missing", tmp_path / "folder", empty):
        r = invoke_cli("serve", str(path), "--port", "0")
        assert_one_line_error(r)
        assert str(path) in r.stderr
    assert not no_server


# ---- the real command in a process of its own


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> list[Path]:
    """An `xor solve` run and a tiny `lm train` run, made by the commands."""
    root = tmp_path_factory.mktemp("runs")
    solve = root / "solve"
    assert invoke_cli("xor", "solve", "--quiet", "--out", str(solve)).returncode == 0
    return [solve, train_tiny_lm(root, epochs=1)[0]]


class Serving:
    """`dlclassics serve ARGS --port 0` in a process of its own, in `cwd`, its temporary
    folders under `tmp`: started, its port read from what it prints."""

    def __init__(self, cwd: Path, tmp: Path, *args: str) -> None:
        tmp.mkdir()
        self.tmp = tmp
        env = os.environ | {"TMPDIR": str(tmp), "OMP_NUM_THREADS": "1"}
        self.proc = subprocess.Popen(
            [*MAIN, "serve", *args, "--port", "0"],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            # Ctrl-C's default, where the tests run with it ignored (a background job's).
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        watchdog = threading.Timer(120, self.proc.kill)  # a hung start fails, not hangs, the test
        watchdog.start()
        self.printed = []
        while not self.printed or not self.printed[-1].startswith("serving on "):
            line = self.proc.stdout.readline()
            assert line, f"serve ended: {self.proc.wait()} {self.proc.stderr.read()}"
            self.printed.append(line)
        watchdog.cancel()
        self.port = int(self.printed[-1].split()[2].rsplit(":", 1)[1])

    def stop(self, signum: int) -> subprocess.CompletedProcess:
        self.proc.send_signal(signum)
        stdout, stderr = self.proc.communicate(timeout=30)
        return subprocess.CompletedProcess(self.proc.args, self.proc.returncode, stdout, stderr)


@pytest.mark.slow
def test_serve_exports_the_runs_given_and_removes_them_when_stopped(tmp_path, runs):
    served = Serving(tmp_path, tmp_path / "tmp", *map(str, runs))
    try:
        assert served.printed[0] == f"exported 4 models from {runs[0]}, {runs[1]}\n"
        (folder,) = sites(served.tmp)  # the exported site, while it serves
        assert folder.name.startswith("dlclassics-serve-")
        page = get(served.port)
        assert page.status == 200 and page.body == (STATIC / "index.html").read_bytes()
        index = json.loads(get(served.port, "/models.json").body)
        assert [m["name"] for m in index["models"]] == ["k1-bypass", "k2", "k4", "layers1-forward"]
        weights = get(served.port, "/models/k2/weights.safetensors")
        assert (
            weights.status == 200
            and weights.body
            == (folder / "site" / "models" / "k2" / "weights.safetensors").read_bytes()
        )
        assert get(served.port, "/", "evil.example").status == 400
    finally:
        result = served.stop(signal.SIGINT)  # Ctrl-C
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert sites(served.tmp) == []


@pytest.mark.slow
def test_serve_with_nothing_under_runs_serves_the_page_until_terminated(tmp_path):
    (tmp_path / "runs").mkdir()
    served = Serving(tmp_path, tmp_path / "tmp")
    try:
        assert served.printed[0] == NO_MODELS + "\n"
        assert get(served.port).body == (STATIC / "index.html").read_bytes()
        assert json.loads(get(served.port, "/models.json").body)["models"] == []
    finally:
        result = served.stop(signal.SIGTERM)  # as `kill` stops it
    assert result.returncode == 0, result.stderr
    assert sites(served.tmp) == []
