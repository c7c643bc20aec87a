"""The demo under load: 16 clients, 2,000 requests over every endpoint over 127.0.0.1, valid and
invalid mixed; no 5xx, no dropped connection, and the same request always gets the same answer."""

import random
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import BLANK_PIXELS, digit_pixels, make_cnn, make_lm

DEMO = "the demo extra is not installed: pip install 'dlclassics[demo]'"
pytest.importorskip("fastapi", reason=DEMO)
uvicorn = pytest.importorskip("uvicorn", reason=DEMO)
httpx = pytest.importorskip("httpx", reason=DEMO)

from dlclassics.serve.app import MAX_BODY, create_app  # noqa: E402
from dlclassics.serve.server import config as serve_config  # noqa: E402

CLIENTS, REQUESTS = 16, 2000

# (name, method, url, body or query, the statuses it may get); deterministic where valid.
CASES = [
    ("next", "POST", "/api/lm/next", {"text": "the cat", "k": 5}, {200}),
    ("next", "POST", "/api/lm/next", {"text": "", "k": 5}, {400}),
    ("generate", "POST", "/api/lm/generate", {"text": "the", "length": 8, "seed": 3}, {200}),
    ("generate", "POST", "/api/lm/generate", {"text": "the", "length": 10**9}, {422}),
    ("prob", "POST", "/api/lm/prob", {"text": "the cat sat"}, {200}),
    ("prob", "POST", "/api/lm/prob", {"text": "the " * 100_000}, {413}),
    ("predict", "POST", "/api/mnist/predict", {"pixels": digit_pixels()}, {200}),
    ("predict", "POST", "/api/mnist/predict", {"pixels": BLANK_PIXELS}, {400}),
    ("predict", "POST", "/api/mnist/predict", {"pixels": [0.5] * 10**6}, {413}),
    ("surface", "GET", "/api/xor/surface", {"k": 2, "bypass": "false", "size": 41}, {200}),
    ("surface", "GET", "/api/xor/surface", {"k": 3, "bypass": "false"}, {400}),
    ("status", "GET", "/api/status", None, {200}),
    ("page", "GET", "/", None, {200}),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    app = create_app(make_lm(root / "lm"), make_cnn(root / "cnn"))
    # The demo's own settings: its request deadline and connection limit are under load too.
    server = uvicorn.Server(serve_config(app, "127.0.0.1", 0))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def send(client: httpx.Client, case) -> tuple[int, bytes, float]:
    _, method, url, body, _ = case
    start = time.perf_counter()
    response = client.get(url, params=body) if method == "GET" else client.post(url, json=body)
    return response.status_code, response.content, time.perf_counter() - start


@pytest.mark.slow
def test_the_demo_under_load(server):
    with httpx.Client(base_url=server, timeout=30) as client:
        expected = {i: send(client, case)[:2] for i, case in enumerate(CASES)}
    for i, case in enumerate(CASES):
        assert expected[i][0] in case[4], (case, expected[i])
    assert len(str([0.5] * 10**6)) > MAX_BODY

    rng = random.Random(0)
    order = [rng.randrange(len(CASES)) for _ in range(REQUESTS)]

    def client_run(share: list[int]) -> list[tuple[int, int, bytes, float]]:
        with httpx.Client(base_url=server, timeout=30) as client:
            return [(i, *send(client, CASES[i])) for i in share]

    start = time.perf_counter()
    with ThreadPoolExecutor(CLIENTS) as pool:
        done = [
            r
            for rs in pool.map(client_run, [order[c::CLIENTS] for c in range(CLIENTS)])
            for r in rs
        ]
    wall = time.perf_counter() - start
    assert len(done) == REQUESTS  # no dropped connection: httpx would have raised
    latencies: dict[str, list[float]] = {}
    for i, status, content, seconds in done:
        assert status < 500
        assert (status, content) == expected[i], CASES[i][:3]  # the same answer under load
        latencies.setdefault(CASES[i][0], []).append(seconds)
    print(f"\n{REQUESTS} requests, {CLIENTS} clients, {wall:.1f} s ({REQUESTS / wall:.0f}/s)")
    for name, values in sorted(latencies.items()):
        q = statistics.quantiles(values, n=100)
        print(
            f"{name}: {len(values)} requests, p50 {q[49] * 1000:.1f} ms, p99 {q[98] * 1000:.1f} ms"
        )
