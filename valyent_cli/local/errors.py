"""The one error the sandbox's start-up raises: a reason it cannot start, said in one line.

Its own module, with no imports, so that the modules the start-up goes through (paths, preflight, runner, daemon)
all raise it without importing each other.
"""


class ServeError(Exception):
    """A reason the server cannot start, for a one-line message (exit 2 for bad usage, 1 otherwise)."""

    def __init__(self, message: str, usage: bool = False):
        super().__init__(message)
        self.usage = usage
