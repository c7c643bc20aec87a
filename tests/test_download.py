"""Downloads against a local server that fails in each of the ways a network does."""

import hashlib
import time

import pytest

from dlclassics import download
from dlclassics.download import DownloadError, fetch, git_blob_sha1

DATA = bytes(range(256)) * 400  # 100 KiB
MD5 = "md5:" + hashlib.md5(DATA).hexdigest()


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch):
    monkeypatch.setattr(download, "BACKOFF", 0.01)
    monkeypatch.setattr(download, "TIMEOUT", (2.0, 0.5))


def only_the_file(folder, name="data.bin"):
    """The folder holds the finished file and nothing else (no temporary left behind)."""
    return sorted(p.name for p in folder.iterdir()) == [name]


def test_a_503_is_retried_until_the_file_comes(faulty_server, tmp_path):
    faulty_server.scripts["/a/data.bin"] = [("status", 503), ("status", 503), ("ok", DATA)]
    fetch([f"{faulty_server.url}/a/data.bin"], tmp_path / "data.bin", MD5)
    assert (tmp_path / "data.bin").read_bytes() == DATA and only_the_file(tmp_path)
    assert faulty_server.requests["/a/data.bin"] == 3


def test_a_stalled_mirror_times_out_and_the_next_one_serves(faulty_server, tmp_path, monkeypatch):
    monkeypatch.setattr(download, "RETRIES", 1)
    faulty_server.scripts["/a/data.bin"] = [("stall", 5)]
    faulty_server.scripts["/b/data.bin"] = [("ok", DATA)]
    start = time.perf_counter()
    fetch([f"{faulty_server.url}/{m}/data.bin" for m in "ab"], tmp_path / "data.bin", MD5)
    assert time.perf_counter() - start < 4  # two read timeouts of 0.5 s, not two 5 s stalls
    assert faulty_server.requests["/a/data.bin"] == 2
    assert (tmp_path / "data.bin").read_bytes() == DATA and only_the_file(tmp_path)


def test_an_early_close_is_retried_and_never_cached(faulty_server, tmp_path):
    faulty_server.scripts["/a/data.bin"] = [("short", DATA)]
    with pytest.raises(DownloadError) as e:
        fetch([f"{faulty_server.url}/a/data.bin"], tmp_path / "data.bin", MD5)
    host = faulty_server.url.removeprefix("http://")
    assert str(e.value) == f"{host}: connection closed before the end of the file after 4 tries"
    assert faulty_server.requests["/a/data.bin"] == 1 + download.RETRIES
    assert list(tmp_path.iterdir()) == []


def test_an_early_close_then_a_full_download(faulty_server, tmp_path):
    faulty_server.scripts["/a/data.bin"] = [("short", DATA), ("ok", DATA)]
    fetch([f"{faulty_server.url}/a/data.bin"], tmp_path / "data.bin", MD5)
    assert (tmp_path / "data.bin").read_bytes() == DATA and only_the_file(tmp_path)


def test_redirects_are_followed(faulty_server, tmp_path):
    faulty_server.scripts["/old/data.bin"] = [("redirect", "/new/data.bin")]
    faulty_server.scripts["/new/data.bin"] = [("ok", DATA)]
    fetch([f"{faulty_server.url}/old/data.bin"], tmp_path / "data.bin", MD5)
    assert (tmp_path / "data.bin").read_bytes() == DATA


def test_wrong_bytes_and_404_move_on_to_the_next_mirror_without_retrying(faulty_server, tmp_path):
    faulty_server.scripts["/a/data.bin"] = [("ok", DATA[::-1])]
    faulty_server.scripts["/c/data.bin"] = [("ok", DATA)]
    urls = [f"{faulty_server.url}/{m}/data.bin" for m in "abc"]  # /b answers 404
    fetch(urls, tmp_path / "data.bin", MD5)
    assert [faulty_server.requests[f"/{m}/data.bin"] for m in "abc"] == [1, 1, 1]
    assert (tmp_path / "data.bin").read_bytes() == DATA and only_the_file(tmp_path)


def test_when_every_mirror_fails_nothing_is_cached_and_each_host_is_named(faulty_server, tmp_path):
    faulty_server.scripts["/a/data.bin"] = [("ok", DATA[:-1])]
    faulty_server.scripts["/b/data.bin"] = [("status", 500)]
    urls = [f"{faulty_server.url}/a/data.bin", f"{faulty_server.url}/b/data.bin"]
    with pytest.raises(DownloadError) as e:
        fetch(urls, tmp_path / "data.bin", MD5)
    host = faulty_server.url.removeprefix("http://")
    assert str(e.value) == (
        f"{host}: wrong content (checksum mismatch); {host}: HTTP 500 after 4 tries"
    )
    assert list(tmp_path.iterdir()) == []


def test_no_server_at_all(tmp_path):
    with pytest.raises(DownloadError, match=r"127\.0\.0\.1:9: cannot connect after 4 tries"):
        fetch(["http://127.0.0.1:9/data.bin"], tmp_path / "data.bin", MD5)


def test_git_blob_id_is_gits(tmp_path):
    (tmp_path / "hello").write_bytes(b"hello\n")  # `git hash-object` of this file
    assert git_blob_sha1(tmp_path / "hello") == "ce013625030ba8dba906f756967f9e9ca394464a"
    assert download.digest(tmp_path / "hello", "gitblob:x").startswith("gitblob:ce0136")


def test_a_folder_that_cannot_be_written_is_not_retried(faulty_server, tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(DownloadError, match=r"cannot write to \S*file: "):
        fetch([f"{faulty_server.url}/a/data.bin"], tmp_path / "file" / "data.bin", MD5)
    assert faulty_server.requests == {}
