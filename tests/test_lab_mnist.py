"""The lab's MNIST tab in headless Chromium: every model on a drawing, the CNN's insides, the
test set's mistakes; its numbers are PyTorch's.

The test builds its own tiny site in the format `dlclassics export` writes for MNIST models
(models.json; per model weights.safetensors, card.json with "test": "test.json", test.json,
test-mistakes.png and samples.json) from tiny torch models, serves it with Python's http.server
and compares what `window.lab` computes with the models' own layers.

Skips when Playwright, safetensors or Chromium is missing, unless DLCLASSICS_REQUIRE_BROWSER=1
(as CI sets): then it fails.
"""

import json
import statistics
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from conftest import chromium, open_lab, require_browser, serve_folder, write_lab_site

from dlclassics.mnist.data import normalize
from dlclassics.mnist.models import build

pytestmark = pytest.mark.slow  # a browser start per module

TOLERANCE = 1e-5  # on probabilities and activations, absolute
CLASSES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
COLUMNS = 40  # sprite tiles per row
ARCHS = {
    "logreg": "logreg",
    "mlp": "mlp",
    "double_conv_b50": "double_conv",
    "single_conv_b50": "single_conv",
}
CHOSEN = "double_conv_b50"
NO_TEST = "single_conv_b50"  # a trial exported without test figures


# ---- the tiny site --------------------------------------------------------------------------


def _png(pixels: torch.Tensor) -> bytes:
    """uint8 (height, width) as an 8-bit grayscale PNG, with the standard library only."""
    height, width = pixels.shape
    raw = b"".join(b"\x00" + bytes(row.tolist()) for row in pixels)

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = chunk(b"IDAT", zlib.compress(raw))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + idat + chunk(b"IEND", b"")


def _images(n: int, seed: int) -> torch.Tensor:
    """uint8 (n, 28, 28), white ink on black: a blank, bars, blobs and noise."""
    g = torch.Generator().manual_seed(seed)
    images = torch.zeros(n, 28, 28, dtype=torch.uint8)
    for k in range(1, n):
        top, left = (int(v) for v in torch.randint(2, 12, (2,), generator=g))
        h, w = (int(v) for v in torch.randint(4, 14, (2,), generator=g))
        images[k, top : top + h, left : left + w] = torch.randint(
            0, 256, (h, w), generator=g, dtype=torch.uint8
        )
    images[n - 1] = torch.randint(0, 256, (28, 28), generator=g, dtype=torch.uint8)
    return images


class Site:
    """The site's folder and the torch models it was written from."""

    def __init__(self, root: Path) -> None:
        from safetensors.torch import save_file

        self.root = root
        torch.manual_seed(0)
        self.models = {}
        self.tests = {}
        self.samples = _images(20, 2)
        self.sample_labels = torch.randint(0, 10, (20,), generator=torch.Generator().manual_seed(3))
        test_images = _images(120, 4)
        test_labels = torch.randint(0, 10, (120,), generator=torch.Generator().manual_seed(5))
        entries = []
        for name, arch in ARCHS.items():
            model = build(arch)
            with torch.no_grad():
                for p in model.parameters():
                    p.mul_(3.0)  # peaked distributions: a harder test than near-uniform ones
            model.eval()
            self.models[name] = model
            folder = root / "models" / name
            folder.mkdir(parents=True)
            state = {k: v.detach().float().contiguous() for k, v in model.state_dict().items()}
            save_file(state, folder / "weights.safetensors")
            card = {
                "name": name,
                "kind": "mnist",
                "command": "mnist test",
                "run": "runs/x",
                "architecture": {"arch": arch},
                "classes": CLASSES,
                "normalization": {"mean": 0.5, "std": 0.5},
                "results": {"best": True} if name == CHOSEN else {},
                "text": f"A tiny {arch}.",
            }
            if name != NO_TEST:
                card["test"] = "test.json"
                self.tests[name] = self._test(folder, model, test_images, test_labels)
                samples = {
                    "classes": CLASSES,
                    "images": self.samples.flatten(1).tolist(),
                    "labels": self.sample_labels.tolist(),
                }
                (folder / "samples.json").write_text(json.dumps(samples))
            (folder / "card.json").write_text(json.dumps(card))
            entries.append(
                {
                    "name": name,
                    "kind": "mnist",
                    "path": f"models/{name}",
                    "run": "runs/x",
                    "command": "mnist",
                }
            )
        write_lab_site(root, entries)

    @staticmethod
    def _test(folder: Path, model, images: torch.Tensor, labels: torch.Tensor) -> dict:
        with torch.no_grad():
            probs = torch.softmax(model(normalize(images)), dim=1)
        pred = probs.argmax(1)
        confusion = torch.zeros(10, 10, dtype=torch.long)
        for t, p in zip(labels.tolist(), pred.tolist(), strict=True):
            confusion[t, p] += 1
        wrong = (pred != labels).nonzero().flatten().tolist()
        mistakes = [
            {
                "sprite": n,
                "index": i,
                "true": int(labels[i]),
                "pred": int(pred[i]),
                "p_pred": float(probs[i, pred[i]]),
                "p_true": float(probs[i, labels[i]]),
            }
            for n, i in enumerate(wrong)
        ]
        rows = -(-len(wrong) // COLUMNS)
        sheet = torch.zeros(rows * 28, COLUMNS * 28, dtype=torch.uint8)
        for n, i in enumerate(wrong):
            r, c = divmod(n, COLUMNS)
            sheet[r * 28 : (r + 1) * 28, c * 28 : (c + 1) * 28] = images[i]
        (folder / "test-mistakes.png").write_bytes(_png(sheet))
        diagonal = confusion.diag().float()
        recall = (diagonal / confusion.sum(1).clamp(min=1)).tolist()
        test = {
            "classes": CLASSES,
            "accuracy": float(diagonal.sum() / confusion.sum()),
            "balanced_accuracy": sum(recall) / 10,
            "confusion": confusion.tolist(),
            "precision": (diagonal / confusion.sum(0).clamp(min=1)).tolist(),
            "recall": recall,
            "mistakes": mistakes,
            "sprite": "test-mistakes.png",
            "sprite_columns": COLUMNS,
        }
        (folder / "test.json").write_text(json.dumps(test))
        return test


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
    page = open_lab(browser, server, requests, errors, 15_000, **context)
    page.click("button[data-tab=mnist]")
    return page


@pytest.fixture(scope="module")
def page(browser, server, requests, errors):
    page = _open(browser, server, requests, errors, viewport={"width": 1000, "height": 800})
    yield page
    page.close()


# The page's MNIST module, as loaded (the same instance: the same URL).
MODULE = "import(new URL('mnist.js', location.href).href)"


def _inputs(site: Site) -> torch.Tensor:
    return torch.cat([_images(6, 1), site.samples])


# ---- the numbers are PyTorch's --------------------------------------------------------------


@pytest.mark.parametrize("name", list(ARCHS))
def test_predict_is_the_models_softmax(page, site, name):
    images = _inputs(site)
    with torch.no_grad():
        want = torch.softmax(site.models[name](normalize(images)), dim=1)
    for image, probs in zip(images, want, strict=True):
        pixels = (image.flatten().double() / 255).tolist()
        got = page.evaluate("([px, n]) => lab.mnist.predict(px, n)", [pixels, name])
        assert max(abs(a - b) for a, b in zip(got, probs.tolist(), strict=True)) < TOLERANCE


@pytest.mark.parametrize("name", ["double_conv_b50", "single_conv_b50"])
def test_activations_are_the_convnets_layers(page, site, name):
    model = site.models[name]
    images = _inputs(site)
    for image in images:
        pixels = (image.flatten().double() / 255).tolist()
        got = page.evaluate(
            "([px, n]) => lab.mnist.activations(px, n).map((s) => ({stage: s.stage,"
            " conv: s.conv.map((m) => Array.from(m)), pooled: s.pooled.map((m) => Array.from(m)),"
            " relu: s.relu.map((m) => Array.from(m))}))",
            [pixels, name],
        )
        assert len(got) == len(model.convs)
        x = normalize(image[None])
        with torch.no_grad():
            for stage, conv in enumerate(model.convs):  # ConvNet.forward, step by step
                conved = conv(x)
                pooled = torch.nn.functional.max_pool2d(conved, 2)
                x = torch.relu(pooled)
                for key, want in [("conv", conved), ("pooled", pooled), ("relu", x)]:
                    mine = torch.tensor(got[stage][key], dtype=torch.float64)
                    assert mine.shape == want[0].flatten(1).shape, (stage, key)
                    error = (mine - want[0].flatten(1).double()).abs().max().item()
                    assert error < TOLERANCE, (stage, key, error)
                assert got[stage]["stage"] == stage


# ---- the page -------------------------------------------------------------------------------


def _draw(page) -> None:
    box = page.locator("#mnist-canvas").bounding_box()
    page.mouse.move(box["x"] + 100, box["y"] + 40)
    page.mouse.down()
    for step in range(1, 25):
        page.mouse.move(box["x"] + 100 + 2 * step, box["y"] + 40 + 8 * step)
    page.mouse.up()


def _shown(page) -> dict:
    return page.evaluate(
        "Object.fromEntries([...document.querySelectorAll('.mnist-column')].map((c) =>"
        " [c.dataset.model, [...c.querySelectorAll('td.value')].map((td) => td.textContent)]))"
    )


def test_drawing_updates_every_models_bars_without_a_click(page, site):
    page.click("#mnist-clear")
    before = _shown(page)
    _draw(page)
    # No click, no button: the bars follow the pointer.
    page.wait_for_function(f"{MODULE}.then((m) => m.current().some((v) => v > 0))")
    page.wait_for_timeout(100)  # the last animation frame
    shown = _shown(page)
    assert set(shown) == set(ARCHS)
    want = page.evaluate(
        f"{MODULE}.then((m) => Object.fromEntries(lab.models.map((x) => [x.name,"
        " lab.mnist.predict(m.current(), x.name).map((p) => p >= 0.001 ? (100 * p).toFixed(1) + '%'"
        " : p.toExponential(1))])))"
    )
    assert shown == want
    assert shown != before
    # The chosen model is marked, and class names come from the card.
    assert page.locator(".mnist-column .chosen").count() == 1
    assert page.locator(f".mnist-column[data-model={CHOSEN}] h3 .chosen").count() == 1
    labels = page.locator(".mnist-column").first.locator("td.label").all_inner_texts()
    assert labels == CLASSES
    # What the model sees: the drawing's box in 20x20, its centre of mass at the centre.
    pixels = torch.tensor(page.evaluate(f"{MODULE}.then((m) => m.current())")).view(28, 28)
    ys, xs = pixels.nonzero(as_tuple=True)
    assert max(ys.max() - ys.min(), xs.max() - xs.min()) <= 21
    mass = pixels.sum()
    rows = torch.arange(28.0)
    assert abs((pixels.sum(1) * rows).sum() / mass - 13.5) < 1
    assert abs((pixels.sum(0) * rows).sum() / mass - 13.5) < 1
    # The maps of the picked CNN are the activations of that input.
    assert page.locator("#mnist-inside canvas.map").count() == 2 * 3 * 5


def test_a_sample_is_classified_as_given(page, site):
    page.locator("#mnist-samples .sample").nth(3).click()
    got = page.evaluate(f"{MODULE}.then((m) => m.current())")
    assert got == (site.samples[3].flatten().double() / 255).tolist()


def test_hovering_a_map_names_its_filter(page):
    page.locator("#mnist-inside .maprow").nth(3).locator("canvas").nth(2).hover()
    assert "filter 3 of conv layer 2" in page.inner_text("#mnist-hover")
    lit = page.locator("#mnist-filters .filterbox.lit")
    assert lit.count() == 1
    assert lit.get_attribute("data-stage") == "1" and lit.get_attribute("data-filter") == "2"
    assert page.locator("#mnist-filters .legend").count() == 2  # the value scale


def test_weight_images(page):
    blocks = page.locator("#mnist-weights .stage")
    assert blocks.count() == 2
    assert blocks.nth(0).locator("canvas").count() == 10  # logreg: one template per class
    assert blocks.nth(0).locator("figcaption").all_inner_texts() == CLASSES
    assert blocks.nth(1).locator("canvas").count() == 64  # the MLP's first 64 units


@pytest.mark.parametrize("name", ["double_conv_b50", "logreg"])
def test_a_confusion_cell_shows_its_test_images(page, site, name):
    test = site.tests[name]
    page.select_option("#mnist-test-model", name)
    assert page.locator("#mnist-test .cell").count() == 100
    counts = [[int(x) for x in row] for row in test["confusion"]]
    shown = page.locator("#mnist-test .cell").all_inner_texts()
    assert [int(c) for c in shown] == [c for row in counts for c in row]
    cells = {(m["true"], m["pred"]) for m in test["mistakes"]}
    for t, p in sorted(cells)[:3]:
        page.click(f"#mnist-test .cell[data-true='{t}'][data-pred='{p}']")
        n = sum(1 for m in test["mistakes"] if (m["true"], m["pred"]) == (t, p))
        assert page.locator("#mnist-cell .tile").count() == n
    # The tiles are the sprite's: drawn once it has loaded.
    m = next(m for m in test["mistakes"] if (m["true"], m["pred"]) == (t, p))
    tile = page.locator("#mnist-cell .tile canvas").first
    want = int(_images(120, 4)[m["index"]].long().sum())  # the test images, as Site made them
    page.wait_for_function(
        "([c, w]) => { const d = c.getContext('2d').getImageData(0, 0, 28, 28).data;"
        " let s = 0; for (let i = 0; i < d.length; i += 4) s += d[i]; return s === w; }",
        arg=[tile.element_handle(), want],
    )


def test_a_model_without_test_figures_says_so(page):
    page.select_option("#mnist-test-model", NO_TEST)
    assert "No test.json" in page.inner_text("#mnist-test")


def test_redraw_time(page, site):
    """Not a timed test: prints the median redraw (every model + the chosen CNN's maps)."""
    pixels = (site.samples[5].flatten().double() / 255).tolist()
    times = page.evaluate(
        f"(px) => {MODULE}.then((m) => {{ const t = []; for (let i = 0; i < 21; i++) {{"
        " const s = performance.now(); m.show(px); t.push(performance.now() - s); }"
        " return t.slice(1); })",
        pixels,
    )
    print(
        f"\nMNIST redraw, {len(ARCHS)} models + {CHOSEN}'s maps: "
        f"median {statistics.median(times):.2f} ms over {len(times)} redraws"
    )
    assert page.inner_text("#mnist-error") == ""


def test_a_phone_width_has_no_horizontal_overflow(browser, server, requests, errors, site):
    phone = _open(
        browser,
        server,
        requests,
        errors,
        viewport={"width": 360, "height": 740},
        has_touch=True,
        is_mobile=True,
    )
    phone.locator("#mnist-samples .sample").first.click()
    phone.click("#mnist-test .cell[data-true='0'][data-pred='0']")
    t, p = site.tests[CHOSEN]["mistakes"][0]["true"], site.tests[CHOSEN]["mistakes"][0]["pred"]
    phone.click(f"#mnist-test .cell[data-true='{t}'][data-pred='{p}']")
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 360, width
    phone.close()


def test_nothing_is_requested_outside_the_site_and_no_error(page, server, requests, errors):
    assert requests
    assert [url for url in requests if not url.startswith(server)] == []
    assert errors == []
