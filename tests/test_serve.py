"""The web demo's API, on a tiny untrained language model and CNN saved as training saves them."""

import asyncio
import math
import os
import socket
import threading
import time
from pathlib import Path

import pytest
import torch
from conftest import (
    BLANK_PIXELS,
    DIGITS,
    assert_one_line_error,
    digit_pixels,
    invoke_cli,
    local_client,
    make_cnn,
    make_lm,
    make_run,
)

pytest.importorskip("fastapi", reason="the demo extra is not installed: pip install -e '.[demo]'")
pytest.importorskip("httpx", reason="the demo extra is not installed: pip install -e '.[demo]'")
pytest.importorskip("uvicorn", reason="the demo extra is not installed: pip install -e '.[demo]'")

import httpx
import uvicorn
from fastapi.testclient import TestClient

from dlclassics.core.rundir import write_json
from dlclassics.mnist.data import SOURCES
from dlclassics.serve import server
from dlclassics.serve.app import MAX_BODY, create_app
from dlclassics.serve.models import NO_LM, NO_MNIST, newest_lm_model, newest_mnist_model
from dlclassics.serve.server import MAX_CONNECTIONS, REQUEST_TIMEOUT, accepted_hosts

XOR = {"k": 2, "bypass": False}
JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def client(tmp_path_factory) -> TestClient:
    root = tmp_path_factory.mktemp("models")
    return local_client(create_app(make_lm(root / "lm"), make_cnn(root / "cnn")))


@pytest.fixture(scope="module")
def empty(tmp_path_factory) -> TestClient:
    return local_client(create_app(None, None))


def test_page_and_static_files_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and "mnist-canvas" in page.text
    for name in ("app.js", "style.css"):
        assert client.get(f"/static/{name}").status_code == 200


def test_next_words_are_k_sorted_probabilities(client):
    r = client.post("/api/lm/next", json={"text": "The cat", "k": 4})
    assert r.status_code == 200
    probs = [w["probability"] for w in r.json()["words"]]
    assert len(probs) == 4
    assert probs == sorted(probs, reverse=True)
    assert all(p > 0 for p in probs) and sum(probs) <= 1 + 1e-6
    assert r.json()["unknown"] == []


def test_next_words_report_unknown_words(client):
    r = client.post("/api/lm/next", json={"text": "the zebra"})
    assert r.json()["unknown"] == ["zebra"]


def test_a_tiny_temperature_is_the_greedy_limit(client):
    greedy = client.post("/api/lm/generate", json={"text": "the", "length": 8, "temperature": 0})
    for t in (1e-45, 1e-300):
        r = client.post("/api/lm/generate", json={"text": "the", "length": 8, "temperature": t})
        assert r.status_code == 200, r.text
        assert r.json() == greedy.json()


def test_generation_at_temperature_zero_is_deterministic(client):
    request = {"text": "the", "length": 8, "temperature": 0}
    first, second = (client.post("/api/lm/generate", json=request).json() for _ in range(2))
    assert first == second
    words = first["sentence"].split()
    assert words[0] == "the" and len(words) == 8


def test_generation_gives_the_length_asked_unless_told_to_stop_at_the_end(client):
    for seed in range(5):
        request = {"text": "the", "temperature": 3, "seed": seed}
        exact = client.post("/api/lm/generate", json=request).json()["sentence"].split()
        assert len(exact) == 7 and not {"<UNK>", "<EOS>"} & set(exact)
        natural = client.post("/api/lm/generate", json=request | {"stop_at_eos": True}).json()
        assert 1 <= len(natural["sentence"].split()) <= 7


def test_prob_is_the_product_of_next_word_probabilities(client):
    def next_probability(text: str, word: str) -> float:
        found = client.post("/api/lm/next", json={"text": text, "k": 50}).json()["words"]
        return {w["word"]: w["probability"] for w in found}[word]

    product = next_probability("the", "cat") * next_probability("the cat", "sat")
    r = client.post("/api/lm/prob", json={"text": "the cat sat"}).json()
    # <START> -> "the" too: `next` needs at least one word, so take that factor from a shorter prob.
    first = client.post("/api/lm/prob", json={"text": "the"}).json()["probability"]
    assert r["probability"] == pytest.approx(first * product, rel=1e-5)
    end = next_probability("the cat sat", "<EOS>")
    assert r["probability_with_eos"] == pytest.approx(r["probability"] * end, rel=1e-5)


def test_generation_with_a_seed_repeats(client):
    request = {"text": "a dog", "length": 10, "temperature": 1.5, "seed": 3}
    first, second = (client.post("/api/lm/generate", json=request).json() for _ in range(2))
    assert first == second


def test_sentence_probability(client):
    r = client.post("/api/lm/prob", json={"text": "the cat sat"}).json()
    assert r["sentence"] == "the cat sat"
    assert r["log_probability"] < 0
    assert math.isclose(r["probability"], math.exp(r["log_probability"]), rel_tol=1e-9)
    assert r["log_probability_with_eos"] < r["log_probability"]


@pytest.mark.parametrize(
    ("url", "body", "message"),
    [
        ("/api/lm/next", {"text": "   "}, "type at least one word"),
        ("/api/lm/next", {"text": "?!"}, "type at least one word"),
        ("/api/lm/next", {"text": "the", "k": 0}, "k:"),
        ("/api/lm/next", {"text": "the " * 600}, "text:"),
        ("/api/lm/generate", {"text": "the", "temperature": -1}, "temperature:"),
        ("/api/lm/generate", {"text": "the", "temperature": 1e9}, "temperature:"),
        ("/api/lm/generate", {"text": "the", "length": 100000}, "length:"),
        ("/api/lm/generate", {"text": "the", "seed": 10**30}, "seed:"),
        ("/api/lm/generate", {"text": "the cat sat", "length": 2}, "more than length"),
        ("/api/lm/prob", {}, "text:"),
        ("/api/mnist/predict", {"pixels": BLANK_PIXELS}, "the canvas is blank"),
        ("/api/mnist/predict", {"pixels": [0.5] * 10}, "pixels:"),
        ("/api/mnist/predict", {"pixels": [2.0] * 784}, "pixels.0:"),
    ],
)
def test_bad_requests_get_one_line_and_the_server_keeps_serving(client, url, body, message):
    r = client.post(url, json=body)
    assert 400 <= r.status_code < 500
    detail = r.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail
    assert message in detail
    assert client.post("/api/lm/next", json={"text": "the"}).status_code == 200


def test_digit_prediction_is_ten_probabilities(client):
    r = client.post("/api/mnist/predict", json={"pixels": digit_pixels()})
    assert r.status_code == 200
    body = r.json()
    assert body["classes"] == DIGITS
    assert len(body["probabilities"]) == 10
    assert math.isclose(sum(body["probabilities"]), 1, rel_tol=1e-5)


def test_xor_surface_of_the_hand_set_network_is_xor(client):
    r = client.get("/api/xor/surface", params={"k": 2, "bypass": False, "temperature": 0.001})
    grid = r.json()["grid"]
    assert len(grid) == len(r.json()["axis"]) == 41
    corners = {(0, 0): grid[0][0], (1, 1): grid[-1][-1], (0, 1): grid[-1][0], (1, 0): grid[0][-1]}
    assert corners[0, 0] < 1e-3 and corners[1, 1] < 1e-3
    assert corners[0, 1] > 1 - 1e-3 and corners[1, 0] > 1 - 1e-3


def test_xor_surface_softens_with_temperature(client):
    params = {"k": 1, "bypass": True, "temperature": 5, "size": 3}
    grid = client.get("/api/xor/surface", params=params).json()["grid"]
    assert 0.2 < grid[0][0] < 0.8


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"k": 3, "bypass": False}, "no hand-set network with k=3"),
        ({"k": 2, "bypass": False, "temperature": 0}, "temperature:"),
        ({"k": 2, "bypass": False, "size": 10**6}, "size:"),
        ({"k": "two", "bypass": False}, "k:"),
    ],
)
def test_bad_xor_requests(client, params, message):
    r = client.get("/api/xor/surface", params=params)
    assert 400 <= r.status_code < 500 and message in r.json()["detail"]


def test_status_names_the_models(client):
    status = client.get("/api/status").json()
    assert status["lm"]["ready"] and status["lm"]["direction"] == "forward"
    assert status["lm"]["source"].endswith("layers1-forward")
    assert status["mnist"]["ready"] and status["mnist"]["source"].endswith("cnn")
    assert {"k": 2, "bypass": False} in status["xor"]


def test_predictions_name_the_classifiers_own_classes(tmp_path):
    fashion = list(SOURCES["fashion-mnist"].classes)
    app = create_app(None, make_cnn(tmp_path / "fashion", fashion))
    body = local_client(app).post("/api/mnist/predict", json={"pixels": digit_pixels()}).json()
    assert body["classes"] == fashion and len(body["probabilities"]) == 10


def test_models_load_from_a_checkpoint_file_too(tmp_path):
    lm = make_lm(tmp_path / "lm") / "checkpoint.pt"
    cnn = make_cnn(tmp_path / "cnn") / "checkpoint.pt"
    status = local_client(create_app(lm, cnn)).get("/api/status").json()
    assert status["lm"]["ready"] and status["mnist"]["ready"]


def test_missing_models_answer_with_a_message(empty):
    status = empty.get("/api/status").json()
    assert not status["lm"]["ready"] and status["lm"]["message"] == NO_LM
    assert not status["mnist"]["ready"] and status["mnist"]["message"] == NO_MNIST
    r = empty.post("/api/lm/next", json={"text": "the"})
    assert r.status_code == 503 and r.json()["detail"] == NO_LM
    r = empty.post("/api/mnist/predict", json={"pixels": digit_pixels()})
    assert r.status_code == 503 and r.json()["detail"] == NO_MNIST
    assert empty.get("/api/xor/surface", params={"k": 4, "bypass": False}).status_code == 200


def test_unloadable_models_say_why(tmp_path):
    (tmp_path / "lm").mkdir()
    make_run(tmp_path / "cnn", "mnist cnn")
    (tmp_path / "cnn" / "checkpoint.pt").write_bytes(b"not a model")
    status = local_client(create_app(tmp_path / "lm", tmp_path / "cnn")).get("/api/status").json()
    assert not status["lm"]["ready"] and not status["mnist"]["ready"]
    assert (
        status["lm"]["message"].startswith(NO_LM)
        and str(tmp_path / "lm") in status["lm"]["message"]
    )
    assert status["mnist"]["message"].startswith(NO_MNIST)
    assert str(tmp_path / "cnn") in status["mnist"]["message"]


def test_a_study_run_is_not_one_model_and_says_which_there_are(tmp_path):
    study = make_lm(tmp_path / "study", "forward", "reverse", command="lm study").parent.parent
    message = local_client(create_app(study, None)).get("/api/status").json()["lm"]["message"]
    assert message.startswith(NO_LM)
    assert "layers1-forward" in message and "layers1-reverse" in message


def _age(path: Path, seconds_ago: float) -> None:
    """Make a model's checkpoint look written `seconds_ago` (negative: in the future)."""
    when = 1_700_000_000 - seconds_ago
    os.utime(path / "checkpoint.pt", (when, when))


def test_newest_models_under_runs(tmp_path):
    assert newest_lm_model(tmp_path) is None and newest_mnist_model(tmp_path) is None
    old_lm, old_cnn = make_lm(tmp_path / "1-lm"), make_cnn(tmp_path / "1-cnn")
    study_forward = make_lm(tmp_path / "2-study", "forward", "reverse", command="lm study")
    study_forward = study_forward.parent / "layers1-forward"
    new_cnn = make_cnn(tmp_path / "2-cnn")
    for path, age in ((old_lm, 300), (old_cnn, 300), (study_forward, 200), (new_cnn, 200)):
        _age(path, age)
    _age(study_forward.parent / "layers1-reverse", 200)
    assert newest_lm_model(tmp_path) == study_forward
    assert newest_mnist_model(tmp_path) == new_cnn
    # A reproduce run nests each part's run directory one level further down.
    nested_lm = make_lm(tmp_path / "4-reproduce" / "lm-study", command="lm study")
    nested_cnn = make_cnn(tmp_path / "4-reproduce" / "mnist-cnn")
    _age(nested_lm, 100)
    _age(nested_cnn, 100)
    assert newest_lm_model(tmp_path) == nested_lm
    assert newest_mnist_model(tmp_path) == nested_cnn
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


def test_newest_models_are_only_those_of_their_commands(tmp_path):
    lm = make_lm(tmp_path / "1-lm")
    cnn = make_cnn(tmp_path / "1-cnn")
    _age(lm, 100)
    _age(cnn, 100)
    # Newer, but not what the demo can serve: an unfinished trial, another command's trial,
    # an `mnist cnn` run without its chosen model yet, and a folder that is no run at all.
    unfinished = make_run(tmp_path / "2-lm", "lm train") / "trials" / "layers1-forward"
    unfinished.mkdir(parents=True)
    (unfinished / "result.json").write_text("{}")
    make_lm(tmp_path / "2-xor", command="xor train")
    make_cnn(tmp_path / "2-fc").joinpath("config.json").write_text('{"command": "mnist fc"}')
    (make_run(tmp_path / "2-cnn", "mnist cnn") / "trials" / "single_conv_b50").mkdir(parents=True)
    make_lm(tmp_path / "2-broken").parent.parent.joinpath("config.json").write_text("{")
    assert newest_lm_model(tmp_path) == lm
    assert newest_mnist_model(tmp_path) == cnn


def test_serve_help(cli):
    r = cli("serve", "--help")
    assert r.returncode == 0
    for option in ("--lm-model", "--mnist-model", "--host", "--port", "--allow-host"):
        assert option in r.stdout


def test_serve_rejects_a_model_path_that_does_not_exist(cli, tmp_path):
    r = cli("serve", "--lm-model", str(tmp_path / "nonexistent"))
    assert_one_line_error(r)
    assert "nonexistent" in r.stderr


def test_a_body_over_the_limit_is_refused_before_it_is_read(client):
    huge = client.post("/api/lm/prob", json={"text": "the " * 100_000})
    assert (
        huge.status_code == 413 and huge.json()["detail"] == f"request body over {MAX_BODY} bytes"
    )
    chunks = (b"x" * 1000 for _ in range(100))  # no Content-Length: counted as it streams
    chunked = client.post(
        "/api/lm/prob", content=chunks, headers={"content-type": "application/json"}
    )
    assert chunked.status_code == 413
    assert client.post("/api/lm/prob", json={"text": "the cat"}).status_code == 200
    too_long = client.post("/api/lm/generate", json={"text": "the", "length": 10**9})
    assert too_long.status_code == 422


# ---- what an outside attack tried (issue 18)


@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:8000", "0.0.0.0:8000", "localhost.evil.example", "[::2]"]
)
def test_requests_for_another_host_name_are_refused(client, host):
    # A DNS-rebinding page's requests name the page's host, though they reach this machine.
    for r in (
        client.get("/", headers={"host": host}),
        client.get("/api/status", headers={"host": host}),
        client.post("/api/lm/next", json={"text": "the"}, headers={"host": host}),
    ):
        assert r.status_code == 400 and r.text == "Invalid host header"


@pytest.mark.parametrize("host", ["localhost:8000", "127.0.0.1", "127.0.0.1:8000", "[::1]:8000"])
def test_requests_for_this_machine_are_answered(client, host):
    assert client.get("/api/status", headers={"host": host}).status_code == 200


def test_the_host_names_answered():
    loopback = ["localhost", "127.0.0.1", "[::1]"]
    assert accepted_hosts("127.0.0.1") == loopback
    assert accepted_hosts("::1") == loopback
    assert accepted_hosts("0.0.0.0") == accepted_hosts("::") == loopback
    assert accepted_hosts("0.0.0.0", ["Demo.LAN", "fe80::1"]) == [
        *loopback,
        "demo.lan",
        "[fe80::1]",
    ]
    app = local_client(create_app(None, None, accepted_hosts("192.168.1.5", ["demo.lan"])))
    for host in ("192.168.1.5:8000", "demo.lan", "localhost"):
        assert app.get("/api/status", headers={"host": host}).status_code == 200
    assert app.get("/api/status", headers={"host": "evil.example"}).status_code == 400


@pytest.fixture
def no_server(monkeypatch, tmp_path):
    """`serve` up to starting uvicorn, whose config it records instead; no runs/ to search."""
    started = []
    monkeypatch.setattr(uvicorn.Server, "run", lambda self: started.append(self.config))
    monkeypatch.chdir(tmp_path)
    return started


def test_serving_on_every_interface_says_so_in_one_line(no_server):
    r = invoke_cli("serve", "--host", "0.0.0.0", "--allow-host", "demo.lan")
    assert r.returncode == 0, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "reachable from other machines" in lines[0]
    assert "localhost, 127.0.0.1, [::1], demo.lan" in lines[0] and "--allow-host" in lines[0]
    assert no_server[0].host == "0.0.0.0"
    assert invoke_cli("serve").stderr == ""  # the default, 127.0.0.1, is this machine only


@pytest.mark.parametrize("name", ["*", "*.example.com", "a b", "host:80", "[::1]", "a" * 254, ""])
def test_a_bad_host_or_allow_host_is_one_line(no_server, name):
    assert_one_line_error(invoke_cli("serve", "--allow-host", name))
    assert_one_line_error(invoke_cli("serve", "--host", name))
    assert not no_server


def test_at_most_16_allow_hosts(no_server):
    def serve(count: int):
        return invoke_cli("serve", *(a for i in range(count) for a in ("--allow-host", f"h{i}")))

    assert_one_line_error(serve(17))
    assert serve(16).returncode == 0 and len(no_server) == 1


@pytest.fixture
def uvicorn_server(tmp_path):
    """The demo served as `serve` serves it (no models), on a free port of 127.0.0.1."""
    running = uvicorn.Server(server.config(create_app(None, None), "127.0.0.1", 0))
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not running.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert running.started
    yield running
    running.should_exit = True
    thread.join(10)


def _port(running) -> int:
    return running.servers[0].sockets[0].getsockname()[1]


@pytest.mark.slow
def test_a_request_that_stalls_is_closed_within_the_timeout(uvicorn_server):
    head = b"POST /api/lm/prob HTTP/1.1\r\nHost: localhost\r\nContent-Length: 40\r\n"
    whole = b"GET /api/status HTTP/1.1\r\nHost: localhost\r\n\r\n"
    stalls = {
        "nothing sent": b"",
        "half a head": head[:30],
        "a head without its end": head,
        "half a body": head + b"\r\n" + b'{"text": ',
        "a request, then half the next": whole + head[:30],
    }
    port = _port(uvicorn_server)
    sockets = {name: socket.create_connection(("127.0.0.1", port), timeout=5) for name in stalls}
    start = time.monotonic()
    for name, data in stalls.items():
        sockets[name].sendall(data)
    # Meanwhile the server answers others, a slow but whole request too.
    assert httpx.get(f"http://127.0.0.1:{port}/api/status", timeout=5).status_code == 200
    with socket.create_connection(("127.0.0.1", port), timeout=5) as slow:
        for i in range(0, len(whole), 10):
            slow.sendall(whole[i : i + 10])
            time.sleep(0.1)
        assert slow.recv(4096).startswith(b"HTTP/1.1 200")
    for name, sock in sockets.items():
        sock.settimeout(REQUEST_TIMEOUT + 5)
        while sock.recv(4096):  # a response to the whole request, then the end
            pass
        assert time.monotonic() - start < REQUEST_TIMEOUT + 2, name
        sock.close()


def test_connections_over_the_limit_answer_503(uvicorn_server):
    url = f"http://127.0.0.1:{_port(uvicorn_server)}/api/status"
    idle = [
        socket.create_connection(("127.0.0.1", _port(uvicorn_server)))
        for _ in range(MAX_CONNECTIONS)
    ]
    deadline = time.monotonic() + 10
    while len(uvicorn_server.server_state.connections) < MAX_CONNECTIONS:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert httpx.get(url, timeout=5).status_code == 503
    for s in idle:
        s.close()
    while len(uvicorn_server.server_state.connections) >= MAX_CONNECTIONS:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert httpx.get(url, timeout=5).status_code == 200


def _set_weight(name: str, value: torch.Tensor | float):
    """An edit of a checkpoint: weight `name` replaced by `value`, or filled with it."""

    def edit(checkpoint: dict) -> None:
        weights = checkpoint["model"]
        weights[name] = value if torch.is_tensor(value) else weights[name].clone().fill_(value)

    return edit


# Each a checkpoint edit that the demo must refuse: the tab disabled, with the reason.
LM_FAULTS = {
    "an integer vocabulary": lambda c: c.update(vocab=5),
    "a vocabulary of numbers": lambda c: c.update(vocab=list(range(len(c["vocab"])))),
    "no vocabulary": lambda c: c.pop("vocab"),
    "NaN weights": _set_weight("lstm.weight_hh_l0", math.nan),
    "infinite weights": _set_weight("out.bias", math.inf),
    "weights that overflow": _set_weight("out.weight", 3e38),
    "a weight of another shape": _set_weight("out.weight", torch.zeros(3, 3)),
    "no model_args": lambda c: c.pop("model_args"),
    "model_args that are a list": lambda c: c.update(model_args=["vocab_size"]),
    "a size that is a string": lambda c: c["model_args"].update(hidden_size="8"),
}
MNIST_FAULTS = {
    "no classes": lambda c: c.pop("classes"),
    "an integer for classes": lambda c: c.update(classes=7),
    "three classes": lambda c: c.update(classes=["a", "b", "c"]),
    "numbers for classes": lambda c: c.update(classes=list(range(10))),
    "NaN weights": _set_weight("convs.0.weight", math.nan),
    "weights that overflow": _set_weight("head.4.weight", 1e30),
    "a weight of another shape": _set_weight("convs.0.weight", torch.zeros(3, 3)),
    "no model_args": lambda c: c.pop("model_args"),
    "model_args of None": lambda c: c.update(model_args=None),
    "an unknown architecture": lambda c: c.update(model_args={"arch": "resnet"}),
}
CALLS = {
    "lm": [(f"/api/lm/{name}", {"text": "the cat"}) for name in ("next", "generate", "prob")],
    "mnist": [("/api/mnist/predict", {"pixels": digit_pixels()})],
}


@pytest.fixture(scope="module")
def good_models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("good")
    return {
        "lm": make_lm(root / "lm") / "checkpoint.pt",
        "mnist": make_cnn(root / "cnn") / "checkpoint.pt",
    }


@pytest.mark.parametrize(
    ("tab", "fault"),
    [("lm", f) for f in [*LM_FAULTS, "a truncated file", "the other kind"]]
    + [("mnist", f) for f in [*MNIST_FAULTS, "a truncated file", "the other kind"]],
)
def test_a_bad_model_disables_its_tab_with_the_reason(tmp_path, good_models, tab, fault):
    other = "mnist" if tab == "lm" else "lm"
    bad = tmp_path / "checkpoint.pt"
    if fault == "a truncated file":
        good = good_models[tab].read_bytes()
        bad.write_bytes(good[: len(good) // 2])
    elif fault == "the other kind":
        bad = good_models[other]
    else:
        checkpoint = torch.load(good_models[tab], weights_only=True)
        (LM_FAULTS if tab == "lm" else MNIST_FAULTS)[fault](checkpoint)
        torch.save(checkpoint, bad)
    app = local_client(create_app(**{f"{tab}_path": bad, f"{other}_path": good_models[other]}))
    status = app.get("/api/status").json()
    message = status[tab]["message"]
    assert not status[tab]["ready"] and status[other]["ready"]
    assert message.startswith(NO_LM if tab == "lm" else NO_MNIST) and str(bad) in message
    assert "\n" not in message
    for url, body in CALLS[tab]:
        r = app.post(url, json=body)
        assert r.status_code == 503 and r.json()["detail"] == message
    for url, body in CALLS[other]:
        assert app.post(url, json=body).status_code == 200
    assert app.get("/api/xor/surface", params={"k": 2, "bypass": False}).status_code == 200


@pytest.mark.slow
def test_480_concurrent_requests_then_120_malformed_get_no_5xx(uvicorn_server):
    # The attack's figures, under the connection limit: every request on a connection of its own.
    good = [("GET", "/api/status", {}), ("GET", "/api/xor/surface", {"params": XOR})] * 240
    bad = [
        ("POST", "/api/lm/next", {"content": b"{not json", "headers": JSON}),
        ("POST", "/api/mnist/predict", {"json": {"pixels": "ink"}}),
        ("GET", "/api/xor/surface", {"params": {"k": "x", "size": -1}}),
        ("POST", "/api/lm/prob", {"content": b"x" * (MAX_BODY + 1), "headers": JSON}),
    ] * 30

    async def burst(requests: list) -> list[int]:
        url = f"http://127.0.0.1:{_port(uvicorn_server)}"
        limits = httpx.Limits(max_connections=len(requests))
        async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
            sent = (client.request(method, path, **kw) for method, path, kw in requests)
            return [r.status_code for r in await asyncio.gather(*sent)]

    assert asyncio.run(burst(good)) == [200] * len(good)
    statuses = asyncio.run(burst(bad))
    assert all(400 <= s < 500 for s in statuses), sorted(set(statuses))
