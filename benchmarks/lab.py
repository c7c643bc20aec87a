"""The lab's figures in headless Chromium: bytes loaded, time to `lab.ready`, keystroke latency.

SITE is a folder `dlclassics export` wrote. It is served by Python's http.server on 127.0.0.1
and opened in a fresh browser context (an empty cache) `--loads` times, then measured:

- bytes: the sum of the sizes of every response the page loads (Content-Length, the body's
  length where a response has none), beside the site folder's size on disk;
- ready: from the navigation's start (performance.timeOrigin) to the moment `lab.ready`
  resolves (a setter on `window.lab` hooks the promise as lab.js publishes it), and to the page
  drawn (`document.body.dataset.ready`), the median over the loads;
- keystroke: `--keystrokes` characters typed into the LM text box one at a time; for each, the
  time from the keydown event (its timeStamp) to the MutationObserver callback that sees the
  bars' table replaced, i.e. the DOM updated, before paint. The median, and the time
  `lab.lm.nextLogits` alone takes on the same texts (performance.now() around it), so the
  share of the LSTM and softmax in it reads apart from the drawing.

With `--screenshots DIR`, also PNGs of the LM tab (bars for a typed text), the MNIST tab (a
drawn digit) and the XOR tab (a k = 4 net mid-training, the whole tab) at 1100 px and at 360 px
wide (a phone, touch): DIR/lab-*.png.

The XOR tab's live training: a k = 4 net played for `--xor-seconds` at each speed (epochs a
frame), the epochs per second it trains while drawing every frame, and the frames per second.

With MNIST models in SITE, also their bytes and the arithmetic of a redraw: every model's
probabilities and the chosen CNN's maps (`lab.mnist.predict`, `lab.mnist.activations`).

Usage: python benchmarks/lab.py SITE [--loads 3] [--keystrokes 30] [--xor-seconds 3]
    [--screenshots docs]
"""

import argparse
import os
import statistics
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, Page, sync_playwright

from dlclassics.serve.server import LOOPBACK, site_server

CHROMIUM = os.environ.get("DLCLASSICS_CHROMIUM", "/usr/bin/chromium")
# tests/test_lab.py's: no sandbox (containers), no GPU, no traffic of Chromium's own.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
GOAL_MS = 20.0
TYPED = "a man riding a wave on top of a surfboard in the ocean"  # a COCO caption

# Runs before the page's scripts: when lab.js sets window.lab, note when its ready promise
# resolves (ms since the navigation started).
HOOK_READY = """
let lab;
Object.defineProperty(window, "lab", {
  configurable: true,
  get: () => lab,
  set: (value) => {
    lab = value;
    value.ready.then(() => { window.__readyMs = performance.now(); });
  },
});
"""

# Each keydown's timeStamp, and the delay until the bars' columns are replaced in the DOM.
OBSERVE_KEYS = """
() => {
  window.__latencies = [];
  let pressed = null;
  document.getElementById("lm-text").addEventListener(
    "keydown", (event) => { pressed = event.timeStamp; }, { capture: true });
  new MutationObserver(() => {
    if (pressed !== null) window.__latencies.push(performance.now() - pressed);
    pressed = null;
  }).observe(document.getElementById("lm-columns"), { childList: true });
}
"""

# lab.lm.nextLogits alone, on every prefix of the typed text: the computation without the DOM.
COMPUTE_ONLY = """
(text) => {
  const times = [];
  for (let i = 1; i <= text.length; i++) {
    const start = performance.now();
    lab.lm.nextLogits(text.slice(0, i));
    times.push(performance.now() - start);
  }
  return times;
}
"""


@contextmanager
def serve(site: Path) -> Iterator[str]:
    """`site` over http://127.0.0.1:PORT/, by the server `dlclassics serve` runs."""
    with site_server(site, "127.0.0.1", 0, LOOPBACK) as httpd:
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{httpd.server_port}/"
        finally:
            httpd.shutdown()
            thread.join(timeout=10)


def load(browser: Browser, url: str) -> tuple[Page, dict[str, float]]:
    """The page opened in a fresh context (empty cache): it, and its bytes and timings."""
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    context.add_init_script(HOOK_READY)
    page = context.new_page()
    page.set_default_timeout(120_000)
    sizes: list[int] = []
    outside: list[str] = []

    def on_response(response: Any) -> None:
        if not response.url.startswith(url):
            outside.append(response.url)
        length = response.headers.get("content-length")
        sizes.append(int(length) if length is not None else len(response.body()))

    page.on("response", on_response)
    page.goto(url)
    page.wait_for_function("document.body.dataset.ready === 'true' && window.__readyMs")
    drawn = page.evaluate("performance.now()")
    if outside:
        raise SystemExit(f"the page requested outside its site: {outside}")
    figures = {
        "bytes": float(sum(sizes)),
        "responses": float(len(sizes)),
        "ready_ms": page.evaluate("window.__readyMs"),
        "drawn_ms": drawn,
    }
    return page, figures


def keystrokes(page: Page, count: int) -> tuple[list[float], list[float]]:
    """Per keystroke: keydown to the bars' DOM mutation (ms); and nextLogits alone (ms)."""
    page.fill("#lm-text", "")
    page.evaluate(OBSERVE_KEYS)
    text = (TYPED * (count // len(TYPED) + 1))[:count]
    for n, char in enumerate(text, start=1):
        page.locator("#lm-text").press(char)
        page.wait_for_function(f"window.__latencies.length >= {n}")
    return page.evaluate("window.__latencies"), page.evaluate(COMPUTE_ONLY, text)


def draw_digit(page: Page) -> None:
    """A "7" drawn with the mouse on the MNIST canvas."""
    box = page.locator("#mnist-canvas").bounding_box()
    assert box is not None
    x, y, w = box["x"], box["y"], box["width"]
    page.mouse.move(x + 0.25 * w, y + 0.2 * w)
    page.mouse.down()
    for step in range(1, 11):  # the top bar
        page.mouse.move(x + (0.25 + 0.05 * step) * w, y + 0.2 * w)
    for step in range(1, 16):  # the slanted stroke
        page.mouse.move(x + (0.75 - 0.02 * step) * w, y + (0.2 + 0.045 * step) * w)
    page.mouse.up()
    page.locator("#mnist-columns table tr").nth(9).wait_for()


def screenshots(browser: Browser, url: str, folder: Path) -> list[Path]:
    """The three tabs at a laptop's and a phone's width, as folder/lab-<tab>-<width>.png."""
    shots = []
    for width, height, phone in ((1100, 900, False), (360, 740, True)):
        context = browser.new_context(
            viewport={"width": width, "height": height}, has_touch=phone, is_mobile=phone
        )
        page = context.new_page()
        page.goto(url)
        page.wait_for_function("document.body.dataset.ready === 'true'")
        page.fill("#lm-text", "a man riding a")  # fill fires "input": the bars follow
        page.fill("#lm-sentence", "a man riding a wave on a surfboard")
        for tab in ("lm", "mnist", "xor"):
            page.click(f"button[data-tab={tab}]")
            if tab == "mnist" and page.locator("#mnist-canvas").is_enabled():
                draw_digit(page)
            if tab == "xor":
                xor_mid_training(page)
            path = folder / f"lab-{tab}-{width}.png"
            page.screenshot(path=str(path), full_page=tab == "xor")
            shots.append(path)
        context.close()
    return shots


# A control of the XOR tab set as a user sets it: its value, then its change event.
SET_CONTROL = """([id, value]) => { const c = document.getElementById(id);
  if (c.type === "checkbox") c.checked = value; else c.value = String(value);
  c.dispatchEvent(new Event("change")); }"""

XOR_SPEEDS = (20, 100, 500, 2000)  # epochs a frame: the tab's speed control
XOR_GOAL = 1000  # epochs per second of live training, k = 4, drawing every frame


def xor_mid_training(page: Page) -> None:
    """A k = 4 net 150 epochs into its training: the hidden units are taking their shapes."""
    for id, value in (("xor-k", 4), ("xor-seed", 1), ("xor-epochs", 2000)):
        page.evaluate(SET_CONTROL, [id, value])
    page.select_option("#xor-speed", "5")
    page.click("#xor-play")
    page.wait_for_function(
        "Number(document.getElementById('xor-epoch').textContent.split(' ')[1]) >= 150"
    )
    page.click("#xor-play")  # pause


# Plays the run for `ms` and counts the epochs trained and the frames drawn (each frame trains
# `speed` epochs, then draws every surface, the network, the loss curve and the truth table).
PLAY = """async ([speed, ms]) => {
  const epoch = () => Number(document.getElementById("xor-epoch").textContent.split(" ")[1]);
  document.getElementById("xor-speed").value = String(speed);
  document.getElementById("xor-reset").click();
  document.getElementById("xor-play").click();
  await new Promise((resolve) => setTimeout(resolve, 300));  // past the first frames
  const start = performance.now(), first = epoch();
  await new Promise((resolve) => setTimeout(resolve, ms));
  const epochs = epoch() - first, seconds = (performance.now() - start) / 1000;
  document.getElementById("xor-play").click();
  return [epochs / seconds, epochs / speed / seconds];
}"""


def xor_figures(page: Page, seconds: float) -> list[tuple[int, float, float]]:
    """Per speed: the epochs per second of the XOR tab's live training of a k = 4 net, and the
    frames drawn per second."""
    page.click("button[data-tab=xor]")
    for id, value in (("xor-k", 4), ("xor-epochs", 10**6)):
        page.evaluate(SET_CONTROL, [id, value])
    return [(speed, *page.evaluate(PLAY, [speed, 1000 * seconds])) for speed in XOR_SPEEDS]


MNIST_GOAL_MS = 30.0  # the budget for a redraw of every model and the chosen CNN's maps
MNIST_GOAL_BYTES = 16 * 2**20

REDRAW = """(rounds) => {
  const models = lab.models.filter((m) => m.kind === "mnist");
  const cnn = models.find((m) => m.card.results && m.card.results.best) || models.at(-1);
  // A vertical stroke: the input matters little to the arithmetic's time.
  const pixels = Array.from({ length: 784 }, (_, i) => (i % 28 > 10 && i % 28 < 16 ? 1 : 0));
  const times = [];
  for (let r = 0; r < rounds; r++) {
    const start = performance.now();
    for (const m of models) lab.mnist.predict(pixels, m.name);
    lab.mnist.activations(pixels, cnn.name);
    times.push(performance.now() - start);
  }
  return times;
}"""


def mnist_figures(page: Page, site: Path, rounds: int = 21) -> tuple[int, list[float]] | None:
    """What the MNIST models cost: their files' bytes, and the arithmetic of a redraw (every
    model's probabilities and the chosen CNN's maps, performance.now() around it); None for a
    site without MNIST models."""
    names = page.evaluate("() => lab.models.filter((m) => m.kind === 'mnist').map((m) => m.name)")
    if not names:
        return None
    files = [f for name in names for f in (site / "models" / name).iterdir()]
    return sum(f.stat().st_size for f in files), page.evaluate(REDRAW, rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("site", type=Path)
    parser.add_argument("--loads", type=int, default=3)
    parser.add_argument("--keystrokes", type=int, default=30)
    parser.add_argument("--xor-seconds", type=float, default=3.0)
    parser.add_argument("--screenshots", type=Path, default=None)
    args = parser.parse_args()
    on_disk = sum(f.stat().st_size for f in args.site.rglob("*") if f.is_file())
    with serve(args.site) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        loads = []
        for _ in range(args.loads):
            page, figures = load(browser, url)
            loads.append(figures)
            page.context.close()
        page, _ = load(browser, url)
        mnist = mnist_figures(page, args.site)
        has_lm = page.evaluate("() => lab.models.some((m) => m.kind === 'lm')")
        latencies, compute = keystrokes(page, args.keystrokes) if has_lm else ([], [])
        xor = xor_figures(page, args.xor_seconds)
        page.context.close()
        if args.screenshots is not None:
            for path in screenshots(browser, url, args.screenshots):
                print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")
        browser.close()
    print(f"site on disk: {on_disk:,} bytes")
    print(f"bytes loaded: {loads[0]['bytes']:,.0f} in {loads[0]['responses']:.0f} responses")
    ready = statistics.median(f["ready_ms"] for f in loads)
    drawn = statistics.median(f["drawn_ms"] for f in loads)
    print(
        f"navigation to lab.ready: {ready:.0f} ms, to the page drawn: {drawn:.0f} ms "
        f"(median of {len(loads)} cold loads: {[round(f['ready_ms']) for f in loads]})"
    )
    if latencies:
        median, alone = statistics.median(latencies), statistics.median(compute)
        verdict = "under" if median < GOAL_MS else "OVER"
        print(
            f"keystroke to bars (keydown to the DOM mutation): median {median:.1f} ms, "
            f"max {max(latencies):.1f} ms over {len(latencies)} keystrokes, {verdict} the "
            f"{GOAL_MS:.0f} ms goal; lab.lm.nextLogits alone: median {alone:.1f} ms"
        )
    if mnist is not None:
        size, redraws = mnist
        median = statistics.median(redraws)
        print(
            f"MNIST: {size:,} bytes of models ({'under' if size < MNIST_GOAL_BYTES else 'OVER'}"
            f" 16 MiB); a redraw of every model and the chosen CNN's maps: median {median:.1f}"
            f" ms, max {max(redraws):.1f} ms over {len(redraws)} "
            f"({'under' if median < MNIST_GOAL_MS else 'OVER'} the {MNIST_GOAL_MS:.0f} ms goal)"
        )

    for speed, epochs, frames in xor:
        print(
            f"XOR, k = 4, {speed} epochs a frame: {epochs:,.0f} epochs/s while drawing "
            f"({frames:.0f} frames/s){'' if epochs >= XOR_GOAL else f', under {XOR_GOAL:,}'}"
        )


if __name__ == "__main__":
    main()
