"""`dlclassics site`: the command. MkDocs, nbclient and torch load only when it runs."""

from pathlib import Path

import click

from dlclassics.core.errors import InputError


@click.command("site")
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path),
    help="The site's folder: new, empty, or a site built before (replaced once the new one is "
    "written).",
)
@click.option(
    "--strict",
    is_flag=True,
    help="Fail on any MkDocs warning (a broken link, a missing page) and on a notebook that "
    "raises; without it, such a notebook's error is shown on its page.",
)
def site(out: Path, strict: bool) -> None:
    """A static site of the README and docs/, the notebooks executed (quick mode with
    DLCLASSICS_QUICK=1, data from $DLCLASSICS_DATA) and the lab of the models they trained, at
    SITE/lab/. It makes no request outside its folder: open it through any static server,
    `python -m http.server -d SITE` say. Needs the `site` extra and a checkout of the
    repository (pip install -e ".[site]")."""
    try:
        from dlclassics.site.build import build
    except ImportError as e:
        raise InputError(f"{e.name} is not installed: pip install -e '.[site]'") from None

    summary = build(out, strict=strict)
    click.echo(f"site written to {out}: {summary}")
