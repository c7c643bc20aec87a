"""`dlclassics export`: the command. Torch loads only when it runs (`--help` never waits)."""

from pathlib import Path

import click


@click.command("export")
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path),
    help="The site's folder: new, empty, or a site exported before (replaced once the new one "
    "is written).",
)
def export(runs: tuple[Path, ...], out: Path) -> None:
    """A static site of the models and studies in RUN... (lm train, lm study, mnist fc, mnist
    cnn, xor solve, xor train, xor sweep and reproduce run directories): the lab's page, each
    model's weights (safetensors), vocabulary and model card, each XOR study's runs. Open
    SITE/index.html through any static server, `python -m http.server` in SITE say: it makes no
    request outside its folder."""
    from dlclassics.lab.export import export as export_site
    from dlclassics.lab.export import holds

    index = export_site(list(runs), out)
    count = len({path.resolve() for path in runs})  # as export counts them: each once
    click.echo(f"exported {holds(index)} from {count} run{'s' * (count != 1)} to {out}")
