"""SIGTERM and SIGHUP end a command the way Ctrl-C does: as an exception, so that what it was doing is undone
(a download's temporary file removed, a half-started sandbox server stopped, connections closed) before it exits
with 128 + the signal's number (143, 129), as a process killed by it would."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager


class Terminated(BaseException):
    """The process was asked to end (SIGTERM, SIGHUP). A BaseException, as KeyboardInterrupt: ``except Exception``
    does not swallow it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def _raise(signum: int, frame: object) -> None:
    # A second signal while the first is being handled ends the process at once.
    signal.signal(signum, signal.SIG_DFL)
    raise Terminated(signum)


@contextmanager
def ended_as_exceptions() -> Iterator[None]:
    """For the duration of a command; a signal that was ignored (``nohup``) stays ignored. Previous handlers are
    restored afterwards (the CLI also runs inside test processes)."""
    previous = {}
    for name in ("SIGTERM", "SIGHUP"):
        signum = getattr(signal, name, None)
        if signum is None:
            continue
        try:
            current = signal.getsignal(signum)
            if current is signal.SIG_IGN:
                continue
            previous[signum] = signal.signal(signum, _raise)
        except (ValueError, OSError):  # not the main thread
            continue
    try:
        yield
    finally:
        for signum, handler in previous.items():
            try:
                signal.signal(signum, handler)
            except (ValueError, OSError, TypeError):
                pass
