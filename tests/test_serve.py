"""The web demo's API, on a tiny untrained language model and CNN saved as training saves them."""

import math
import os
import time
from pathlib import Path

import pytest
import torch

pytest.importorskip("fastapi", reason="the demo extra is not installed: pip install -e '.[demo]'")
pytest.importorskip("httpx", reason="the demo extra is not installed: pip install -e '.[demo]'")

from fastapi.testclient import TestClient

from dlclassics.lm.corpus import Vocabulary
from dlclassics.lm.model import LanguageModel, ModelConfig
from dlclassics.lm.model import save_model as save_lm
from dlclassics.mnist.models import MODEL_FILE, build
from dlclassics.mnist.models import save_model as save_cnn
from dlclassics.serve.app import create_app
from dlclassics.serve.models import NO_LM, NO_MNIST, newest_lm_dir, newest_mnist_dir

SENTENCES = [s.split() for s in ["the cat sat on the mat", "a dog ran in the park", "the end"]]
BLANK = [0.0] * 784


def make_lm(directory: Path, direction: str = "forward") -> Path:
    torch.manual_seed(0)
    vocab = Vocabulary.build(SENTENCES, 20)
    config = ModelConfig(len(vocab), direction=direction, embedding_size=8, hidden_size=8)
    model = LanguageModel(config)
    save_lm(directory, model, vocab)
    return directory


def make_cnn(run: Path) -> Path:
    torch.manual_seed(0)
    classes = [str(d) for d in range(10)]
    save_cnn(
        build("single_conv"), "single_conv", {"classes": classes}, run / "checkpoints" / MODEL_FILE
    )
    return run


@pytest.fixture(scope="module")
def client(tmp_path_factory) -> TestClient:
    root = tmp_path_factory.mktemp("models")
    return TestClient(create_app(make_lm(root / "lm"), make_cnn(root / "cnn")))


@pytest.fixture(scope="module")
def empty(tmp_path_factory) -> TestClient:
    return TestClient(create_app(None, None))


def digit() -> list[float]:
    pixels = [0.0] * 784
    for row in range(4, 24):
        pixels[row * 28 + 14] = 1.0
    return pixels


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
    assert words[0] == "the" and 1 <= len(words) <= 8


def test_generation_with_a_seed_repeats(client):
    request = {"text": "a dog", "length": 10, "temperature": 1.5, "seed": 3}
    first, second = (client.post("/api/lm/generate", json=request).json() for _ in range(2))
    assert first == second


def test_sentence_probability(client):
    r = client.post("/api/lm/prob", json={"text": "the cat sat"}).json()
    assert r["sentence"] == "the cat sat"
    assert r["log_probability"] < 0
    assert math.isclose(r["probability"], math.exp(r["log_probability"]), rel_tol=1e-9)
    assert r["log_probability_eos"] < r["log_probability"]


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
        ("/api/mnist/predict", {"pixels": BLANK}, "the canvas is blank"),
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
    r = client.post("/api/mnist/predict", json={"pixels": digit()})
    assert r.status_code == 200
    body = r.json()
    assert body["classes"] == [str(d) for d in range(10)]
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
    assert status["mnist"]["ready"] and status["mnist"]["source"].endswith("cnn")
    assert {"k": 2, "bypass": False} in status["xor"]


def test_missing_models_answer_with_a_message(empty):
    status = empty.get("/api/status").json()
    assert not status["lm"]["ready"] and status["lm"]["message"] == NO_LM
    assert not status["mnist"]["ready"] and status["mnist"]["message"] == NO_MNIST
    r = empty.post("/api/lm/next", json={"text": "the"})
    assert r.status_code == 503 and r.json()["detail"] == NO_LM
    r = empty.post("/api/mnist/predict", json={"pixels": digit()})
    assert r.status_code == 503 and r.json()["detail"] == NO_MNIST
    assert empty.get("/api/xor/surface", params={"k": 4, "bypass": False}).status_code == 200


def test_unloadable_models_say_why(tmp_path):
    (tmp_path / "lm").mkdir()
    (tmp_path / "cnn" / "checkpoints").mkdir(parents=True)
    (tmp_path / "cnn" / "checkpoints" / MODEL_FILE).write_bytes(b"not a model")
    status = TestClient(create_app(tmp_path / "lm", tmp_path / "cnn")).get("/api/status").json()
    assert status["lm"]["message"].startswith(NO_LM) and "no model.json" in status["lm"]["message"]
    assert status["mnist"]["message"].startswith(NO_MNIST)


def test_newest_models_under_runs(tmp_path):
    assert newest_lm_dir(tmp_path) is None and newest_mnist_dir(tmp_path) is None
    old_lm, old_cnn = make_lm(tmp_path / "1-lm"), make_cnn(tmp_path / "1-cnn")
    study_model = make_lm(tmp_path / "2-study" / "models" / "forward")
    new_cnn = make_cnn(tmp_path / "2-cnn")
    (tmp_path / "3-incomplete").mkdir()
    (tmp_path / "3-incomplete" / "model.pt").write_bytes(b"")
    past = time.time() - 100
    for path in (old_lm / "model.pt", old_cnn / "checkpoints" / MODEL_FILE):
        os.utime(path, (past, past))
    assert newest_lm_dir(tmp_path) == study_model
    assert newest_mnist_dir(tmp_path) == new_cnn
    # A reproduce run nests each part's run directory one level further down.
    later = time.time() + 100
    nested_lm = make_lm(tmp_path / "4-reproduce" / "lm-study" / "models" / "forward")
    nested_cnn = make_cnn(tmp_path / "4-reproduce" / "mnist-cnn")
    for path in (nested_lm / "model.pt", nested_cnn / "checkpoints" / MODEL_FILE):
        os.utime(path, (later, later))
    assert newest_lm_dir(tmp_path) == nested_lm
    assert newest_mnist_dir(tmp_path) == nested_cnn
    # A newer reverse model does not displace the newest forward one.
    reverse = make_lm(tmp_path / "5-study" / "models" / "reverse", direction="reverse")
    os.utime(reverse / "model.pt", (later + 100, later + 100))
    assert newest_lm_dir(tmp_path) == nested_lm


def test_serve_help(cli):
    r = cli("serve", "--help")
    assert r.returncode == 0
    for option in ("--lm-model", "--mnist-model", "--host", "--port"):
        assert option in r.stdout


def test_serve_rejects_a_model_path_that_does_not_exist(cli, tmp_path):
    r = cli("serve", "--lm-model", str(tmp_path / "nonexistent"))
    assert r.returncode == 2
    assert r.stderr.startswith("error:") and len(r.stderr.strip().splitlines()) == 1
    assert "nonexistent" in r.stderr
