"""`dlclassics study report`: a shared study's run directory, at any time."""

from pathlib import Path

import click

from dlclassics.options import storage_option, study_name_option


@click.group()
def study() -> None:
    """Studies shared through a database (--storage, --workers; see docs/scale.md)."""


@study.command()
@storage_option("The study's database URL.", required=True)
@study_name_option("The study's name in --storage.", required=True)
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="The run directory to write.",
)
def report(storage: str, study_name: str, out: Path) -> None:
    """Write the run directory from the trials finished so far; an unfinished study gets a
    results.md saying which trials are not finished, and no results.json."""
    from dlclassics.workers import study_report

    click.echo(study_report(storage, study_name, out))
