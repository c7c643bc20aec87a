"""`dlclassics serve`: the web demo on a local port."""

import ipaddress
import re
from pathlib import Path

import click

from dlclassics.core.errors import InputError

RUNS = Path("runs")
MODEL_DIR = click.Path(path_type=Path, exists=True)
MAX_ALLOWED_HOSTS = 16
# A DNS name: letters, digits, dots and hyphens, at most 253 characters.
HOST_NAME = re.compile(r"[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?", re.IGNORECASE)


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


@click.command()
@click.option(
    "--lm-model",
    type=MODEL_DIR,
    default=None,
    help="An `lm train` run directory, a trial folder of an `lm study` run, or a checkpoint.pt"
    " (default: the newest forward model under runs/).",
)
@click.option(
    "--mnist-model",
    type=MODEL_DIR,
    default=None,
    help="An `mnist cnn` run directory or a checkpoint.pt (default: the newest under runs/).",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    callback=lambda ctx, param, host: _host_name(host),
    help="Address to listen on; 0.0.0.0 or :: is every interface, reachable from other machines.",
)
@click.option(
    "--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="Port."
)
@click.option(
    "--allow-host",
    "allow_hosts",
    metavar="NAME",
    multiple=True,
    callback=_host_names,
    help="A name or address that other machines reach the demo by, which it then answers"
    f" besides localhost, 127.0.0.1, [::1] and --host (repeatable, up to {MAX_ALLOWED_HOSTS}).",
)
def serve(
    lm_model: Path | None, mnist_model: Path | None, host: str, port: int, allow_hosts: list[str]
) -> None:
    """Serve the demo: next words, generation and sentence probability from the language model,
    a draw-a-digit canvas for the classifier, and the XOR networks' decision surfaces.

    A model that is not found, or not loadable, leaves its tab showing why; the rest still works.
    Requests addressed to another Host name are refused (400), so that a web page cannot reach
    the demo through a name of its own (DNS rebinding).
    """
    try:
        import uvicorn

        from dlclassics.serve import server
        from dlclassics.serve.app import create_app
        from dlclassics.serve.models import newest_lm_model, newest_mnist_model
    except ImportError as e:
        raise InputError(f"the demo needs {e.name}: pip install 'dlclassics[demo]'") from e
    hosts = server.accepted_hosts(host, allow_hosts)
    app = create_app(
        lm_model or newest_lm_model(RUNS), mnist_model or newest_mnist_model(RUNS), hosts
    )
    click.echo(f"serving on http://{server.host_name(host)}:{port} (Ctrl-C stops)")
    if not server.is_loopback(host):
        _warn_reachable(host, hosts, server.is_wildcard(host))
    uvicorn.Server(server.config(app, host, port)).run()


def _warn_reachable(host: str, hosts: list[str], wildcard: bool) -> None:
    where = "on every interface" if wildcard else f"on {host}"
    click.echo(
        f"warning: listening {where}: the demo is reachable from other machines, and answers"
        f" requests addressed to {', '.join(hosts)} (--allow-host NAME adds a name)",
        err=True,
    )
