"""The one error type for bad input: its message names the fix."""


class UserError(Exception):
    """Bad input from the user. The CLI prints the message on one line and exits with code 2."""
