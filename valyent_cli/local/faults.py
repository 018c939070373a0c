"""The sandbox's answer to an exception no handler expected: a 400 when the request caused it, a 500 otherwise,
and never a host path in either (the data dir and the machines' directories are the host's business).

A name too long for the filesystem, a symlink loop, a path through a file: the client asked for something the
filesystem refuses, so it is told (400 INVALID_ARGUMENT) in words, with the path it gave, never the host's.
"""

from __future__ import annotations

import errno
import re

from valyent_cli.local.problems import Problem

#: errors of the filesystem that a request's path causes, and what to say of them
CLIENT_ERRNOS = {
    errno.ENAMETOOLONG: "a name in the path is too long",
    errno.ELOOP: "the path has too many levels of symbolic links",
    errno.ENOTDIR: "a component of the path is not a directory",
    errno.EISDIR: "the path is a directory",
    errno.EILSEQ: "the path is not valid text for the filesystem",
}

# An absolute path of two components or more: what the message of an unexpected error must not show.
_HOST_PATH = re.compile(r"(?:/[^\s/'\":]+){2,}/?")


def scrub(text: str) -> str:
    return _HOST_PATH.sub("<path>", text)


def problem_for(exc: Exception, path: str | None = None) -> Problem:
    """The Problem to answer for ``exc``; ``path`` is the machine path the request named, if any."""
    where = f" ({path})" if path else ""
    if isinstance(exc, OSError) and exc.errno in CLIENT_ERRNOS:
        return Problem("INVALID_ARGUMENT", f"{CLIENT_ERRNOS[exc.errno]}{where}")
    if isinstance(exc, UnicodeError):
        return Problem("INVALID_ARGUMENT", f"the path is not valid UTF-8{where}")
    if isinstance(exc, OSError):
        # strerror alone: str(exc) would name the host file
        return Problem("INTERNAL", f"internal error: {exc.strerror or type(exc).__name__}{where}")
    return Problem("INTERNAL", scrub(f"internal error: {type(exc).__name__}: {exc}"))
