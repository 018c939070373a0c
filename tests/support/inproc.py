"""Run `valyent ARGS` in this process, through the real entry point `valyent_cli.main.main(argv)` and its error
handler, for tests that run the CLI many times (a subprocess costs ~0.3 s of interpreter start-up each).

    result = run_main(["fleets", "list"], env={...})     # env replaces every VALYENT_* variable for the run
    result.code, result.out (str), result.err (str)

stdin is empty and not a terminal, as in CI. Every run is checked like `helpers.run_cli`: the token of its
environment never shows in its output (except through `auth token`).
"""

from __future__ import annotations

import io
import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

from support.helpers import assert_no_token


@dataclass
class Result:
    code: int
    out: str
    err: str


@contextmanager
def environment(env: dict[str, str]) -> Iterator[None]:
    """os.environ with every VALYENT_* variable replaced by those of ``env`` (and the other keys of ``env`` set)."""
    saved = dict(os.environ)
    try:
        for key in list(os.environ):
            if key.startswith("VALYENT_"):
                del os.environ[key]
        os.environ.update(env)
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def run_main_bytes(argv: list[str], env: dict[str, str], *, stdin: str = "") -> tuple[int, bytes, str]:
    """Like ``run_main``, with stdout as the bytes written (for binary output such as `fs cat`)."""
    from valyent_cli.main import main

    out, err = io.BytesIO(), io.BytesIO()
    # surrogateescape: an argument that was not UTF-8 may be echoed back in a message, as a real terminal would
    stdout = io.TextIOWrapper(out, encoding="utf-8", errors="surrogateescape", write_through=True)
    stderr = io.TextIOWrapper(err, encoding="utf-8", errors="surrogateescape", write_through=True)
    saved = sys.stdin, sys.stdout, sys.stderr
    sys.stdin, sys.stdout, sys.stderr = io.StringIO(stdin), stdout, stderr
    try:
        with environment(env):
            try:
                main(list(argv))
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            else:  # pragma: no cover - main() always exits
                code = 0
        stdout.flush()
        stderr.flush()
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved
    result = code, out.getvalue(), err.getvalue().decode("utf-8", "replace")
    assert_no_token(argv, env, result[1].decode("utf-8", "replace"), result[2])
    return result


def run_main(argv: list[str], env: dict[str, str], *, stdin: str = "") -> Result:
    code, out, err = run_main_bytes(argv, env, stdin=stdin)
    return Result(code, out.decode("utf-8", "replace"), err)
