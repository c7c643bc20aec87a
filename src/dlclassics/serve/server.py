"""How the demo is served: the Host names it answers, and uvicorn's limits on slow and on many
connections."""

import asyncio
import ipaddress
from collections.abc import Sequence

import h11
import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.h11_impl import H11Protocol

from dlclassics.serve.app import LOOPBACK

REQUEST_TIMEOUT = 10  # seconds to receive a whole request, head and body
KEEP_ALIVE = 5  # seconds an idle connection stays open between requests (uvicorn's default)
# Open connections; beyond, requests answer 503. Far above what a few browsers open, and far
# below the 1,024 files a process may open by default.
MAX_CONNECTIONS = 512


def host_name(host: str) -> str:
    """`host` as a Host header writes it, lower-case, an IPv6 address in brackets."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return host.lower()
    return f"[{address}]" if address.version == 6 else str(address)


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host.lower() == "localhost"


def is_wildcard(host: str) -> bool:
    """Whether listening on `host` means listening on every interface."""
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


def accepted_hosts(host: str, allowed: Sequence[str] = ()) -> list[str]:
    """The Host names the demo answers when it listens on `host`: the loopback names, `host`
    itself unless it is a wildcard (a page naming 0.0.0.0 reaches this machine too), and the
    `allowed` ones."""
    names = [*LOOPBACK, *allowed, *([] if is_wildcard(host) else [host])]
    return list(dict.fromkeys(host_name(name) for name in names))


class RequestDeadline(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with a deadline of REQUEST_TIMEOUT seconds to receive each
    request. uvicorn times out only a connection left idle after a response (its keep-alive
    timer, cancelled by the first byte of the next request) and has no setting for a slow request
    (its issue #157), so a client sending half a request and stalling (slowloris) held its
    connection for ever."""

    deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:
        super().connection_made(transport)
        self._arm()

    def on_response_complete(self) -> None:
        self._arm()  # before uvicorn's, which may read a pipelined request whole
        super().on_response_complete()

    def handle_events(self) -> None:
        super().handle_events()
        if self.conn.their_state in (h11.DONE, h11.MUST_CLOSE):
            self.deadline.cancel()

    def _arm(self) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
        self.deadline = self.loop.call_later(REQUEST_TIMEOUT, self.transport.close)


def config(app: FastAPI, host: str, port: int) -> uvicorn.Config:
    """uvicorn's settings for the demo. A request head is bounded by uvicorn's own limit (400 once
    16 KiB of it are unfinished), a body by the app's BodyLimit."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=RequestDeadline,
        timeout_keep_alive=KEEP_ALIVE,
        limit_concurrency=MAX_CONNECTIONS,
        log_level="warning",
    )
