"""Unbounded reads (issue 18): IDX files, corpora and weights files that claim or hold more than
they should, devices, FIFOs, and numbers past what a float holds. Each worst case runs the real
command under an 8 GB address-space limit (`run_limited`) and must be one line, exit code 2, in a
few seconds, with no run directory left behind."""

import gzip
import hashlib
import io
import json
import os

import numpy as np
import pytest
from conftest import assert_one_line_error, idx_bytes, run_limited, write_idx_set

from dlclassics.core import download
from dlclassics.core.download import DownloadError, fetch
from dlclassics.core.rundir import MAX_DATA_BYTES
from dlclassics.lm.corpus import MAX_SENTENCE_WORDS, read_sentences
from dlclassics.mnist.data import IMAGE_MAGIC
from dlclassics.xor.solutions import HAND_WEIGHTS

SECONDS = 30  # each refusal takes about 2 s, the interpreter's start included
# A tiny model trained for one step: a refusal that slips through ends at once.
ONE_STEP_LM = ["--embedding-size", "8", "--hidden-size", "16", "--batch-size", "4", "--no-bf16"]
ONE_STEP_LM += ["--epochs", "1", "--max-steps", "1", "--device", "cpu", "--quiet"]


def refused(*args: str, out) -> str:
    """Run `dlclassics ARGS --out OUT` limited; it must be one line, exit 2, and no OUT."""
    result = run_limited(*args, "--out", str(out), timeout=SECONDS)
    assert_one_line_error(result, out)
    return result.stderr


# IDX files


def images_header(count: int) -> bytes:
    return b"".join(n.to_bytes(4, "big") for n in (IMAGE_MAGIC, count, 28, 28))


def ten_images() -> bytes:
    return idx_bytes(np.zeros((10, 28, 28)), IMAGE_MAGIC)


def zeros_member(mib: int) -> bytes:
    """A gzip member of `mib` MiB of zeros, written in 1 MiB chunks (about 1 KB of .gz each)."""
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as f:
        for _ in range(mib):
            f.write(bytes(2**20))
    return buffer.getvalue()


def mnist_fc(folder, out) -> str:
    return refused("mnist", "fc", "--data-dir", str(folder), "--quiet", out=out)


@pytest.mark.parametrize("gz", [False, True])
def test_an_idx_header_claiming_2_31_images_over_a_short_body_is_refused(tmp_path, gz):
    folder = write_idx_set(tmp_path / "data", gz=gz)
    raw = images_header(2**31) + ten_images()[16:]
    name = "train-images-idx3-ubyte"
    (folder / (f"{name}.gz" if gz else name)).write_bytes(
        gzip.compress(raw, mtime=0) if gz else raw
    )
    error = mnist_fc(folder, tmp_path / "run")
    assert "2,147,483,648 images" in error and name in error


def test_a_gzip_bomb_after_a_valid_header_is_refused_without_inflating_it(tmp_path):
    # A valid file of 10 images, then 10 GiB of zeros in 40 more members of the same stream: the
    # whole stream would not fit in the 8 GB the command may use.
    folder = write_idx_set(tmp_path / "data")
    zeros = zeros_member(256)
    with (folder / "train-images-idx3-ubyte.gz").open("wb") as f:
        f.write(gzip.compress(ten_images(), mtime=0))
        for _ in range(40):
            f.write(zeros)
    assert "more than the 7840 bytes of data its header says" in mnist_fc(folder, tmp_path / "r")


@pytest.mark.slow
def test_a_one_member_gzip_bomb_is_refused(tmp_path):
    # The header and 10 images, then 1 GiB of zeros, in one deflate stream.
    folder = write_idx_set(tmp_path / "data")
    with gzip.GzipFile(folder / "train-images-idx3-ubyte.gz", "wb", mtime=0) as f:
        f.write(ten_images())
        for _ in range(1024):
            f.write(bytes(2**20))
    assert "more than the 7840 bytes" in mnist_fc(folder, tmp_path / "run")


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda gz: gz[: len(gz) // 2], "cannot read"),  # truncated
        (lambda gz: gz + b"garbage after the stream", "cannot read"),
        (lambda gz: gz + gzip.compress(b"\x01" * 100), "more than the"),  # a 2nd member
    ],
    ids=["truncated", "trailing-garbage", "trailing-member"],
)
def test_a_damaged_gzip_is_refused(tmp_path, damage, message):
    folder = write_idx_set(tmp_path / "data")
    path = folder / "train-images-idx3-ubyte.gz"
    path.write_bytes(damage(path.read_bytes()))
    assert message in mnist_fc(folder, tmp_path / "run")


def test_a_download_larger_than_any_file_is_cut_off(faulty_server, tmp_path, monkeypatch):
    monkeypatch.setattr(download, "MAX_DATA_BYTES", 50_000)
    data = bytes(100_000)
    faulty_server.scripts["/a/data.bin"] = [("ok", data)]
    md5 = "md5:" + hashlib.md5(data).hexdigest()
    with pytest.raises(DownloadError, match="sent more than"):
        fetch([f"{faulty_server.url}/a/data.bin"], tmp_path / "data.bin", md5)
    assert faulty_server.requests["/a/data.bin"] == 1  # not retried: no mirror will send less
    assert list(tmp_path.iterdir()) == []


# Corpora


def fifo(tmp_path):
    path = tmp_path / "fifo.txt"
    os.mkfifo(path)
    return path


def huge(tmp_path):
    path = tmp_path / "huge.txt"
    with path.open("wb") as f:
        f.truncate(MAX_DATA_BYTES + 1)  # sparse: no disk, but more than the cap to read
    return path


def long_line_only(tmp_path):
    path = tmp_path / "long.txt"
    path.write_text(" ".join(f"w{i}" for i in range(300_000)) + "\n")
    return path


def nul(tmp_path):
    path = tmp_path / "nul.txt"
    path.write_bytes(b"a cat\n" * 20 + b"the\x00dog\n")
    return path


def latin1(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes(b"a cat\n" * 20 + "caf\xe9 au lait\n".encode("latin-1"))
    return path


BAD_CORPORA = {
    "dev-zero": (lambda tmp_path: "/dev/zero", "not a regular file"),
    "dev-urandom": (lambda tmp_path: "/dev/urandom", "not a regular file"),
    "fifo": (fifo, "not a regular file"),
    "over-128-MiB": (huge, "larger than 128 MiB"),
    "300000-word-line": (long_line_only, "no usable sentence of at most 1000 words (1 longer)"),
    "nul": (nul, "NUL"),
    "not-utf8": (latin1, "not UTF-8 text (line 21, bad byte at 4)"),
}


@pytest.mark.parametrize("case", BAD_CORPORA)
def test_lm_train_refuses_a_bad_corpus(tmp_path, case):
    make, message = BAD_CORPORA[case]
    corpus = make(tmp_path)
    error = refused("lm", "train", "--corpus", str(corpus), *ONE_STEP_LM, out=tmp_path / "run")
    assert message in error


@pytest.mark.slow
@pytest.mark.parametrize("command", [["lm", "study"], ["tune", "lm", "--n-trials", "1"]])
def test_every_command_reading_a_corpus_refuses_dev_zero_and_a_fifo(tmp_path, command):
    for corpus in ("/dev/zero", fifo(tmp_path)):
        error = refused(*command, "--corpus", str(corpus), out=tmp_path / "run")
        assert "not a regular file" in error


@pytest.mark.slow
@pytest.mark.parametrize("case", BAD_CORPORA)
def test_reproduce_quick_refuses_a_bad_corpus(tmp_path, case):
    make, message = BAD_CORPORA[case]
    corpus = make(tmp_path)
    args = ["reproduce", "--quick", "--only", "lm-study", "--corpus", str(corpus), "--quiet"]
    assert message in refused(*args, out=tmp_path / "run")


@pytest.mark.slow
def test_lm_train_at_its_default_sizes_drops_a_300000_word_sentence(tmp_path):
    # The original's sizes (embedding 300, hidden 256, vocabulary 10,000): one batch holding the
    # long line would need 300,000 x 10,004 float32 logits, 12 GB, on its own.
    corpus = long_line_only(tmp_path)
    with corpus.open("a") as f:
        f.writelines(f"a cat sees the dog number {i}\n" for i in range(40))
    args = ["lm", "train", "--corpus", str(corpus), "--epochs", "1", "--max-steps", "1"]
    result = run_limited(*args, "--quiet", "--no-bf16", "--out", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr[-2000:]


def test_the_corpus_reader_drops_sentences_over_the_word_limit(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("w " * (MAX_SENTENCE_WORDS + 1) + "\n" + "w " * MAX_SENTENCE_WORDS + "\none\n")
    assert [len(s) for s in read_sentences(path)] == [MAX_SENTENCE_WORDS, 1]
    assert [len(s) for s in read_sentences(path, max_length=5000)] == [MAX_SENTENCE_WORDS, 1]


# xor solve --weights


def weights_with(hidden_bias: str) -> str:
    """The built-in k=1 network with its hidden bias replaced by a JSON number as text."""
    return json.dumps(HAND_WEIGHTS[:1]).replace("-1.5", hidden_bias)


BAD_WEIGHTS = {
    "5000-digit-int": (weights_with("1" * 5000), "Exceeds the limit (4300 digits)"),
    "400-digit-int": (weights_with("1" * 400), "int too large to convert to float"),
    "nested-100000": ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    "1e400": (weights_with("1e400"), "hidden.bias is not finite within ±1e+06"),
    "NaN": (weights_with("NaN"), "NaN is not JSON"),
    "Infinity": (weights_with("Infinity"), "Infinity is not JSON"),
    "-Infinity": (weights_with("-Infinity"), "-Infinity is not JSON"),
    "1e30": (weights_with("1e30"), "hidden.bias is not finite within ±1e+06"),
    "out_bias-nan-string": (
        json.dumps(HAND_WEIGHTS[:1]).replace("-0.5", '"nan"'),
        "out.bias is not finite within ±1e+06",
    ),
    "over-1-MiB": (json.dumps(HAND_WEIGHTS) + " " * 2**20, "larger than 1 MiB"),
}


@pytest.mark.parametrize("case", BAD_WEIGHTS)
def test_xor_solve_refuses_bad_weights_before_the_run_directory(tmp_path, case):
    text, message = BAD_WEIGHTS[case]
    path = tmp_path / "weights.json"
    path.write_text(text)
    error = refused("xor", "solve", "--weights", str(path), "--quiet", out=tmp_path / "run")
    assert message in error


@pytest.mark.parametrize("where", ["/dev/zero", "fifo"])
def test_xor_solve_refuses_weights_that_are_not_a_regular_file(tmp_path, where):
    path = fifo(tmp_path) if where == "fifo" else where
    error = refused("xor", "solve", "--weights", str(path), "--quiet", out=tmp_path / "run")
    assert "not a regular file" in error
