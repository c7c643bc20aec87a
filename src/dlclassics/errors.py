class InputError(Exception):
    """Bad input from the user: the CLI reports it as one line and exits with code 2."""


def diverged(step: int, loss: float | str, option: str = "--lr") -> InputError:
    """The error of a training whose loss stopped being finite: raised before anything of it is
    saved, as NaN is no JSON and a NaN model is of no use."""
    return InputError(f"training diverged at step {step}: the loss is {loss}; try a lower {option}")


def first_line(e: BaseException) -> str:
    """The first line of `e`'s message, else its type's name: an error in one line."""
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__
