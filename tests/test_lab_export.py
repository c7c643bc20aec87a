"""The lab's page on REAL exported runs: what `dlclassics export` writes, the page computes as
PyTorch and the command line do.

test_lab.py checks the page on a site it writes itself; this test closes the loop through the
real commands: tiny `lm train`, `lm study`, `mnist fc`, `mnist cnn`, `xor solve` and `xor train`
runs, exported by `dlclassics export`, served by Python's http.server on 127.0.0.1 and opened in
headless Chromium. For every exported model the page's numbers are compared with the project's
own functions on the checkpoint the run saved, and with what `lm next` / `lm prob` print.

Skips when Playwright, safetensors or Chromium is missing, unless DLCLASSICS_REQUIRE_BROWSER=1
(as CI sets): then it fails.
"""

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import (
    CNN_FAST,
    TINY_LM,
    chromium,
    invoke_cli,
    load_xor,
    open_lab,
    require_browser,
    serve_folder,
    write_corpus,
    write_idx_set,
)

from dlclassics.lm.generate import next_words, sentence_probability
from dlclassics.lm.model import load_language_model
from dlclassics.lm.words import words
from dlclassics.mnist.data import normalize, read_idx
from dlclassics.mnist.models import load_classifier

pytestmark = pytest.mark.slow  # trains six tiny runs and starts a browser

TOLERANCE = 1e-5  # on probabilities, absolute: the page against PyTorch
PRINTED_TOLERANCE = 5e-5  # against `lm next`'s 4 decimals: their rounding, and the page's error
LOG_TOLERANCE = 1e-4  # on log probabilities, against sentence_probability
# `lm prob` prints log p with 4 decimals: half a unit of rounding on top of LOG_TOLERANCE.
PRINTED_LOG_TOLERANCE = LOG_TOLERANCE + 5e-5

TEXTS = ["love i", "the cat", "", "Love, I!", "zebra eats unknown", "the the the the"]
SENTENCES = ["love i cake", "The dog eats the big cake.", "zebra the", "i"]
POINTS = [[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]
IMAGES = 6  # test images of the IDX set given to every classifier


# ---- the runs and their site ----------------------------------------------------------------


@dataclass
class Exported:
    """The runs' folder, the exported site, its models.json entries and the IDX data."""

    root: Path
    site: Path
    entries: list[dict[str, Any]]
    idx: Path

    def of_kind(self, kind: str) -> list[str]:
        return [e["name"] for e in self.entries if e["kind"] == kind]

    def trial(self, name: str) -> Path:
        """The trial folder a model was exported from: `<run>/trials/<trial>`, where a name
        shared by several runs is `<run>-<trial>`."""
        entry = next(e for e in self.entries if e["name"] == name)
        trials = self.root / entry["run"] / "trials"
        trial = name.removeprefix(f"{entry['run']}-")
        return trials / (trial if (trials / trial).is_dir() else name)


def _cli(*args: str) -> str:
    result = invoke_cli(*args)
    assert result.returncode == 0, (args, result.stderr[-2000:])
    return result.stdout


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Exported:
    require_browser()  # before training: a skip costs nothing
    root = tmp_path_factory.mktemp("runs")
    corpus = str(write_corpus(root / "corpus.txt"))
    idx = write_idx_set(root / "idx", n_train=500, n_test=100)
    data = ["--data-dir", str(idx)]
    lm = ["--corpus", corpus, *TINY_LM, "--epochs", "1", "--quiet"]
    _cli("lm", "study", *lm, "--out", str(root / "study"))
    # An `lm train` next to the study: its layers1-forward shares a name, so both get prefixed.
    _cli("lm", "train", *lm, "--out", str(root / "lmtrain"))
    _cli("mnist", "fc", "--iterations", "20", *data, "--quiet", "--out", str(root / "fc"))
    cnn = [*CNN_FAST, "--max-epochs", "1", *data, "--quiet"]
    _cli("mnist", "cnn", *cnn, "--out", str(root / "cnn"))
    # The hand-set nets and the trained ones: the same trial names, prefixed by their runs'.
    _cli("xor", "solve", "--quiet", "--out", str(root / "solve"))
    _cli("xor", "train", "--epochs", "200", "--quiet", "--out", str(root / "xortrain"))
    site = root / "site"
    runs = ["study", "lmtrain", "fc", "cnn", "solve", "xortrain"]
    _cli("export", *[str(root / run) for run in runs], "--out", str(site))
    entries = json.loads((site / "models.json").read_text())["models"]
    return Exported(root, site, entries, idx)


@pytest.fixture(scope="module")
def server(exported) -> Iterator[str]:
    with serve_folder(exported.site) as url:
        yield url


@pytest.fixture(scope="module")
def page(server, requests, errors):
    with chromium() as browser:
        yield open_lab(
            browser, server, requests, errors, 30_000, viewport={"width": 1000, "height": 800}
        )


# ---- what the command line prints -----------------------------------------------------------


def _printed_next(trial: Path, text: str, k: int) -> list[tuple[str, float]]:
    """`dlclassics lm next --model TRIAL TEXT`: "word 0.1234, word 0.0567, ...", then the
    unknown words in parentheses."""
    out = _cli("lm", "next", "--model", str(trial), "--top-k", str(k), "--device", "cpu", text)
    listed = out.strip().split(" (")[0]  # then, maybe, "(unknown, scored as <UNK>: zebra)"
    pairs = [item.rsplit(" ", 1) for item in listed.split(", ")]
    return [(word, float(p)) for word, p in pairs]


def _printed_log_p(trial: Path, sentence: str) -> tuple[float, float]:
    """`dlclassics lm prob`'s two log p: through the last word, and with <EOS>."""
    out = _cli("lm", "prob", "--model", str(trial), "--device", "cpu", sentence)
    found = [float(x) for x in re.findall(r"log p = (-?[\d.]+(?:e-?\d+)?)", out)]
    assert len(found) == 2, out
    return found[0], found[1]


# ---- the page's numbers are PyTorch's -------------------------------------------------------


def test_the_site_lists_exactly_models_json(page, exported):
    assert page.evaluate("lab.models.map((m) => m.name)") == [e["name"] for e in exported.entries]
    # Every kind of run exported, forward and reverse language models among them.
    kinds = {e["kind"] for e in exported.entries}
    assert kinds == {"lm", "mnist", "xor"}
    assert len(exported.of_kind("lm")) == 5 and len(exported.of_kind("xor")) == 6


def _lm_names() -> list[str]:
    # The study's four trials and the `lm train` run's model (prefixed: its name is shared).
    study = ["study-layers1-forward", "layers1-reverse", "layers2-forward", "layers2-reverse"]
    return [*study, "lmtrain-layers1-forward"]


@pytest.mark.parametrize("name", _lm_names())
def test_next_words_are_torchs_and_lm_nexts(page, exported, name):
    trial = exported.trial(name)
    model, vocab = load_language_model(trial)
    for text in TEXTS:
        got = page.evaluate("([t, n]) => lab.lm.next(t, 8, n)", [text, name])
        want = next_words(model, vocab, words(text), 8)
        # Rank by rank the same probabilities; the words too, unless two of them tie (a model
        # trained one epoch on random words has near-equal ones, which rounding may swap).
        assert len(got) == len(want)
        for g, (word, p) in zip(got, want, strict=True):
            assert abs(g["p"] - p) < TOLERANCE, (text, g, word, p)
            assert g["word"] == word or abs(g["p"] - dict(want).get(g["word"], -1)) < TOLERANCE
        if not text:
            continue  # `lm next` with no TEXT reads lines from stdin
        printed = _printed_next(trial, text, 8)
        pages = {
            g["word"]: g["p"]
            for g in page.evaluate("([t, n]) => lab.lm.next(t, 100, n)", [text, name])
        }
        for word, p in printed:
            assert abs(pages[word] - p) < PRINTED_TOLERANCE, (text, word, p, pages[word])


@pytest.mark.parametrize("name", _lm_names())
def test_sentence_probability_is_torchs_and_lm_probs(page, exported, name):
    trial = exported.trial(name)
    model, vocab = load_language_model(trial)
    for sentence in SENTENCES:
        got = page.evaluate("([t, n]) => lab.lm.prob(t, n)", [sentence, name])
        want = sentence_probability(model, vocab, words(sentence))
        assert abs(got["log_probability"] - want.log_probability) < LOG_TOLERANCE, sentence
        assert abs(got["log_probability_with_eos"] - want.log_probability_with_eos) < LOG_TOLERANCE
        log_p, log_p_eos = _printed_log_p(trial, sentence)
        assert abs(got["log_probability"] - log_p) < PRINTED_LOG_TOLERANCE, sentence
        assert abs(got["log_probability_with_eos"] - log_p_eos) < PRINTED_LOG_TOLERANCE


def test_mnist_predict_is_the_classifiers_softmax(page, exported):
    images = torch.from_numpy(
        read_idx(exported.idx / "t10k-images-idx3-ubyte.gz", 0x803)[:IMAGES].copy()
    )
    names = exported.of_kind("mnist")
    assert set(names) == {"logreg", "mlp", "single_conv_b50", "double_conv_b50"}
    for name in names:
        classifier = load_classifier(exported.trial(name))
        with torch.no_grad():
            want = torch.softmax(classifier(normalize(images)).float(), dim=1)
        for image, probs in zip(images, want, strict=True):
            pixels = (image.flatten().double() / 255).tolist()
            got = page.evaluate("([px, n]) => lab.mnist.predict(px, n)", [pixels, name])
            worst = max(abs(a - b) for a, b in zip(got, probs.tolist(), strict=True))
            assert worst < TOLERANCE, (name, worst)


def test_xor_forward_is_the_checkpoints_xornet(page, exported):
    for name in exported.of_kind("xor"):
        net = load_xor(exported.trial(name))
        with torch.no_grad():
            want = net(torch.tensor(POINTS)).flatten().tolist()
        # The weights as the page read them from the site's safetensors, through its forward.
        weights = page.evaluate("(n) => lab.xor.weights(n)", name)
        got = page.evaluate(
            "([w, t, x]) => lab.xor.forward(w, t, x)", [weights, net.temperature, POINTS]
        )
        assert max(abs(a - b) for a, b in zip(got, want, strict=True)) < TOLERANCE, name
        # And the checkpoint's own weights, as `xor solve --weights` reads them.
        got = page.evaluate(
            "([w, t, x]) => lab.xor.forward(w, t, x)", [net.weights(), net.temperature, POINTS]
        )
        assert max(abs(a - b) for a, b in zip(got, want, strict=True)) < TOLERANCE, name


def test_nothing_is_requested_outside_the_site_and_no_error(page, server, requests, errors):
    # Last in the module: every request the tests above made is recorded.
    assert any(url.endswith(".safetensors") for url in requests)
    assert [url for url in requests if not url.startswith(server)] == []
    assert errors == []
