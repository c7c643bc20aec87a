"""Downloads against a local server that fails in each of the ways a network does, and without
a network: host names under .invalid never resolve, and "network unreachable" is patched in."""

import errno
import hashlib
import time

import pytest
import requests
import urllib3

from dlclassics.core import download
from dlclassics.core.download import DownloadError, fetch, git_blob_sha1

DATA = bytes(range(256)) * 400  # 100 KiB
MD5 = "md5:" + hashlib.md5(DATA).hexdigest()


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch, tmp_path_factory):
    monkeypatch.setattr(download, "BACKOFF", 0.01)
    monkeypatch.setattr(download, "TIMEOUT", (2.0, 0.5))
    # The memo of hosts out of reach, in a cache of each test's own, apart from its downloads.
    monkeypatch.setenv("DLCLASSICS_DATA", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture
def sent(monkeypatch):
    """The URLs requests sent, or tried to connect for."""
    urls = []
    send = requests.adapters.HTTPAdapter.send

    def counted(self, request, *args, **kwargs):
        urls.append(request.url)
        return send(self, request, *args, **kwargs)

    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", counted)
    return urls


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


def test_a_host_name_that_does_not_resolve_is_not_retried(tmp_path, monkeypatch, sent):
    monkeypatch.setattr(download, "BACKOFF", 10.0)  # a retry would show in the time taken
    urls = [f"http://{m}.nonexistent.invalid/data.bin" for m in "ab"]
    start = time.perf_counter()
    with pytest.raises(DownloadError) as e:
        fetch(urls, tmp_path / "data.bin", MD5)
    assert time.perf_counter() - start < 1
    assert sent == urls
    assert str(e.value) == (
        "a.nonexistent.invalid: cannot resolve the host name (offline?); "
        "b.nonexistent.invalid: cannot resolve the host name (offline?)"
    )


def test_no_network_is_not_retried(tmp_path, monkeypatch, sent):
    def unreachable(*args, **kwargs):
        raise OSError(errno.ENETUNREACH, "Network is unreachable")

    monkeypatch.setattr(urllib3.util.connection, "create_connection", unreachable)
    monkeypatch.setattr(download, "BACKOFF", 10.0)
    start = time.perf_counter()
    with pytest.raises(DownloadError, match=r"^192\.0\.2\.1: network unreachable$"):
        fetch(["http://192.0.2.1/data.bin"], tmp_path / "data.bin", MD5)
    assert time.perf_counter() - start < 1 and len(sent) == 1


def test_a_host_out_of_reach_is_not_tried_again_for_a_while(tmp_path, sent):
    with pytest.raises(DownloadError):
        fetch(["http://127.0.0.1:9/a.bin"], tmp_path / "a.bin", MD5)
    assert len(sent) == 4  # refused is transient: retried
    # Another file from the same host, or another process (the memo is a file): no try at all.
    start = time.perf_counter()
    with pytest.raises(DownloadError) as e:
        fetch(["http://127.0.0.1:9/b.bin"], tmp_path / "b.bin", MD5)
    assert time.perf_counter() - start < 0.5 and len(sent) == 4
    memo = download.data_root() / download.MEMO_NAME
    assert str(e.value) == (
        "127.0.0.1:9: cannot connect after 4 tries, 0 s ago (a host out of reach is tried again "
        f"after {download.MEMO_SECONDS} s, or at once if {memo} is deleted)"
    )
    memo.unlink()
    with pytest.raises(DownloadError):
        fetch(["http://127.0.0.1:9/b.bin"], tmp_path / "b.bin", MD5)
    assert len(sent) == 8


def test_a_remembered_host_is_skipped_and_the_next_mirror_serves(faulty_server, tmp_path, sent):
    faulty_server.scripts["/data.bin"] = [("ok", DATA)]
    urls = ["http://127.0.0.1:9/data.bin", f"{faulty_server.url}/data.bin"]
    fetch(urls, tmp_path / "first" / "data.bin", MD5)
    fetch(urls, tmp_path / "second" / "data.bin", MD5)
    assert sent == [urls[0]] * 4 + [urls[1]] * 2
    assert (tmp_path / "second" / "data.bin").read_bytes() == DATA


def test_the_memo_expires(tmp_path, monkeypatch, sent):
    with pytest.raises(DownloadError):
        fetch(["http://127.0.0.1:9/data.bin"], tmp_path / "data.bin", MD5)
    monkeypatch.setattr(download, "MEMO_SECONDS", 0)
    with pytest.raises(DownloadError, match=r"after 4 tries$"):
        fetch(["http://127.0.0.1:9/data.bin"], tmp_path / "data.bin", MD5)
    assert len(sent) == 8


@pytest.mark.parametrize("memo", ["not JSON", "[1, 2]", '{"127.0.0.1:9": {"failed_at": "x"}}'])
def test_a_damaged_memo_is_ignored(tmp_path, sent, memo):
    (download.data_root() / download.MEMO_NAME).write_text(memo)
    with pytest.raises(DownloadError):
        fetch(["http://127.0.0.1:9/data.bin"], tmp_path / "data.bin", MD5)
    assert len(sent) == 4


def test_a_memo_that_cannot_be_written_changes_nothing_but_the_time(tmp_path, monkeypatch, sent):
    monkeypatch.setenv("DLCLASSICS_DATA", str(tmp_path / "missing"))
    for _ in range(2):
        with pytest.raises(DownloadError, match=r"after 4 tries$"):
            fetch(["http://127.0.0.1:9/data.bin"], tmp_path / "data.bin", MD5)
    assert len(sent) == 8


def test_git_blob_id_is_gits(tmp_path):
    (tmp_path / "hello").write_bytes(b"hello\n")  # `git hash-object` of this file
    assert git_blob_sha1(tmp_path / "hello") == "ce013625030ba8dba906f756967f9e9ca394464a"
    assert download.digest(tmp_path / "hello", "gitblob:x").startswith("gitblob:ce0136")


def test_a_folder_that_cannot_be_written_is_not_retried(faulty_server, tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(DownloadError, match=r"cannot write to \S*file: "):
        fetch([f"{faulty_server.url}/a/data.bin"], tmp_path / "file" / "data.bin", MD5)
    assert faulty_server.requests == {}
