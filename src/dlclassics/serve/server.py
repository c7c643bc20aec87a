"""How `serve` serves a site folder: the standard library's threading HTTP server, answering only
requests addressed to an accepted Host name, with limits on slow and on many connections.

The site is static files, so GET and HEAD are all it answers (the page makes no other request).
"""

import contextlib
import functools
import ipaddress
import socket
import socketserver
import sys
import threading
from collections.abc import Sequence
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

from dlclassics.core.errors import InputError

# The names answered by default. A DNS-rebinding page reaches the server under the page's own
# name, which these never are.
LOOPBACK = ("localhost", "127.0.0.1", "[::1]")
REQUEST_TIMEOUT = 10  # seconds to receive a whole request head, and for each read or write
# Open connections; beyond, requests answer 503. Far above what a few browsers open, and far
# below the 1,024 files a process may open by default.
MAX_CONNECTIONS = 512
REFUSED = b"HTTP/1.0 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


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
    """The Host names answered when listening on `host`: the loopback names, `host` itself
    unless it is a wildcard (a page naming 0.0.0.0 reaches this machine too), and the `allowed`
    ones."""
    names = [*LOOPBACK, *allowed, *([] if is_wildcard(host) else [host])]
    return list(dict.fromkeys(host_name(name) for name in names))


def requested_host(header: str | None) -> str | None:
    """The name a Host header addresses, without its port, as `host_name` writes names; None
    for a header that names none."""
    if not header:
        return None
    if header.startswith("["):  # an IPv6 address: "[::1]" or "[::1]:8000"
        inner, bracket, port = header[1:].partition("]")
        if not bracket:
            return None
        try:
            name = f"[{ipaddress.IPv6Address(inner)}]"
        except ValueError:
            return None
    else:
        name, colon, port = header.partition(":")
        port = colon + port
        if "[" in name or "]" in name:
            return None
        name = host_name(name)
    if port and not (port.startswith(":") and port[1:].isascii() and port[1:].isdigit()):
        return None
    return name


class SiteHandler(SimpleHTTPRequestHandler):
    """The site folder's files, for requests addressed to one of `hosts`."""

    hosts: Sequence[str] = LOOPBACK
    timeout = REQUEST_TIMEOUT  # each read and write of the connection: a stalled client is cut
    # A module script must come as JavaScript, and the system's table may say otherwise (on
    # Windows the registry often maps .js to text/plain, and the page would not run).
    extensions_map: ClassVar[dict[str, str]] = {
        **SimpleHTTPRequestHandler.extensions_map,
        ".js": "text/javascript",
        ".json": "application/json",
        ".safetensors": "application/octet-stream",
    }

    cut = False  # whether the deadline closed the connection

    def setup(self) -> None:
        super().setup()
        # The whole head within REQUEST_TIMEOUT: one byte every few seconds (slowloris) keeps
        # each read under the socket's timeout, not the request under this one.
        self.deadline = threading.Timer(REQUEST_TIMEOUT, self._cut)
        self.deadline.start()

    def _cut(self) -> None:
        self.cut = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def parse_request(self) -> bool:
        parsed = super().parse_request()
        self.deadline.cancel()  # the head is in: a large file may take longer to send
        if self.cut:  # what was read ends where the deadline cut it: no request to answer
            self.close_connection = True
            return False
        if parsed and requested_host(self.headers.get("Host")) not in self.hosts:
            self.send_error(HTTPStatus.BAD_REQUEST, "Invalid host header")
            return False
        return parsed

    def finish(self) -> None:
        self.deadline.cancel()
        super().finish()

    def end_headers(self) -> None:
        # Each `serve` exports afresh under the same URLs: a browser must not show the models
        # of a previous one from its cache.
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # no line per request in the terminal


class SiteServer(ThreadingHTTPServer):
    """A thread per connection, up to MAX_CONNECTIONS; the connections over it answer 503."""

    daemon_threads = True  # Ctrl-C does not wait for a browser's open connections

    def __init__(self, address: tuple[str, int], handler: Any) -> None:
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        # The address's own family: "::1" needs an IPv6 socket, "127.0.0.1" an IPv4 one.
        self.address_family = socket.getaddrinfo(*address, type=socket.SOCK_STREAM)[0][0]
        super().__init__(address, handler)

    def server_bind(self) -> None:
        # HTTPServer's looks the address's name up (getfqdn), which can wait on a slow DNS.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.acquire(blocking=False):
            with contextlib.suppress(OSError):
                request.sendall(REFUSED)
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client gone in mid-response (a tab closed while a model loads) is no fault of the
        # server's, and worth no traceback in the terminal; anything else is.
        if not isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            super().handle_error(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()


def site_server(site: Path, host: str, port: int, hosts: Sequence[str]) -> SiteServer:
    """A server of the files in `site`, listening on `host`:`port` (port 0: any free one) and
    answering requests addressed to `hosts`; a port or host it cannot listen on is an
    InputError."""
    handler = type("Handler", (SiteHandler,), {"hosts": tuple(hosts)})
    try:
        return SiteServer((host, port), functools.partial(handler, directory=str(site)))
    except OSError as e:  # socket.gaierror included: a name that does not resolve
        reason = (e.strerror or str(e)).lower()
        raise InputError(f"cannot listen on {host_name(host)}:{port}: {reason}") from None
