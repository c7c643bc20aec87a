"""`dlclassics serve`: the lab's page of the learner's models on a local port."""

import contextlib
import ipaddress
import re
import signal
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

RUNS = Path("runs")
MAX_ALLOWED_HOSTS = 16
# A DNS name: letters, digits, dots and hyphens, at most 253 characters.
HOST_NAME = re.compile(r"[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?", re.IGNORECASE)
NO_MODELS = (
    "no models to show yet: train one (`dlclassics lm train`, `dlclassics mnist cnn`, "
    "`dlclassics xor solve`; they write under runs/), or name run directories: "
    "`dlclassics serve RUN...` (`dlclassics export RUN... --out SITE` writes the site to keep)"
)


def _host_name(name: str) -> str:
    """`name`, if it is a host name or an IP address: what --host and --allow-host take."""
    try:
        ipaddress.ip_address(name)
    except ValueError:
        if not HOST_NAME.fullmatch(name):
            raise click.BadParameter(f"{name!r} is not a host name or an IP address") from None
    return name


def _host_names(ctx: click.Context, param: click.Parameter, names: tuple[str, ...]) -> list[str]:
    if len(names) > MAX_ALLOWED_HOSTS:
        raise click.BadParameter(f"at most {MAX_ALLOWED_HOSTS} names")
    return [_host_name(name) for name in names]


@contextlib.contextmanager
def _stopped_by_sigterm() -> Iterator[None]:
    """SIGTERM (`kill`, a service manager) stops the server as Ctrl-C does, so that the
    temporary site is removed; its default ends the process on the spot."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set a handler (a test's server thread)
        return

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@click.command()
@click.argument("runs", metavar="[RUN]...", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    callback=lambda ctx, param, host: _host_name(host),
    help="Address to listen on; 0.0.0.0 or :: is every interface, reachable from other machines.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8000,
    show_default=True,
    help="Port (0: any free one, which it prints).",
)
@click.option(
    "--allow-host",
    "allow_hosts",
    metavar="NAME",
    multiple=True,
    callback=_host_names,
    help="A name or address that other machines reach the page by, which it then answers"
    f" besides localhost, 127.0.0.1, [::1] and --host (repeatable, up to {MAX_ALLOWED_HOSTS}).",
)
def serve(runs: tuple[Path, ...], host: str, port: int, allow_hosts: list[str]) -> None:
    """Serve the lab's page of the models in RUN... (run directories, as `dlclassics export`
    takes them; default: the newest language model, digit classifier and XOR runs under runs/).

    The runs are exported into a temporary folder, removed when the server stops (Ctrl-C), and
    the page computes everything in the browser. Requests addressed to another Host name are
    refused (400), so that a web page cannot reach the server through a name of its own (DNS
    rebinding).
    """
    # Here, not at the top: the export loads torch, and `--help` should not wait for it.
    from dlclassics.lab.export import holds
    from dlclassics.serve import server, site

    hosts = server.accepted_hosts(host, allow_hosts)
    # Cleanup errors ignored: on Windows a file a closing connection still sends cannot be
    # removed, and the system's temporary folder is emptied in time anyway.
    with tempfile.TemporaryDirectory(prefix="dlclassics-serve-", ignore_cleanup_errors=True) as tmp:
        folder = Path(tmp) / "site"
        # Listening first: a port in use is said before a long export, not after it.
        with server.site_server(folder, host, port, hosts) as httpd:
            chosen = list(runs) or site.default_runs(RUNS, _warn)
            index = site.write_site(chosen, folder)
            if index["models"] or index["studies"]:
                names = ", ".join(str(run) for run in dict.fromkeys(chosen))
                click.echo(f"exported {holds(index)} from {names}")
            else:
                click.echo(NO_MODELS)
            click.echo(
                f"serving on http://{server.host_name(host)}:{httpd.server_port} (Ctrl-C stops)"
            )
            if not server.is_loopback(host):
                _warn_reachable(host, hosts, server.is_wildcard(host))
            with contextlib.suppress(KeyboardInterrupt), _stopped_by_sigterm():
                httpd.serve_forever()


def _warn(message: str) -> None:
    click.echo(f"warning: {message}", err=True)


def _warn_reachable(host: str, hosts: list[str], wildcard: bool) -> None:
    where = "on every interface" if wildcard else f"on {host}"
    _warn(
        f"listening {where}: the page is reachable from other machines, and answers requests"
        f" addressed to {', '.join(hosts)} (--allow-host NAME adds a name)"
    )
