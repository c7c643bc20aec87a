"""The `dlclassics` command: one subcommand group per experiment."""

import sys

import click

from dlclassics import __version__
from dlclassics.errors import InputError
from dlclassics.lm.cli import lm
from dlclassics.mnist.cli import mnist
from dlclassics.reproduce.cli import reproduce
from dlclassics.serve.cli import serve
from dlclassics.study_cli import study
from dlclassics.tune import tune
from dlclassics.xor.cli import xor


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dlclassics")
def cli() -> None:
    """Classic deep-learning experiments, reproduced on a laptop CPU in minutes."""


cli.add_command(xor)
cli.add_command(mnist)
cli.add_command(lm)
cli.add_command(reproduce)
cli.add_command(serve)
cli.add_command(study)
cli.add_command(tune)


def main(args: list[str] | None = None) -> None:
    """Entry point: bad input becomes one line on stderr and exit code 2, never a traceback."""
    try:
        code = cli.main(args, prog_name="dlclassics", standalone_mode=False)
    except InputError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(2)
    except click.UsageError as e:
        hint = f" (see '{e.ctx.command_path} --help')" if e.ctx is not None else ""
        click.echo(f"error: {e.format_message()}{hint}", err=True)
        sys.exit(2)
    except click.ClickException as e:
        click.echo(f"error: {e.format_message()}", err=True)
        sys.exit(e.exit_code)
    except (click.Abort, KeyboardInterrupt):
        click.echo("interrupted", err=True)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
