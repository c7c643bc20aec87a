"""Downloads that survive bad networks: mirrors in turn, bounded retries, verified before use.

pooch's `HTTPDownloader` streams each file (requests, with connect and read timeouts, and a
progress bar); the loop around it is ours because pooch has no per-file mirror list, its
`retry_if_failed` retries a 403 or 404 as often as a 503, and its hashes are those of hashlib,
while the corpus is checked against its git blob id. A file is streamed into a temporary file
next to its destination and renamed into place only once complete and verified, so a half
download never looks finished.

A host that could not be connected to is remembered for MEMO_SECONDS in a small file of the cache
folder, shared by processes: offline, each part of `dlclassics reproduce` (a process of its own)
and each of a dataset's files would otherwise wait through the same retries again.
"""

import errno
import hashlib
import json
import os
import socket
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

import pooch
import requests
import urllib3

from dlclassics.core.errors import InputError
from dlclassics.core.machine import data_root
from dlclassics.core.rundir import MAX_DATA_BYTES, create_temporary, read_regular

TIMEOUT = (10.0, 60.0)  # seconds: to connect, and to wait for the next bytes
RETRIES = 3  # further tries of one mirror after a transient failure
BACKOFF = 1.0  # seconds before the first retry, doubled before each next one
# Long enough to span the parts of a reproduction that fail one after the other, short enough
# that a network which comes back is soon used without anyone deleting the memo.
MEMO_SECONDS = 300
MEMO_NAME = "unreachable-hosts.json"  # in data_root(): host -> {"failed_at": epoch s, "reason"}


class DownloadError(OSError):
    """Every mirror failed; the message names each host and what it answered."""


def git_blob_sha1(path: Path) -> str:
    """git's id of a file's content: SHA-1 of b"blob <size>\\0" and the bytes."""
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode(), usedforsecurity=False)
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def digest(path: Path, known_hash: str) -> str:
    """The hash of `path` in the algorithm `known_hash` names ("md5:...", "gitblob:...")."""
    algorithm = known_hash.split(":", 1)[0]
    if algorithm == "gitblob":
        return f"gitblob:{git_blob_sha1(path)}"
    return f"{algorithm}:{pooch.file_hash(str(path), alg=algorithm)}"


def _transient(e: requests.RequestException) -> bool:
    """Worth another try: a timeout, a reset or early close, a 5xx, a 429."""
    if isinstance(e, requests.HTTPError):
        return e.response is not None and (
            e.response.status_code >= 500 or e.response.status_code == 429
        )
    return isinstance(
        e, requests.Timeout | requests.ConnectionError | requests.exceptions.ChunkedEncodingError
    )


def _causes(e: BaseException | None) -> Iterator[BaseException]:
    """`e` and the errors it was raised from (requests wraps urllib3's, which wrap socket's)."""
    while e is not None:
        yield e
        e = e.__cause__ or e.__context__


def _offline(e: requests.RequestException) -> bool:
    """A host name that does not resolve, or no route to any network: unlike a timeout or a
    reset, trying again in a few seconds will not help."""
    return any(
        isinstance(c, socket.gaierror) or (isinstance(c, OSError) and c.errno == errno.ENETUNREACH)
        for c in _causes(e)
    )


def _unconnected(e: requests.RequestException) -> bool:
    """No connection was made (DNS, refused, unreachable, connect timeout): the host, not the
    file, is out of reach. A server that answered, even badly, is not."""
    connect_errors = urllib3.exceptions.NewConnectionError, urllib3.exceptions.ConnectTimeoutError
    return any(isinstance(c, connect_errors) for c in _causes(e))


def _describe(e: requests.RequestException) -> str:
    if isinstance(e, requests.HTTPError) and e.response is not None:
        return f"HTTP {e.response.status_code}"
    if isinstance(e, requests.Timeout):
        return "timed out"
    if isinstance(e, requests.exceptions.ChunkedEncodingError):
        return "connection closed before the end of the file"
    if any(isinstance(c, socket.gaierror) for c in _causes(e)):
        return "cannot resolve the host name (offline?)"
    if _offline(e):
        return "network unreachable"
    if isinstance(e, requests.ConnectionError):
        return "cannot connect"
    return type(e).__name__


def _memo_path() -> Path:
    return data_root() / MEMO_NAME


def _read_memo() -> dict[str, tuple[float, str]]:
    """The hosts that could not be connected to less than MEMO_SECONDS ago: when, and why."""
    try:
        entries = json.loads(read_regular(_memo_path(), 1 << 16, "download memo"))
        now = time.time()
        # The reason goes into a one-line error: white space, newlines included, made one space.
        memo = {
            str(h): (float(e["failed_at"]), " ".join(str(e["reason"]).split()))
            for h, e in entries.items()
        }
    # Missing, unreadable or not ours: a memo only saves time, so without one the host is tried.
    except (InputError, ValueError, TypeError, LookupError, AttributeError):
        return {}
    return {host: entry for host, entry in memo.items() if 0 <= now - entry[0] < MEMO_SECONDS}


def _remember(host: str, reason: str) -> None:
    memo = _read_memo() | {host: (time.time(), reason)}
    entries = {h: {"failed_at": t, "reason": r} for h, (t, r) in memo.items()}
    path = _memo_path()
    try:
        fd, tmp = create_temporary(path)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(entries, f, indent=1)
            os.replace(tmp, path)  # whole, so a process reading it at the same time sees JSON
        finally:
            tmp.unlink(missing_ok=True)
    except OSError:
        pass  # a cache that cannot be written must not hide the download's own error


class _Capped:
    """The file pooch writes to, refusing to grow past MAX_DATA_BYTES."""

    def __init__(self, file: BinaryIO) -> None:
        self.file, self.written = file, 0

    def write(self, chunk: bytes) -> None:
        self.written += len(chunk)
        if self.written > MAX_DATA_BYTES:
            raise ValueError(f"sent more than {MAX_DATA_BYTES >> 20} MiB, more than a file can be")
        self.file.write(chunk)

    def flush(self) -> None:
        self.file.flush()


def _try_once(url: str, destination: Path, known_hash: str) -> None:
    fd, tmp = create_temporary(destination)
    try:
        with os.fdopen(fd, "w+b") as f:
            downloader = pooch.HTTPDownloader(progressbar=sys.stderr.isatty(), timeout=TIMEOUT)
            downloader(url, _Capped(f), None)
        if digest(tmp, known_hash) != known_hash:
            raise ValueError("wrong content (checksum mismatch)")
        os.replace(tmp, destination)
    finally:
        tmp.unlink(missing_ok=True)


def fetch(urls: Sequence[str], destination: Path, known_hash: str) -> Path:
    """Download `destination` from the first of `urls` that serves the bytes of `known_hash`.

    Each mirror is tried up to 1 + RETRIES times while its failures are transient; a permanent
    failure (403, 404, wrong content) or an offline one (no DNS, no network) moves on to the next
    mirror at once. A host that could not be connected to is skipped for MEMO_SECONDS, by this
    and the other processes that download into the same cache.
    """
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DownloadError(f"cannot write to {destination.parent}: {e.strerror}") from e
    memo = _read_memo()
    failures = []
    for url in urls:
        host = urlsplit(url).netloc
        if host in memo:
            failed_at, reason = memo[host]
            failures.append(f"{host}: {reason}, {time.time() - failed_at:.0f} s ago")
            continue
        for attempt in range(RETRIES + 1):
            if attempt:
                time.sleep(BACKOFF * 2 ** (attempt - 1))
            unconnected = False
            try:
                _try_once(url, destination, known_hash)
                return destination
            except ValueError as e:
                reason = str(e)
                break
            except requests.RequestException as e:
                reason, unconnected = _describe(e), _unconnected(e)
                if _offline(e) or not _transient(e):
                    break
            except OSError as e:  # the local disk, not the network: no mirror can help
                raise DownloadError(f"cannot write to {destination.parent}: {e.strerror}") from e
        tries = f" after {attempt + 1} tries" if attempt else ""
        failures.append(f"{host}: {reason}{tries}")
        if unconnected:
            _remember(host, reason + tries)
    message = "; ".join(failures)
    if any(urlsplit(url).netloc in memo for url in urls):  # some were not tried this time
        message += (
            f" (a host out of reach is tried again after {MEMO_SECONDS} s, "
            f"or at once if {_memo_path()} is deleted)"
        )
    raise DownloadError(message)
