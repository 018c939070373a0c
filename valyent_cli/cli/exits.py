"""Exit codes: a stable interface, documented in the README and in `valyent --help`."""

from enum import IntEnum


class Exit(IntEnum):
    OK = 0
    ERROR = 1  # an API or runtime error
    USAGE = 2  # bad usage or input, caught before any request is sent
    AUTH = 3  # not authenticated, or forbidden
    NOT_FOUND = 4
    TIMEOUT = 5  # a wait or a request timed out
    INTERRUPTED = 130  # Ctrl-C
    EXEC_FAILED = 255  # `machines exec` could not run the remote command (as ssh)


EXIT_CODES_HELP = (
    "Exit codes: 0 ok; 1 API or runtime error; 2 bad usage or input (nothing sent); "
    "3 not authenticated or forbidden; 4 not found; 5 timed out; 130 interrupted. "
    "`machines exec` exits with the remote command's code (255 if it could not run, 124 at its --timeout); "
    "`machines run` with the machine's (124 at its --timeout)."
)
