"""The web demo's API, on a tiny untrained language model and CNN saved as training saves them."""

import math
import os
from pathlib import Path

import pytest
import torch

pytest.importorskip("fastapi", reason="the demo extra is not installed: pip install -e '.[demo]'")
pytest.importorskip("httpx", reason="the demo extra is not installed: pip install -e '.[demo]'")

from fastapi.testclient import TestClient

from dlclassics.lm.corpus import Vocabulary
from dlclassics.lm.model import LanguageModel, ModelConfig
from dlclassics.lm.model import save_model as save_lm
from dlclassics.mnist.data import SOURCES
from dlclassics.mnist.models import build
from dlclassics.mnist.models import save_model as save_cnn
from dlclassics.rundir import write_json
from dlclassics.serve.app import create_app
from dlclassics.serve.models import NO_LM, NO_MNIST, newest_lm_model, newest_mnist_model

SENTENCES = [s.split() for s in ["the cat sat on the mat", "a dog ran in the park", "the end"]]
BLANK = [0.0] * 784
DIGITS = list(SOURCES["mnist"].classes)


def make_run(run: Path, command: str) -> Path:
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


def make_cnn(run: Path, classes: list[str] = DIGITS) -> Path:
    """An `mnist cnn` run whose chosen model is a tiny untrained CNN."""
    make_run(run, "mnist cnn")
    torch.manual_seed(0)
    save_cnn(run / "checkpoint.pt", build("single_conv"), "single_conv", {"seed": 0}, classes)
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
    assert r["probability_eos"] == pytest.approx(r["probability"] * end, rel=1e-5)


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
    body = TestClient(app).post("/api/mnist/predict", json={"pixels": digit()}).json()
    assert body["classes"] == fashion and len(body["probabilities"]) == 10


def test_models_load_from_a_checkpoint_file_too(tmp_path):
    lm = make_lm(tmp_path / "lm") / "checkpoint.pt"
    cnn = make_cnn(tmp_path / "cnn") / "checkpoint.pt"
    status = TestClient(create_app(lm, cnn)).get("/api/status").json()
    assert status["lm"]["ready"] and status["mnist"]["ready"]


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
    make_run(tmp_path / "cnn", "mnist cnn")
    (tmp_path / "cnn" / "checkpoint.pt").write_bytes(b"not a model")
    status = TestClient(create_app(tmp_path / "lm", tmp_path / "cnn")).get("/api/status").json()
    assert not status["lm"]["ready"] and not status["mnist"]["ready"]
    assert (
        status["lm"]["message"].startswith(NO_LM)
        and str(tmp_path / "lm") in status["lm"]["message"]
    )
    assert status["mnist"]["message"].startswith(NO_MNIST)
    assert str(tmp_path / "cnn") in status["mnist"]["message"]


def test_a_study_run_is_not_one_model_and_says_which_there_are(tmp_path):
    study = make_lm(tmp_path / "study", "forward", "reverse", command="lm study").parent.parent
    message = TestClient(create_app(study, None)).get("/api/status").json()["lm"]["message"]
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
    for option in ("--lm-model", "--mnist-model", "--host", "--port"):
        assert option in r.stdout


def test_serve_rejects_a_model_path_that_does_not_exist(cli, tmp_path):
    r = cli("serve", "--lm-model", str(tmp_path / "nonexistent"))
    assert r.returncode == 2
    assert r.stderr.startswith("error:") and len(r.stderr.strip().splitlines()) == 1
    assert "nonexistent" in r.stderr


def test_a_body_over_the_limit_is_refused_before_it_is_read(client):
    from dlclassics.serve.app import MAX_BODY

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
