"""The one error handler: every error a user can cause becomes a message on stderr and a documented exit code."""

from __future__ import annotations

import sys
from typing import Any

from valyent_cli.cli.exits import Exit


class UsageError(Exception):
    """Bad input found before any request was sent (exit 2). The message names the flag or file."""

    exit_code = Exit.USAGE


class CliError(Exception):
    """A failure with a message prepared for the user and an explicit exit code."""

    def __init__(self, message: str, exit_code: int = Exit.ERROR, hint: str | None = None) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.hint = hint


#: (name, where it came from and how to change it) of the fleet a command uses when it did not come from --fleet:
#: set by cli/resolve.py, used when the API says the fleet is not found
fleet_origin: tuple[str, str] | None = None
#: where the token sent came from, when not from the profile (set by AppContext.connect)
token_origin: str | None = None

#: an error message longer than this is cut: a 100 kB argument echoed back helps no one
MAX_MESSAGE = 2000


def _err(message: str, hint: str | None = None) -> None:
    from valyent_cli.cli.sanitize import block

    # Server text (an error detail, a name) reaches the terminal here: control sequences are made inert.
    message = block(message)
    if len(message) > MAX_MESSAGE:
        message = f"{message[:MAX_MESSAGE]}... ({len(message) - MAX_MESSAGE} more characters)"
    _out().error(message, hint)


def _out() -> Any:
    """The one printer (errors print before any command made its own, so with the defaults)."""
    from valyent_cli.cli.output import Output

    return Output()


def _where(exc: Exception) -> str:
    url = getattr(exc, "url", None)
    if not url:
        return ""
    from urllib.parse import urlsplit

    parts = urlsplit(str(url))
    return f" ({parts.scheme}://{parts.netloc})"


def _missing(exc: Exception) -> str:
    """The path asked for, when the server's message does not say what was not found (a bare 404)."""
    url = getattr(exc, "url", None)
    if not url:
        return ""
    from urllib.parse import unquote, urlsplit

    path = unquote(urlsplit(str(url)).path)
    last = path.rstrip("/").rsplit("/", 1)[-1]
    return "" if last and last in str(exc) else f" ({path})"


def _query(exc: Exception, name: str) -> str | None:
    url = getattr(exc, "url", None)
    if not url:
        return None
    from urllib.parse import parse_qs, urlsplit

    values = parse_qs(urlsplit(str(url)).query).get(name)
    return values[0] if values else None


def _is_valyent_cloud(exc: Exception) -> bool:
    from urllib.parse import urlsplit

    url = getattr(exc, "url", None)
    return not url or (urlsplit(str(url)).hostname or "").endswith("valyent.cloud")


NAMESPACE_HOW = "pass --namespace NAME, set VALYENT_NAMESPACE, or `valyent profiles set namespace NAME`"


def _not_found_hint(exc: Exception) -> str | None:
    """What to list to find the right name, from the kind of thing the server did not find."""
    message = str(exc).lower()
    if "namespace not found" in message:
        return f"create it: valyent namespaces create {_query(exc, 'namespace') or 'NAME'}"
    from valyent_cli.groups import RESOURCES

    for kind, resource in RESOURCES.items():
        if kind in message:
            return f"list them: valyent {resource['list']}"
    return None


def handle(exc: BaseException, *, debug: bool = False) -> int:
    """Print what happened and what to run next; return the exit code."""
    # An exit is how a command ends (typer.Exit, `machines run` with the machine's code), not a failure to trace.
    if debug and not isinstance(exc, SystemExit) and not (type(exc).__name__ == "Exit" and hasattr(exc, "exit_code")):
        _out().traceback(exc)
    if isinstance(exc, SystemExit):
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    if isinstance(exc, KeyboardInterrupt):
        _out().note("\nInterrupted.")
        return Exit.INTERRUPTED
    from valyent_cli.cli.signals import Terminated

    if isinstance(exc, Terminated):
        _out().note("\nTerminated.")
        return exc.exit_code
    if isinstance(exc, EOFError):
        _out().note("\nAborted: the input ended.")
        return Exit.ERROR
    if isinstance(exc, BrokenPipeError):
        # The reader of our stdout went away (`| head`): not an error worth a message.
        _silence_stdout()
        return Exit.OK

    # typer's bundled click: usage errors, aborts and exits, recognised by their shape, not imported.
    kind = type(exc).__name__
    if kind == "Exit" and hasattr(exc, "exit_code"):
        return int(exc.exit_code)
    if kind == "Abort":
        _out().note("\nInterrupted.")
        return Exit.INTERRUPTED
    if hasattr(exc, "show") and hasattr(exc, "exit_code") and type(exc).__module__.startswith(("typer", "click")):
        if isinstance(getattr(exc, "message", None), str):
            exc.message = exc.message.replace("Value error, ", "")  # the validation library's words, not ours
        exc.show()
        return int(exc.exit_code)

    if isinstance(exc, UsageError):
        _err(str(exc))
        return Exit.USAGE
    if isinstance(exc, CliError):
        _err(str(exc), exc.hint)
        return exc.exit_code

    from valyent_cli.api import errors as api

    try:
        from valyent_cli.config import ConfigError
    except ImportError:  # pragma: no cover - config is always there once the package is whole
        ConfigError = ()  # type: ignore[assignment]
    if ConfigError and isinstance(exc, ConfigError):
        _err(str(exc))
        return Exit.USAGE
    if isinstance(exc, api.AuthError):
        if exc.status == 403:
            _err(f"forbidden: {exc.message}", "check that the token belongs to this namespace: valyent auth status")
        elif token_origin:
            _err(f"not authenticated: {exc.message}",
                 f"the token sent came from {token_origin}: unset it (`unset VALYENT_API_TOKEN`) to use the "
                 "profile's, or set the right one (`valyent auth login` for a profile)")
        elif exc.sent_credentials is False:
            _err(f"not authenticated: {exc.message}",
                 "no token was sent (none is set): run `valyent auth login`, or set VALYENT_API_TOKEN")
        elif _is_valyent_cloud(exc):
            _err(f"not authenticated: {exc.message}", "run `valyent auth login`, or set VALYENT_API_TOKEN")
        else:
            _err(
                f"not authenticated: {exc.message}",
                "a Ravel server compares the whole Authorization header with its `bearer_token`: if that is "
                "configured without \"Bearer \", use `valyent profiles set auth_scheme raw`; else check the token "
                "(valyent auth login)",
            )
        return Exit.AUTH
    if isinstance(exc, api.NotFound):
        hint = _not_found_hint(exc)
        if fleet_origin and "fleet" in exc.message.lower() and fleet_origin[0] in f"{exc.message} {_missing(exc)}":
            hint = f"the fleet {fleet_origin[0]!r} was not given with --fleet: {fleet_origin[1]}"
        _err(f"not found: {exc.message}{_missing(exc)}", hint)
        return Exit.NOT_FOUND
    if isinstance(exc, api.DeadlineExceeded):
        _err(f"timed out: {exc.message}")
        return Exit.TIMEOUT
    if isinstance(exc, api.ApiError) and _locations(exc.payload) & {"query.namespace"}:
        _err("this server needs a namespace on every request (HTTP "
             f"{exc.status}: {exc.message})", f"{NAMESPACE_HOW}; create one with `valyent namespaces create NAME`")
        return Exit.ERROR
    if isinstance(exc, api.ApiError):
        detail = _details(exc.payload)
        hint = origin = None
        if exc.status == 400 and "cpu kind" in exc.message.lower():
            hint = ("this server's CPU kinds are the templates of its configuration (e.g. eco, std): pass "
                    "--cpu-kind KIND, or set it once with `valyent profiles set cpu_kind KIND` (or VALYENT_CPU_KIND, "
                    "or cpu_kind in valyent.toml's [machine])")
        if exc.status >= 500:
            origin = _where(exc).strip(" ()") or None
            hint = (
                "the server failed; it is safe to retry"
                if exc.idempotent or exc.method in (None, "GET", "HEAD", "PUT", "DELETE")
                else "the server failed; the request may still have taken effect: check before you retry"
            )
        where = f" from {origin}" if origin else ""
        _err(f"{exc.message} (HTTP {exc.status}{', ' + exc.code if exc.code else ''}{where}){detail}", hint)
        return Exit.ERROR
    if isinstance(exc, api.TimeoutError):
        where = _where(exc)
        hint = ("the request may still have taken effect: check (e.g. `valyent machines list`) before you retry"
                if exc.may_have_taken_effect else "raise the timeout with the profile key `timeout`, or retry")
        _err(f"{exc}{where if where.strip(' ()') not in str(exc) else ''}", hint)
        return Exit.TIMEOUT
    if isinstance(exc, api.ConnectError):
        _err(f"{exc}", _initd_hint(exc) or
             "check the endpoint (valyent auth status) and your network; for the sandbox: valyent local start")
        return Exit.ERROR
    if isinstance(exc, api.InvalidArgument):
        # The SDK refused an argument it cannot send (an empty name...): bad input, nothing was sent.
        _err(str(exc))
        return Exit.USAGE
    if isinstance(exc, api.ValyentError):
        _err(str(exc))
        return Exit.ERROR
    if isinstance(exc, OSError):
        name = f" {exc.filename}" if getattr(exc, "filename", None) else ""
        _err(f"{exc.strerror or exc}{':' + name if name else ''}")
        return Exit.ERROR
    if isinstance(exc, RecursionError):
        # Only data from outside nests this deep (an answer, a file): parsers refuse it, this catches the rest.
        _err("unexpected answer from the server: JSON nested too deeply to handle")
        return Exit.ERROR
    _err(f"internal error: {type(exc).__name__}: {exc}", "rerun with --debug to see the traceback, and report it")
    return Exit.ERROR


def _locations(payload: object) -> set[str]:
    if not isinstance(payload, dict) or not isinstance(payload.get("errors"), list):
        return set()
    return {str(e.get("location")) for e in payload["errors"] if isinstance(e, dict) and e.get("location")}


def _initd_hint(exc: Exception) -> str | None:
    """For a machine agent (`fs`) at Valyent Cloud's default address: how to point the CLI at another one."""
    url = str(getattr(exc, "url", "") or "")
    if "-initd.valyent.dev" not in url:
        return None
    return ("machine files are reached at Valyent Cloud's https://{machine_id}-initd.valyent.dev; for the sandbox "
            "or your own Ravel set VALYENT_INITD_URL (the sandbox's: http://HOST:PORT/initd/{machine_id}), "
            "or the profile key initd_endpoint")


def _details(payload: object) -> str:
    """Ravel's per-field errors, one line each, when the payload has them."""
    if not isinstance(payload, dict):
        return ""
    errors = payload.get("errors")
    if not isinstance(errors, list):
        return ""
    lines = []
    said = str(payload.get("detail") or payload.get("message") or "").strip()
    for item in errors[:10]:
        if isinstance(item, dict) and item.get("message"):
            if str(item["message"]).strip() == said and not item.get("location"):
                continue  # the message again, below itself
            where = item.get("location")
            lines.append(f"\n  - {where + ': ' if where else ''}{item['message']}")
    return "".join(lines) if len(lines) > 1 or (lines and payload.get("detail")) else ""


def _silence_stdout() -> None:
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass
