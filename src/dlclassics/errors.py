class InputError(Exception):
    """Bad input from the user: the CLI reports it as one line and exits with code 2."""
