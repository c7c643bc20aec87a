"""The lab's XOR tab in headless Chromium: its training is `xor train`'s (and `xor sweep`'s early
stopping) in float64, and the page trains, edits, loads, links and gives its command line.

The test writes its own sites (the format `dlclassics export` writes): one with an exported
`xor train` net, one with no model at all (hand-set presets only), served by http.server.

Skips when Playwright, safetensors or Chromium is missing, unless DLCLASSICS_REQUIRE_BROWSER=1
(as CI sets): then it fails.
"""

import contextlib
import json
import math
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from conftest import chromium, invoke_cli, read_json, require_browser, serve_folder, write_lab_site

from dlclassics.xor.batched import Weights, train_batched
from dlclassics.xor.config import GridPoint
from dlclassics.xor.data import INPUTS, TARGETS, VAL_INPUTS, VAL_TARGETS
from dlclassics.xor.model import XorNet, net_name
from dlclassics.xor.solutions import HAND_WEIGHTS
from dlclassics.xor.train import train

pytestmark = pytest.mark.slow  # a browser start per module

TOLERANCE = 1e-9  # float64 here and in the browser, each operation in PyTorch's order
EPOCHS = 300
OPTIMIZERS = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}
EXPORTED = "train-k2"


# ---- the sites --------------------------------------------------------------------------------


def _write_xor(site: Path, name: str, net: XorNet) -> dict:
    """One exported XOR net, as `dlclassics export` writes an `xor train` trial."""
    from safetensors.torch import save_file

    folder = site / "models" / name
    folder.mkdir(parents=True)
    save_file(
        {k: v.float().contiguous() for k, v in net.state_dict().items()},
        folder / "weights.safetensors",
    )
    architecture = {"k": net.k, "bypass": net.bypass, "temperature": net.temperature}
    card = {"name": name, "kind": "xor", "command": "xor train", "architecture": architecture}
    card["text"] = f"{name}: a net of xor train."
    (folder / "card.json").write_text(json.dumps(card))
    return {
        "name": name,
        "kind": "xor",
        "path": f"models/{name}",
        "run": "runs/train",
        "command": "xor train",
    }


@pytest.fixture(scope="module")
def exported_net() -> XorNet:
    torch.manual_seed(0)
    return XorNet(2, False, 0.5)


@pytest.fixture(scope="module")
def server(tmp_path_factory, exported_net) -> Iterator[str]:
    require_browser()
    site = tmp_path_factory.mktemp("site")
    write_lab_site(site, [_write_xor(site, EXPORTED, exported_net)])
    with serve_folder(site) as url:
        yield url


@pytest.fixture(scope="module")
def bare_server(tmp_path_factory) -> Iterator[str]:
    """A site that exported no model: the XOR tab has its hand-set presets only."""
    require_browser()
    site = tmp_path_factory.mktemp("bare")
    write_lab_site(site, [])
    with serve_folder(site) as url:
        yield url


@pytest.fixture(scope="module")
def browser(server):
    with chromium() as browser:
        yield browser


@contextlib.contextmanager
def lab(browser, url: str, **context) -> Iterator:
    """The page at `url`, drawn; on leaving, it has raised no error nor logged one."""
    context.setdefault("viewport", {"width": 1100, "height": 900})
    page = browser.new_page(accept_downloads=True, **context)
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(url)
    page.wait_for_function("document.body.dataset.ready === 'true'")
    yield page
    page.close()
    assert errors == []


@pytest.fixture
def page(browser, server):
    with lab(browser, server + "#xor") as page:
        yield page


# ---- helpers ----------------------------------------------------------------------------------


def _rows(rows: list[list[float]]) -> list[float]:
    return [v for row in rows for v in row]


def _flat(w: dict) -> list[float]:
    return [*_rows(w["hidden_weight"]), *w["hidden_bias"], *w["out_weight"], w["out_bias"]]


def _close(a: list[float], b: list[float]) -> bool:
    return len(a) == len(b) and max(abs(x - y) for x, y in zip(a, b, strict=True)) < TOLERANCE


def _net(weights: dict, temperature: float) -> XorNet:
    net = XorNet(weights["k"], weights["bypass"], temperature).double()
    names = ("hidden_weight", "hidden_bias", "out_weight", "out_bias")
    net.set_weights(*(weights[n] for n in names))
    return net


def _set(page, id: str, value) -> None:
    """A control set as a user sets it: its value, then its change event."""
    page.evaluate(
        """([id, value]) => { const c = document.getElementById(id);
        if (c.type === "checkbox") c.checked = value; else c.value = String(value);
        c.dispatchEvent(new Event("change")); }""",
        [id, value],
    )


def _epoch(page) -> int:
    return int(page.inner_text("#xor-epoch").split()[1])


def _loss(page) -> float:
    return float(page.inner_text("#xor-loss-value"))


def _titles(page) -> list[str]:
    """Every weight as the network drawing names it (its edges' and biases' titles)."""
    return page.eval_on_selector_all(
        "#xor-network [data-param] title", "ts => ts.map(t => t.textContent)"
    )


def _state(page) -> dict[str, str]:
    return dict(p.split("=", 1) for p in page.evaluate("location.hash").split("?", 1)[1].split("&"))


def _truth_right(page) -> bool:
    return page.locator("#xor-truth tr.right").count() == 4


# ---- the training is PyTorch's ----------------------------------------------------------------

CASES = [  # k, bypass, optimizer, temperature, lr, init, seed
    (1, True, "adam", 0.5, 0.1, "linear", 0),
    (1, True, "sgd", 1.0, 0.5, "xavier", 1),
    (1, False, "adam", 2.0, 0.2, "linear", 7),
    (2, False, "adam", 0.5, 0.05, "linear", 1),
    (2, False, "sgd", 0.25, 0.3, "linear", 2),
    (2, True, "adam", 1.0, 0.01, "xavier", 3),
    (4, False, "adam", 0.25, 0.1, "xavier", 4),
    (4, False, "sgd", 1.0, 0.5, "xavier", 5),
    (4, True, "sgd", 0.5, 0.1, "linear", 6),
    (4, True, "adam", 0.5, 0.02, "linear", 8),
]


@pytest.mark.parametrize("k, bypass, optimizer, temperature, lr, init, seed", CASES)
def test_training_is_xor_trains_in_float64(page, k, bypass, optimizer, temperature, lr, init, seed):
    start, got = page.evaluate(
        """([k, bypass, optimizer, temperature, lr, init, seed, epochs]) => {
        const weights = lab.xor.init({k, bypass, init, seed});
        return [weights, lab.xor.train({k, bypass, temperature, optimizer, lr, epochs, weights})];
        }""",
        [k, bypass, optimizer, temperature, lr, init, seed, EPOCHS],
    )
    net = _net(start, temperature)
    losses = train(net, EPOCHS, lr, optimizer=optimizer)
    assert got["losses"][-1] < got["losses"][0]  # it learns: not a comparison of two still nets
    assert _close(got["losses"], losses)
    assert _close(_flat(got["weights"]), _flat(net.weights()))
    assert set(got) == {"losses", "weights"}  # epochs and stopped come with early stopping only


def test_init_draws_from_the_seed_within_each_inits_bounds(page):
    draw = "(o) => lab.xor.init(o)"
    linear = page.evaluate(draw, {"k": 200, "bypass": True, "init": "linear", "seed": 3})
    assert linear == page.evaluate(draw, {"k": 200, "bypass": True, "init": "linear", "seed": 3})
    assert linear != page.evaluate(draw, {"k": 200, "bypass": True, "init": "linear", "seed": 4})
    assert (linear["k"], linear["bypass"], len(linear["out_weight"])) == (200, True, 202)
    # nn.Linear's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), weights and biases alike.
    for values, bound in [
        (_rows(linear["hidden_weight"]) + linear["hidden_bias"], 1 / math.sqrt(2)),
        (linear["out_weight"], 1 / math.sqrt(202)),
    ]:
        assert max(map(abs, values)) <= bound and max(map(abs, values)) > 0.9 * bound
    # Xavier-uniform with each layer's fan-in and fan-out, zero biases: as `xor sweep`.
    xavier = page.evaluate(draw, {"k": 200, "bypass": False, "init": "xavier", "seed": 3})
    assert xavier["hidden_bias"] == [0] * 200 and xavier["out_bias"] == 0
    for values, bound in [
        (_rows(xavier["hidden_weight"]), math.sqrt(6 / 202)),
        (xavier["out_weight"], math.sqrt(6 / 201)),
    ]:
        assert max(map(abs, values)) <= bound and max(map(abs, values)) > 0.9 * bound


def _one_run(start: dict, temperature: float, optimizer: str, lr: float, rule) -> dict:
    """`xor sweep`'s rule, one run in float64: after each step the validation loss; an
    improvement is a loss below the best minus min_delta; stop once there has been none for
    `patience` epochs and the best is below `goal`."""
    net = _net(start, temperature)
    step = OPTIMIZERS[optimizer](net.parameters(), lr=lr)
    x, y = INPUTS.double(), TARGETS.double()
    val_x, val_y = VAL_INPUTS.double(), VAL_TARGETS.double()
    best, last_improved, losses = math.inf, 0, []
    for epoch in range(1, rule.max_epochs + 1):
        loss = F.binary_cross_entropy(net(x), y)
        step.zero_grad()
        loss.backward()
        step.step()
        losses.append(loss.item())
        with torch.no_grad():
            val = F.binary_cross_entropy(net(val_x), val_y).item()
        if val < best - rule.min_delta:
            best, last_improved = val, epoch
        if epoch - last_improved >= rule.patience and best < rule.goal:
            return {"epochs": epoch, "stopped": True, "losses": losses, "weights": net.weights()}
    return {"epochs": rule.max_epochs, "stopped": False, "losses": losses, "weights": net.weights()}


def _batched_epochs(start: dict, lr: float, rule) -> tuple[int, bool]:
    """The epochs and success of the same run in `xor sweep`'s batched trainer (SGD, T = 1)."""
    k, skip = start["k"], 2 if start["bypass"] else 0
    hw = torch.tensor(start["hidden_weight"], dtype=torch.float64)
    hidden = torch.stack([hw[:, 0], hw[:, 1], torch.tensor(start["hidden_bias"])]).unsqueeze(2)
    out = torch.tensor(start["out_weight"], dtype=torch.float64)
    direct = [out[0], out[1]] if skip else [torch.tensor(0.0)] * 2
    weights = Weights(
        hidden.double(),
        out[skip:].reshape(k, 1),
        torch.stack([*direct, torch.tensor(float(start["out_bias"]))]).double().reshape(3, 1),
    )
    result = train_batched([GridPoint(lr, k, start["bypass"])], weights, rule, dtype=torch.float64)
    return int(result.epochs[0]), bool(result.succeeded[0])


EARLY = [  # k, bypass, optimizer, temperature, lr, seed, max_epochs: stops at about
    (2, False, "sgd", 1.0, 0.5, 0, 6000),  # 2583
    (4, True, "sgd", 1.0, 0.5, 1, 6000),  # 2223
    (1, True, "sgd", 1.0, 0.25, 1, 6000),  # 4112
    (2, False, "adam", 0.5, 0.05, 1, 2000),  # 471
    (2, False, "sgd", 1.0, 0.5, 3, 1500),  # not by then: all the epochs run
]


@pytest.mark.parametrize("k, bypass, optimizer, temperature, lr, seed, max_epochs", EARLY)
def test_early_stopping_is_xor_sweeps_rule(
    page, k, bypass, optimizer, temperature, lr, seed, max_epochs
):
    rule = SimpleNamespace(max_epochs=max_epochs, patience=10, min_delta=1e-4, goal=0.2)
    start, got = page.evaluate(
        """([k, bypass, optimizer, temperature, lr, seed, maxEpochs]) => {
        const weights = lab.xor.init({k, bypass, init: "xavier", seed});
        const earlyStopping = {patience: 10, minDelta: 1e-4, goal: 0.2, maxEpochs};
        return [weights, lab.xor.train({temperature, optimizer, lr, weights, earlyStopping})];
        }""",
        [k, bypass, optimizer, temperature, lr, seed, max_epochs],
    )
    want = _one_run(start, temperature, optimizer, lr, rule)
    assert (got["epochs"], got["stopped"]) == (want["epochs"], want["stopped"])
    assert got["stopped"] == (max_epochs > 1500)  # the cases above: stopped, or ran to the end
    assert len(got["losses"]) == got["epochs"]
    assert _close(got["losses"], want["losses"])
    assert _close(_flat(got["weights"]), _flat(want["weights"]))
    if optimizer == "sgd" and temperature == 1.0:  # what `xor sweep` trains
        assert _batched_epochs(start, lr, rule) == (got["epochs"], got["stopped"])


def test_bad_settings_are_errors(page):
    for call, message in [
        ("lab.xor.train({optimizer: 'rmsprop'})", "optimizer must be one of adam, sgd"),
        ("lab.xor.train({k: 0})", "k must be"),
        ("lab.xor.train({temperature: 0})", "temperature must be positive"),
        ("lab.xor.train({epochs: 1.5})", "epochs must be"),
        ("lab.xor.train({epochs: 1e7})", "epochs must be a whole number from 1 to 1000000"),
        ("lab.xor.train({earlyStopping: {maxEpochs: 1e7}})", "from 1 to 1000000"),
        ("lab.xor.init({init: 'he'})", "init must be one of linear, xavier"),
        ("lab.xor.train({k: 3, weights: lab.xor.init({k: 2})})", "k=2"),
    ]:
        with pytest.raises(Exception, match=message):
            page.evaluate(call)


# ---- the page ---------------------------------------------------------------------------------


def test_play_trains_until_the_truth_table_is_right(page):
    first = _loss(page)
    assert _epoch(page) == 0 and not _truth_right(page)
    page.select_option("#xor-speed", "500")
    page.click("#xor-play")
    page.wait_for_function("document.getElementById('xor-status').textContent.includes('done')")
    assert _epoch(page) == 2000  # the epochs asked for, then it pauses
    assert _loss(page) < first / 100
    assert _truth_right(page)
    assert page.inner_text("#xor-play") == "Play"


def test_pause_step_and_reset(page):
    start, first = _titles(page), _loss(page)
    for _ in range(3):
        page.click("#xor-step")
    assert _epoch(page) == 3 and _loss(page) != first and _titles(page) != start
    page.click("#xor-play")
    page.wait_for_function(
        "Number(document.getElementById('xor-epoch').textContent.split(' ')[1]) > 50"
    )
    page.click("#xor-play")  # pause
    paused = _epoch(page)
    page.wait_for_timeout(200)
    assert _epoch(page) == paused < 2000
    page.click("#xor-reset")
    assert _epoch(page) == 0 and _loss(page) == first and _titles(page) == start
    # New weights: the next seed's.
    page.click("#xor-new")
    assert page.input_value("#xor-seed") == "2" and _titles(page) != start


def test_editing_a_weight_redraws_every_surface_and_the_loss(page):
    surfaces = (
        "() => [...document.querySelectorAll('#xor-canvas, #xor-hidden canvas')]"
        ".map((c) => c.toDataURL())"
    )
    before, loss = page.evaluate(surfaces), _loss(page)
    page.locator("#xor-network [data-param='hidden_bias.0']").click()
    assert page.inner_text("#xor-edit-name") == "hidden_bias.0"
    page.fill("#xor-edit-value", "4")
    after = page.evaluate(surfaces)
    assert after[0] != before[0] and after[1] != before[1]  # the output and h1
    assert after[2] == before[2]  # h2 does not depend on h1's bias
    assert _loss(page) != loss
    assert _state(page)["w"].split(",")[4] == "4"  # hidden_bias[0] follows the 2 x 2 weights
    assert "dlclassics xor solve --weights weights.json --temperature 0.5" in page.inner_text(
        "#xor-command"
    )
    page.locator("#xor-network [data-param='out_weight.1']").click()  # an edge
    page.fill("#xor-edit-value", "-3")
    assert _state(page)["w"].split(",")[7] == "-3"
    # A weight of 0 is drawn thin, but a tap beside it still takes it.
    page.fill("#xor-edit-value", "0")
    page.locator("#xor-network [data-param='out_bias']").click()
    assert page.inner_text("#xor-edit-name") == "out_bias"
    box = page.locator("#xor-network [data-param='out_weight.1']").bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2 + 3)
    assert page.inner_text("#xor-edit-name") == "out_weight.1"


def test_presets_load_the_hand_set_and_the_exported_nets(page, exported_net):
    names = page.eval_on_selector_all("#xor-preset option", "os => os.map(o => o.value)")
    assert names == ["", "k1-bypass (hand-set)", "k2 (hand-set)", "k4 (hand-set)", EXPORTED]
    page.select_option("#xor-preset", "k1-bypass (hand-set)")
    assert page.input_value("#xor-k") == "1" and page.is_checked("#xor-bypass")
    assert page.input_value("#xor-temperature") == "0.1"
    assert _truth_right(page) and _epoch(page) == 0
    # The centre x1 = x2 = 0.5 of the hand-set k1-bypass net at T = 0.1 is inside the XOR band.
    assert page.evaluate(
        "(() => { const [r, g, b] = document.getElementById('xor-canvas').getContext('2d')"
        ".getImageData(120, 120, 1, 1).data; return b === 255 && r < 128; })()"
    )
    assert _state(page)["w"] == "1,1,-1.5,1,1,-2,-0.5"
    # The page's copy of the hand-set nets is solutions.py's, every one.
    for spec in HAND_WEIGHTS:
        page.select_option("#xor-preset", f"{net_name(spec['k'], spec['bypass'])} (hand-set)")
        assert [float(v) for v in _state(page)["w"].split(",")] == _flat(spec)
    page.select_option("#xor-preset", EXPORTED)
    assert page.input_value("#xor-k") == "2" and not page.is_checked("#xor-bypass")
    assert page.input_value("#xor-temperature") == "0.5"  # the net's own
    shown = [float(v) for v in _state(page)["w"].split(",")]
    stored = _flat(exported_net.weights())
    assert max(abs(a - b) for a, b in zip(shown, stored, strict=True)) < 1e-7  # float32
    assert "a net of xor train" in page.inner_text("#xor-card")


def test_the_url_restores_the_state(browser, server, page):
    _set(page, "xor-k", 4)
    _set(page, "xor-bypass", True)
    _set(page, "xor-optimizer", "sgd")
    _set(page, "xor-lr", 0.3)
    _set(page, "xor-early", True)
    _set(page, "xor-seed", 9)
    for _ in range(7):
        page.click("#xor-step")
    url, titles, loss = page.url, _titles(page), _loss(page)
    assert _state(page)["at"] == "7" and _state(page)["early"] == "10,0.0001,0.2"
    with lab(browser, url) as again:
        assert again.locator("#xor").get_attribute("class") == "panel active"
        assert again.input_value("#xor-k") == "4" and again.is_checked("#xor-bypass")
        assert again.input_value("#xor-optimizer") == "sgd"
        assert again.input_value("#xor-lr") == "0.3" and again.is_checked("#xor-early")
        assert _epoch(again) == 7 and _loss(again) == loss and _titles(again) == titles
        assert again.url == url
    # A link pasted into an open tab changes only the hash: its state is restored too.
    with lab(browser, server + "#xor") as open_tab:
        open_tab.evaluate("url => { location.hash = new URL(url).hash; }", url)
        open_tab.wait_for_function("document.getElementById('xor-k').value === '4'")
        assert _epoch(open_tab) == 7 and _loss(open_tab) == loss and _titles(open_tab) == titles
    # A link that does not fit is said, and the tab starts from its defaults.
    for bad in ("#xor?k=2&bypass=0&w=1,2,3", "#xor?k=1&bypass=0&w=1,,2,3,4"):
        with lab(browser, server + bad) as broken:
            assert "not restored" in broken.inner_text("#xor-error")
            assert _epoch(broken) == 0 and broken.input_value("#xor-k") == "2"


def test_a_learning_rate_xor_train_refuses_is_refused(page):
    _set(page, "xor-lr", 1001)
    assert "the learning rate must be above 0 and at most 1000" in page.inner_text("#xor-error")
    assert "--lr 1001" not in page.inner_text("#xor-command")


@pytest.mark.parametrize("tab", ["lm", "mnist", "xor"])
def test_the_url_opens_a_tab(browser, server, tab):
    with lab(browser, f"{server}#{tab}") as page:
        assert page.locator(f"#{tab}").get_attribute("class") == "panel active"


def _download(page, tmp_path: Path) -> Path:
    with page.expect_download() as download:
        page.click("#xor-download")
    path = tmp_path / "weights.json"
    download.value.save_as(path)
    return path


def test_the_command_line_trains_the_same_net(page, tmp_path):
    _set(page, "xor-epochs", 400)
    command = page.inner_text("#xor-command")
    assert command == (
        "dlclassics xor train --k 2 --optimizer adam --lr 0.05 --epochs 400 --temperature 0.5 "
        "--dtype float64 --init weights.json"
    )
    weights = _download(page, tmp_path)
    start = page.evaluate("lab.xor.init({k: 2, bypass: false, init: 'linear', seed: 1})")
    assert json.loads(weights.read_text()) == [start]
    args = command.replace("weights.json", str(weights)).split()[1:]
    result = invoke_cli(*args, "--out", str(tmp_path / "run"), "--quiet")
    assert result.returncode == 0, result.stderr
    results = read_json(tmp_path / "run" / "results.json")
    page.select_option("#xor-speed", "2000")
    page.click("#xor-play")
    page.wait_for_function("document.getElementById('xor-status').textContent.includes('done')")
    final = _net(results["configs"][0]["weights"] | {"k": 2, "bypass": False}, 0.5)
    with torch.no_grad():
        loss = F.binary_cross_entropy(final(INPUTS.double()), TARGETS.double()).item()
    assert _loss(page) == pytest.approx(loss, rel=1e-3)  # the page shows 4 digits
    # and says what the command prints: its loss before the last step.
    printed = f"{results['configs'][0]['final_loss']:.4g}"
    assert f'# it prints "final loss {printed}"' in page.inner_text("#xor-command")
    assert f"k2: final loss {printed}," in result.stdout
    assert _close(
        results["loss_curves"]["k2"],
        page.evaluate(
            "(w) => lab.xor.train({temperature: 0.5, lr: 0.05, epochs: 400, weights: w}).losses",
            start,
        ),
    )


def test_hand_set_weights_come_with_xor_solve(page, tmp_path):
    page.select_option("#xor-preset", "k4 (hand-set)")
    command = page.inner_text("#xor-command").splitlines()
    assert command[0].startswith("dlclassics xor train --k 4 --optimizer adam")
    assert command[-1] == "dlclassics xor solve --weights weights.json --temperature 0.1"
    weights = _download(page, tmp_path)
    args = command[-1].replace("weights.json", str(weights)).split()[1:]
    result = invoke_cli(*args, "--out", str(tmp_path / "run"), "--quiet")
    assert result.returncode == 0, result.stderr
    (config,) = read_json(tmp_path / "run" / "results.json")["configs"]
    shown = page.eval_on_selector_all(
        "#xor-truth td:nth-child(4)", "ts => ts.map(t => t.textContent)"
    )
    # float32 there, float64 here: equal to the 3 decimals shown, give or take the last one's half
    assert max(abs(float(a) - b) for a, b in zip(shown, config["outputs"], strict=True)) < 6e-4


def test_early_stopping_on_the_page_gives_the_epochs_it_stopped_at(page):
    for id, value in [
        ("xor-optimizer", "sgd"),
        ("xor-lr", 0.5),
        ("xor-temperature", 1),
        ("xor-init", "xavier"),
        ("xor-seed", 0),
        ("xor-epochs", 6000),
        ("xor-early", True),
    ]:
        _set(page, id, value)
    page.select_option("#xor-speed", "2000")
    page.click("#xor-play")
    page.wait_for_function("document.getElementById('xor-status').textContent.includes('stopped')")
    want = page.evaluate(
        """lab.xor.train({lr: 0.5, optimizer: 'sgd', temperature: 1, epochs: 6000,
        weights: lab.xor.init({k: 2, init: 'xavier', seed: 0}),
        earlyStopping: {patience: 10, minDelta: 1e-4, goal: 0.2}}).epochs"""
    )
    assert _epoch(page) == want
    assert f"--epochs {want} " in page.inner_text("#xor-command")


def test_a_site_without_xor_runs_has_the_hand_set_presets(browser, bare_server):
    with lab(browser, bare_server + "#xor") as page:
        names = page.eval_on_selector_all("#xor-preset option", "os => os.map(o => o.value)")
        assert names == ["", "k1-bypass (hand-set)", "k2 (hand-set)", "k4 (hand-set)"]
        page.click("#xor-step")
        assert _epoch(page) == 1


def test_a_phone_width_has_no_horizontal_overflow(browser, server):
    phone = {"viewport": {"width": 360, "height": 740}, "has_touch": True, "is_mobile": True}
    with lab(browser, server + "#xor", **phone) as page:
        for k, bypass in [(2, False), (8, True)]:
            _set(page, "xor-k", k)
            _set(page, "xor-bypass", bypass)
            page.click("#xor-step")
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 360, (k, width)
