"""The lab's static page in headless Chromium: its numbers are PyTorch's, and the page works.

The test builds its own tiny site (the format `dlclassics export` writes: models.json, and per
model weights.safetensors, card.json and vocab.json) from tiny torch models, serves it with
Python's http.server, and compares what `window.lab` computes with the project's own functions.

Skips when Playwright, safetensors or Chromium is missing, unless DLCLASSICS_REQUIRE_BROWSER=1
(as CI sets): then it fails.
"""

import json
import math
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from conftest import chromium, open_lab, require_browser, serve_folder, write_lab_site

from dlclassics.lm.corpus import Vocabulary
from dlclassics.lm.generate import generate, next_words, sentence_probability
from dlclassics.lm.model import LanguageModel, ModelConfig
from dlclassics.lm.words import SPECIALS, words
from dlclassics.mnist.data import normalize
from dlclassics.mnist.models import build
from dlclassics.xor.model import XorNet
from dlclassics.xor.solutions import HAND_WEIGHTS

pytestmark = pytest.mark.slow  # a browser start per module

TOLERANCE = 1e-5  # on probabilities, absolute
LOG_TOLERANCE = 1e-4  # on log probabilities

VOCAB = [*SPECIALS, "love", "i", "cupcakes", "the", "cat", "sat", "on", "mat", "a", "dog"]
VOCAB += ["eats", "you", "we", "like", "cake", "and", "it", "is", "good", "very"]
TEXTS = ["love i", "the cat sat", "", "Love, I!", "zebra eats unknown", "the the the the"]


# ---- the tiny site --------------------------------------------------------------------------


def _sharpen(model: torch.nn.Module, factor: float) -> torch.nn.Module:
    """Random weights scaled up: peaked distributions, a harder test than near-uniform ones."""
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(factor)
    return model.eval()


def _write_model(site: Path, name: str, kind: str, model: torch.nn.Module, card: dict) -> dict:
    from safetensors.torch import save_file

    folder = site / "models" / name
    folder.mkdir(parents=True)
    state = {k: v.detach().float().contiguous() for k, v in model.state_dict().items()}
    save_file(state, folder / "weights.safetensors")
    run = f"runs/{name}"
    full = {"name": name, "kind": kind, "command": f"{kind} test", "run": run, "settings": {}}
    full |= {"data": {}, "seed": 0, "version": "test", "text": f"A tiny {kind} model."} | card
    (folder / "card.json").write_text(json.dumps(full))
    return {"name": name, "kind": kind, "path": f"models/{name}", "run": run, "command": kind}


class Site:
    """The site's folder and the torch models it was written from."""

    def __init__(self, root: Path) -> None:
        self.root = root
        torch.manual_seed(0)
        self.vocab = Vocabulary(VOCAB)
        self.lms = {
            # two layers forward (the stacking), one layer reverse (the reading order)
            "layers2-forward": self._lm(2, "forward"),
            "layers1-reverse": self._lm(1, "reverse"),
        }
        self.mnist = {arch: _sharpen(build(arch), 3.0) for arch in ("logreg", "double_conv")}
        self.xor = {
            "k1-bypass": XorNet.from_spec(HAND_WEIGHTS[0], 0.1),
            "k3": XorNet(3, False, 1.0),
        }
        entries = []
        for name, model in self.lms.items():
            args = {"vocab_size": len(VOCAB), "layers": model.config.layers}
            args |= {"direction": model.config.direction, "embedding_size": 6, "hidden_size": 7}
            results = {"perplexity": {"train": 12.5, "val": 14.0, "test": 14.5}}
            card = {"architecture": args, "results": results}
            entries.append(_write_model(root, name, "lm", model, card))
            (root / "models" / name / "vocab.json").write_text(json.dumps(VOCAB))
        for arch, model in self.mnist.items():
            card = {
                "architecture": {"arch": arch},
                "normalization": {"mean": 0.5, "std": 0.5},
                "results": {},
            }
            entries.append(_write_model(root, arch, "mnist", model, card))
        for name, net in self.xor.items():
            args = {"k": net.k, "bypass": net.bypass, "temperature": net.temperature}
            entries.append(_write_model(root, name, "xor", net, {"architecture": args}))
        write_lab_site(root, entries)

    def _lm(self, layers: int, direction: str) -> LanguageModel:
        config = ModelConfig(len(VOCAB), layers, direction, embedding_size=6, hidden_size=7)
        return _sharpen(LanguageModel(config), 2.5)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Site:
    require_browser()
    return Site(tmp_path_factory.mktemp("site"))


@pytest.fixture(scope="module")
def server(site) -> Iterator[str]:
    with serve_folder(site.root) as url:
        yield url


@pytest.fixture(scope="module")
def browser(server):
    with chromium() as browser:
        yield browser


def _open(browser, server, requests: list[str], errors: list[str], **context):
    return open_lab(browser, server, requests, errors, 15_000, **context)


@pytest.fixture(scope="module")
def page(browser, server, requests, errors):
    page = _open(browser, server, requests, errors, viewport={"width": 1000, "height": 800})
    yield page
    page.close()


# ---- the numbers are PyTorch's --------------------------------------------------------------


@pytest.mark.parametrize("name", ["layers2-forward", "layers1-reverse"])
def test_next_words_are_lm_next(page, site, name):
    model = site.lms[name]
    for text in TEXTS:
        got = page.evaluate("([t, n]) => lab.lm.next(t, 8, n)", [text, name])
        want = next_words(model, site.vocab, words(text), 8)
        assert [g["word"] for g in got] == [w for w, _ in want], text
        for g, (_, p) in zip(got, want, strict=True):
            assert abs(g["p"] - p) < TOLERANCE, (text, g)


def test_the_default_model_is_the_first_forward_one(page, site):
    got = page.evaluate("lab.lm.next('love i', 3)")
    want = next_words(site.lms["layers2-forward"], site.vocab, ["love", "i"], 3)
    assert [g["word"] for g in got] == [w for w, _ in want]


@pytest.mark.parametrize("name", ["layers2-forward", "layers1-reverse"])
def test_sentence_probability_is_lm_prob(page, site, name):
    model = site.lms[name]
    for text in ["love i cupcakes", "The cat sat on the mat.", "zebra the", "i"]:
        got = page.evaluate("([t, n]) => lab.lm.prob(t, n)", [text, name])
        want = sentence_probability(model, site.vocab, words(text))
        assert abs(got["log_probability"] - want.log_probability) < LOG_TOLERANCE, text
        assert abs(got["log_probability_with_eos"] - want.log_probability_with_eos) < LOG_TOLERANCE
        # The words, in reading order, are the factors of the sentence's probability.
        assert [w["word"] for w in got["words"]] == words(text)
        total = sum(math.log(w["p"]) for w in got["words"])
        assert abs(total - want.log_probability) < LOG_TOLERANCE


@pytest.mark.parametrize("name", ["layers2-forward", "layers1-reverse"])
def test_generation_is_seeded_and_greedy_is_torchs(page, site, name):
    sample = "([t, n, s]) => lab.lm.generate('love', 6, t, s, n)"
    first = page.evaluate(sample, [1.0, name, 7])
    assert first == page.evaluate(sample, [1.0, name, 7])  # the same seed, the same sentence
    assert len(first.split()) == 6
    assert "love" in first.split()
    # T = 0 draws nothing at random: the page's sentence is torch's.
    want = generate(site.lms[name], site.vocab, ["love"], 6, 0.0)
    assert page.evaluate(sample, [0, name, 0]).split() == want


def _digits() -> torch.Tensor:
    """A few uint8 28x28 images, white ink on black: blank, strokes, a blob, noise."""
    g = torch.Generator().manual_seed(1)
    images = torch.zeros(4, 28, 28, dtype=torch.uint8)
    images[1, 4:24, 13:16] = 255  # a "1"
    images[2, 6:22, 8:20] = torch.randint(0, 256, (16, 12), generator=g, dtype=torch.uint8)
    images[3] = torch.randint(0, 256, (28, 28), generator=g, dtype=torch.uint8)
    return images


@pytest.mark.parametrize("arch", ["logreg", "double_conv"])
def test_mnist_predict_is_the_models_softmax(page, site, arch):
    images = _digits()
    with torch.no_grad():
        want = torch.softmax(site.mnist[arch](normalize(images)), dim=1)
    for image, probs in zip(images, want, strict=True):
        pixels = (image.flatten().double() / 255).tolist()
        got = page.evaluate("([px, n]) => lab.mnist.predict(px, n)", [pixels, arch])
        assert max(abs(a - b) for a, b in zip(got, probs.tolist(), strict=True)) < TOLERANCE


def test_xor_forward_is_xornet(page, site):
    points = [[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]
    specs = [*HAND_WEIGHTS, {"k": 3, "bypass": False, **site.xor["k3"].weights()}]
    for spec in specs:
        weights = {k: v for k, v in spec.items() if k not in ("k", "bypass")}  # left out
        for t in (0.05, 0.5, 2.0):
            with torch.no_grad():
                want = XorNet.from_spec(spec, t)(torch.tensor(points)).flatten().tolist()
            got = page.evaluate("([w, t, x]) => lab.xor.forward(w, t, x)", [weights, t, points])
            assert max(abs(a - b) for a, b in zip(got, want, strict=True)) < TOLERANCE
    # The exported nets' weights, read back from their safetensors files.
    for name, net in site.xor.items():
        got = page.evaluate("(n) => lab.xor.weights(n)", name)
        for key, value in net.weights().items():
            assert torch.allclose(torch.tensor(got[key]).float(), torch.tensor(value).float())


def test_models_and_cards_are_listed(page, site):
    listed = page.evaluate("lab.models.map((m) => [m.name, m.kind, m.card.kind])")
    assert [(n, k) for n, k, _ in listed] == [
        *[(n, "lm") for n in site.lms],
        *[(n, "mnist") for n in site.mnist],
        *[(n, "xor") for n in site.xor],
    ]
    assert all(kind == card_kind for _, kind, card_kind in listed)


# ---- the page -------------------------------------------------------------------------------


def _bar_words(page, column: int) -> list[str]:
    return page.locator(".column").nth(column).locator("td.label").all_inner_texts()


def test_typing_moves_the_bars_without_a_click(page):
    page.fill("#lm-text", "")
    page.locator("#lm-text").press_sequentially("the cat")
    # Forward and reverse side by side: the next word and the word before.
    for column, name in enumerate(["layers2-forward", "layers1-reverse"]):
        want = page.evaluate("(n) => lab.lm.next('the cat', 10, n).map((w) => w.word)", name)
        page.wait_for_function(
            "([c, w]) => [...document.querySelectorAll('.column')[c].querySelectorAll('td.label')]"
            ".map((td) => td.textContent).join(' ') === w.join(' ')",
            arg=[column, want],
        )
        assert _bar_words(page, column) == want


def test_the_temperature_slider_reshapes_the_bars(page):
    page.fill("#lm-text", "love i")
    before = page.locator(".column .note").first.inner_text()
    # log10 T = 1: T = 10, the distribution flattens and its entropy rises.
    page.eval_on_selector(
        "#lm-temperature", "(s) => { s.value = '1'; s.dispatchEvent(new Event('input')); }"
    )
    after = page.locator(".column .note").first.inner_text()
    assert "T = 10" in after and after != before
    # The note reads "entropy X nats at T = ...".
    assert float(after.split()[1]) > float(before.split()[1])
    want = page.evaluate("lab.lm.next('love i', 10, 'layers2-forward', 10)")
    shown = page.locator(".column").first.locator("td.value").all_inner_texts()
    assert shown[0] == f"{100 * want[0]['p']:.1f}%"  # the bars are lm next's at T = 10
    page.eval_on_selector(
        "#lm-temperature", "(s) => { s.value = '0'; s.dispatchEvent(new Event('input')); }"
    )


def test_generate_shows_the_command(page):
    page.fill("#lm-text", "love")
    page.fill("#lm-length", "5")
    page.fill("#lm-seed", "3")
    page.click("#lm-generate-go")
    sentence = page.inner_text("#lm-generate-result")
    assert len(sentence.split()) == 5
    command = page.inner_text("#lm-command")
    assert command.startswith("dlclassics lm generate --model runs/layers2-forward")
    assert "--start love --length 5 --temperature 1 --seed 3" in command


def test_sentence_words_are_coloured_with_their_top_five(page):
    page.fill("#lm-sentence", "love i cupcakes")
    assert page.locator("#lm-prob-words .word").all_inner_texts() == ["love", "i", "cupcakes"]
    page.locator("#lm-prob-words .word").nth(2).click()  # a tap shows the top five
    assert page.inner_text("#lm-prob-top").startswith("cupcakes:")
    assert "perplexity per word" in page.inner_text("#lm-prob-result")
    assert page.locator("#lm-study svg rect").count() > 0


def test_a_drawn_digit_gets_ten_bars(page):
    page.click("button[data-tab=mnist]")
    box = page.locator("#mnist-canvas").bounding_box()
    page.mouse.move(box["x"] + 140, box["y"] + 50)
    page.mouse.down()
    for step in range(1, 21):
        page.mouse.move(box["x"] + 140 + step, box["y"] + 50 + 9 * step)
    page.mouse.up()
    for column in range(2):  # every model answers, without a click
        page.locator(".mnist-column").nth(column).locator("tr").nth(9).wait_for()
        prediction = page.locator(".mnist-column .prediction").nth(column).inner_text()
        assert prediction.split("→ ")[1] in [str(d) for d in range(10)]
    page.click("button[data-tab=lm]")


def test_the_xor_surface_is_drawn(page):
    page.click("button[data-tab=xor]")
    page.select_option("#xor-preset", "k1-bypass")  # the exported net, at its T = 0.1
    assert page.input_value("#xor-temperature") == "0.1"
    # The centre x1 = x2 = 0.5 of the hand-set k1-bypass net at T = 0.1 is inside the XOR band.
    blue = page.evaluate(
        "(() => { const [r, g, b] = document.getElementById('xor-canvas').getContext('2d')"
        ".getImageData(120, 120, 1, 1).data; return b === 255 && r < 128; })()"
    )
    assert blue
    page.click("button[data-tab=lm]")


def test_a_phone_width_has_no_horizontal_overflow(browser, server, requests, errors):
    phone = _open(
        browser,
        server,
        requests,
        errors,
        viewport={"width": 360, "height": 740},
        has_touch=True,
        is_mobile=True,
    )
    for tab in ["lm", "mnist", "xor"]:
        phone.click(f"button[data-tab={tab}]")
        width = phone.evaluate("document.documentElement.scrollWidth")
        assert width <= 360, (tab, width)
    phone.close()


def test_nothing_is_requested_outside_the_site_and_no_error(page, server, requests, errors):
    assert requests  # the recording works
    assert [url for url in requests if not url.startswith(server)] == []
    assert errors == []
