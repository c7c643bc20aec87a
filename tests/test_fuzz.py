"""Fuzzing with Hypothesis: any input gives a result or an InputError (the CLI: one line, exit 2),
never another exception.

Example counts (per test, `max_examples`) are written down in docs/reliability.md.
"""

import gzip
import json
import math
import re

import numpy as np
import pytest
from conftest import assert_one_line_error, idx_bytes, invoke_cli
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from dlclassics.core.errors import InputError
from dlclassics.lm.corpus import MAX_SENTENCE_WORDS, read_sentences
from dlclassics.mnist.data import IMAGE_MAGIC, LABEL_MAGIC, read_idx
from dlclassics.serve.server import LOOPBACK, requested_host
from dlclassics.xor.solutions import HAND_WEIGHTS

FUZZ = settings(
    max_examples=500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
VALID = {
    IMAGE_MAGIC: idx_bytes(np.arange(3 * 784).reshape(3, 28, 28) % 256, IMAGE_MAGIC),
    LABEL_MAGIC: idx_bytes(np.arange(7) % 10, LABEL_MAGIC),
}


@st.composite
def mutated(draw, data: bytes) -> bytes:
    """A valid file with bytes changed, cut, inserted or appended."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "cut", "insert", "append"]))
        at = draw(st.integers(0, len(out)))
        if kind == "flip" and at < len(out):
            out[at] = draw(st.integers(0, 255))
        elif kind == "cut":
            del out[at:]
        elif kind == "insert":
            out[at:at] = draw(st.binary(max_size=8))
        else:
            out += draw(st.binary(max_size=64))
    return bytes(out)


def idx_inputs(magic: int):
    valid = VALID[magic]
    # The valid file with its header's count replaced, up to 2^32 - 1 items
    counts = st.integers(0, 2**32 - 1).map(lambda n: n.to_bytes(4, "big"))
    recounted = counts.map(lambda count: valid[:4] + count + valid[8:])
    return st.one_of(st.binary(max_size=2000), mutated(valid), st.just(valid), recounted)


def check_idx(tmp_path, raw: bytes, magic: int, gz: bool) -> None:
    path = tmp_path / ("f.gz" if gz else "f")
    path.write_bytes(gzip.compress(raw, mtime=0) if gz else raw)
    try:
        array = read_idx(path, magic)
    except InputError as e:
        assert "\n" not in str(e)
        event("InputError")
        return
    event("read")
    assert array.dtype == np.uint8 and array.ndim == magic & 0xFF


@FUZZ
@given(raw=idx_inputs(IMAGE_MAGIC), gz=st.booleans())
def test_idx_images(tmp_path, raw, gz):
    check_idx(tmp_path, raw, IMAGE_MAGIC, gz)


@FUZZ
@given(raw=idx_inputs(LABEL_MAGIC), gz=st.booleans())
def test_idx_labels(tmp_path, raw, gz):
    check_idx(tmp_path, raw, LABEL_MAGIC, gz)


@FUZZ
@given(raw=st.one_of(st.binary(max_size=2000), mutated(gzip.compress(VALID[IMAGE_MAGIC]))))
def test_idx_corrupt_gzip(tmp_path, raw):
    (tmp_path / "f.gz").write_bytes(raw)
    try:
        assert read_idx(tmp_path / "f.gz", IMAGE_MAGIC).shape[1:] == (28, 28)
        event("read")
    except InputError as e:
        assert "\n" not in str(e)
        event("InputError")


TRICKY = ["\x85", "\u2028", "\u2029", "\x0b", "\x0c", "\x1c", "\r", "\r\n", "\x00", "\ufeff"]
corpus_text = st.lists(
    st.one_of(st.text(max_size=30), st.sampled_from(TRICKY), st.just("word " * 5000)),
    max_size=20,
).map("\n".join)


@FUZZ
@given(
    raw=st.one_of(st.binary(max_size=3000), corpus_text.map(lambda t: t.encode("utf-8"))),
    max_length=st.one_of(st.none(), st.integers(1, 50)),
)
def test_corpus_reader(tmp_path, raw, max_length):
    path = tmp_path / "corpus.txt"
    path.write_bytes(raw)
    try:
        sentences = read_sentences(path, max_length)
    except InputError as e:
        assert "\n" not in str(e)
        event("InputError")
        return
    event("read")
    assert sentences and all(s and all(w and w == w.lower() for w in s) for s in sentences)
    assert max_length is None or all(len(s) <= max_length for s in sentences)
    assert all(len(s) <= MAX_SENTENCE_WORDS for s in sentences)


def numbers():
    return st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.integers(-(10**20), 10**20),
        st.booleans(),
        st.none(),
        st.text(max_size=5),
    )


json_values = st.recursive(
    numbers(),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=20,
)


@st.composite
def networks(draw) -> list:
    """The built-in networks with some of their fields replaced or removed."""
    specs = [dict(s) for s in draw(st.lists(st.sampled_from(HAND_WEIGHTS), min_size=1, max_size=3))]
    for spec in specs:
        for key in draw(st.lists(st.sampled_from(sorted(spec)), max_size=3)):
            if draw(st.booleans()):
                spec.pop(key, None)
            else:
                spec[key] = draw(st.one_of(json_values, st.integers(-3, 10**12)))
    return specs


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(spec=st.one_of(json_values, networks()))
def test_xor_solve_weights(tmp_path_factory, spec):
    tmp = tmp_path_factory.mktemp("xor")
    (tmp / "w.json").write_text(json.dumps(spec))
    out = tmp / "run"
    result = invoke_cli(
        "xor", "solve", "--weights", str(tmp / "w.json"), "--out", str(out), "--quiet"
    )
    event(f"exit {result.returncode}")
    if result.returncode == 0:
        results = json.loads((out / "results.json").read_text(), parse_constant=pytest.fail)
        assert results["configs"] and all(math.isfinite(n["loss"]) for n in results["configs"])
    else:
        assert_one_line_error(result, out)


# `serve`'s Host check: any header names a host or none, and only this machine's names pass.
@settings(max_examples=500, deadline=None)
@given(
    header=st.one_of(
        st.text(max_size=30),
        st.builds(
            "{}{}".format,
            st.sampled_from([*LOOPBACK, "LOCALHOST", "[::1", "::1", "evil.example", ""]),
            st.sampled_from(["", ":", ":80", ":8000", ":x", "]", ":80:80", ".", "@evil"]),
        ),
    )
)
def test_serve_host_headers(header):
    name = requested_host(header)
    event("accepted" if name in LOOPBACK else "refused")
    assert name is None or isinstance(name, str)
    if name in LOOPBACK:  # then the header is one of this machine's names, and a port
        assert re.fullmatch(r"(localhost|127\.0\.0\.1|\[[0:]*1\])(:[0-9]+)?", header, re.I), header
