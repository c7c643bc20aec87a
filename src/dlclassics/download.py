"""Downloads that survive bad networks: mirrors in turn, bounded retries, verified before use.

pooch's `HTTPDownloader` streams each file (requests, with connect and read timeouts, and a
progress bar); the loop around it is ours because pooch has no per-file mirror list, its
`retry_if_failed` retries a 403 or 404 as often as a 503, and its hashes are those of hashlib,
while the corpus is checked against its git blob id. A file is streamed into a temporary file
next to its destination and renamed into place only once complete and verified, so a half
download never looks finished.
"""

import hashlib
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

import pooch
import requests

from dlclassics.rundir import MAX_DATA_BYTES, create_temporary

TIMEOUT = (10.0, 60.0)  # seconds: to connect, and to wait for the next bytes
RETRIES = 3  # further tries of one mirror after a transient failure
BACKOFF = 1.0  # seconds before the first retry, doubled before each next one


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


def _describe(e: requests.RequestException) -> str:
    if isinstance(e, requests.HTTPError) and e.response is not None:
        return f"HTTP {e.response.status_code}"
    if isinstance(e, requests.Timeout):
        return "timed out"
    if isinstance(e, requests.exceptions.ChunkedEncodingError):
        return "connection closed before the end of the file"
    if isinstance(e, requests.ConnectionError):
        return "cannot connect"
    return type(e).__name__


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
    failure (403, 404, wrong content) moves on to the next mirror at once.
    """
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DownloadError(f"cannot write to {destination.parent}: {e.strerror}") from e
    failures = []
    for url in urls:
        for attempt in range(RETRIES + 1):
            if attempt:
                time.sleep(BACKOFF * 2 ** (attempt - 1))
            try:
                _try_once(url, destination, known_hash)
                return destination
            except ValueError as e:
                reason = str(e)
                break
            except requests.RequestException as e:
                reason = _describe(e)
                if not _transient(e):
                    break
            except OSError as e:  # the local disk, not the network: no mirror can help
                raise DownloadError(f"cannot write to {destination.parent}: {e.strerror}") from e
        tries = f" after {attempt + 1} tries" if attempt else ""
        failures.append(f"{urlsplit(url).netloc}: {reason}{tries}")
    raise DownloadError("; ".join(failures))
