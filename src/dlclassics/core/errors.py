from pathlib import Path

import click


class InputError(Exception):
    """Bad input from the user: the CLI reports it as one line and exits with code 2."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a training that saved its state to `path` first: the run resumes there."""

    def __init__(self, path: Path) -> None:
        super().__init__(str(path))
        self.path = path


def diverged(step: int, loss: float | str, option: str = "--lr") -> InputError:
    """The error of a training whose loss stopped being finite: raised before anything of it is
    saved, as NaN is no JSON and a NaN model is of no use."""
    return InputError(f"training diverged at step {step}: the loss is {loss}; try a lower {option}")


def first_line(e: BaseException) -> str:
    """The first line of `e`'s message, else its type's name: an error in one line."""
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__


def exit_code(e: BaseException) -> int:
    """What an error that ends a command prints (one line on stderr), and its exit code: 2 for
    bad input, 130 for Ctrl-C; used by the command line and by the worker processes alike."""
    if isinstance(e, InputError):
        click.echo(f"error: {e}", err=True)
        return 2
    if isinstance(e, click.UsageError):
        hint = f" (see '{e.ctx.command_path} --help')" if e.ctx is not None else ""
        click.echo(f"error: {e.format_message()}{hint}", err=True)
        return 2
    if isinstance(e, click.ClickException):
        click.echo(f"error: {e.format_message()}", err=True)
        return e.exit_code
    click.echo("interrupted", err=True)
    return 130
