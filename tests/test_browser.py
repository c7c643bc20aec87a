"""The demo page driven in headless Chromium: type words, draw a digit, read the answers back.

Skips when Playwright or Chromium is missing, unless DLCLASSICS_REQUIRE_BROWSER=1 (as CI sets).
"""

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # a browser start and a server per module

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


def _missing() -> str | None:
    for module in ("playwright", "fastapi", "uvicorn"):
        try:
            __import__(module)
        except ImportError:
            return f"{module} is not installed: pip install -e '.[demo]'"
    if not (os.access(CHROMIUM, os.X_OK) or shutil.which(CHROMIUM)):
        return f"no Chromium at {CHROMIUM}: apt-get install chromium (or set DLCLASSICS_CHROMIUM)"
    return None


def _require_browser() -> None:
    reason = _missing()
    if reason is None:
        return
    if os.environ.get("DLCLASSICS_REQUIRE_BROWSER") == "1":
        pytest.fail(f"DLCLASSICS_REQUIRE_BROWSER=1 but {reason}")
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[str]:
    _require_browser()
    import uvicorn
    from conftest import make_cnn, make_lm

    from dlclassics.serve.app import create_app

    root = tmp_path_factory.mktemp("models")
    app = create_app(make_lm(root / "lm"), make_cnn(root / "cnn"))
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            pytest.fail("the demo server did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def page(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1000, "height": 760})
        page.set_default_timeout(15_000)
        page.goto(server)
        yield page
        browser.close()


def test_next_word(page):
    page.fill("#lm-text", "the cat")
    page.click("#lm-next-go")
    page.locator("#lm-next-result tr").first.wait_for()
    assert page.locator("#lm-next-result tr td").first.inner_text().strip()
    assert page.locator("#lm-next-result tr").count() == 5


def test_a_generated_sentence_has_the_length_asked(page):
    page.fill("#lm-text", "the")
    page.fill("#lm-length", "6")
    page.evaluate("document.getElementById('lm-generate-result').textContent = ''")
    page.click("#lm-generate-go")
    page.wait_for_function("document.getElementById('lm-generate-result').textContent !== ''")
    assert len(page.inner_text("#lm-generate-result").split()) == 6


def test_empty_text_shows_a_message(page):
    page.fill("#lm-text", "  ")
    page.click("#lm-generate-go")
    page.wait_for_function("document.getElementById('lm-generate-error').textContent !== ''")
    assert page.inner_text("#lm-generate-error") == "type at least one word"


def test_blank_canvas_then_a_drawn_digit(page, tmp_path):
    page.click("button[data-tab=mnist]")
    page.click("#mnist-go")
    page.wait_for_function("document.getElementById('mnist-error').textContent !== ''")
    assert "blank" in page.inner_text("#mnist-error")

    box = page.locator("#mnist-canvas").bounding_box()
    page.mouse.move(box["x"] + 140, box["y"] + 50)
    page.mouse.down()
    for step in range(1, 21):
        page.mouse.move(box["x"] + 140 + step, box["y"] + 50 + 9 * step)
    page.mouse.up()
    page.click("#mnist-go")
    page.wait_for_function("document.getElementById('mnist-prediction').textContent !== ''")
    assert page.inner_text("#mnist-prediction").split(": ")[1] in [str(d) for d in range(10)]
    assert page.inner_text("#mnist-error") == ""
    assert page.locator("#mnist-result tr").count() == 10
    shot = Path(os.environ.get("DLCLASSICS_SCREENSHOT", tmp_path / "serve.png"))
    page.screenshot(path=shot)
    assert shot.stat().st_size > 0


def test_xor_surface_is_drawn(page):
    page.click("button[data-tab=xor]")
    page.select_option("#xor-net", "2,false")
    page.click("#xor-go")
    # The centre of the k=2 network's surface is x1 = x2 = 0.5: inside the XOR band, so blue.
    page.wait_for_function(
        "(() => { const [r, g, b] = document.getElementById('xor-canvas').getContext('2d')"
        ".getImageData(160, 160, 1, 1).data; return b === 255 && r < 128; })()"
    )
    assert page.inner_text("#xor-error") == ""
