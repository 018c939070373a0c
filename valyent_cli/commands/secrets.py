"""`valyent secrets`: the secrets of a namespace. Values go in from stdin and never come back out."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from valyent_cli.cli import complete
from valyent_cli.cli.options import JsonOpt, QuietOpt, YesOpt

app = typer.Typer(
    name="secrets",
    short_help="Manage the secrets of a namespace.",
    help="Manage the secrets of the namespace in use. A machine gets one as an environment variable with "
    "`machines create --secret NAME:ENV_VAR`.\n\nExample: printf %s \"$DB_PASSWORD\" | valyent secrets set db-password",
    no_args_is_help=True,
)

NameArg = Annotated[str, typer.Argument(metavar="NAME", help="Secret name: 1-63 lowercase letters, digits and '-'.", show_default=False, autocompletion=complete.secrets)]


def _name(name: str) -> str:
    import re

    from valyent_cli.cli.errors import UsageError
    from valyent_cli.cli.validate import text

    text(name, "NAME")
    # api/secrets.go: a DNS label
    if len(name) > 63 or not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name):
        raise UsageError(f"NAME: invalid secret name {name[:80]!r}: use 1-63 lowercase letters, digits and '-', "
                         "not starting or ending with '-'")
    return name


def _namespace(app_) -> str:
    from valyent_cli.cli.errors import UsageError
    from valyent_cli.cli.errors import NAMESPACE_HOW

    namespace = app_.settings.namespace
    if not namespace:
        raise UsageError(f"secrets belong to a namespace and none is set: {NAMESPACE_HOW}")
    return namespace


@app.command("list")
def list_(ctx: typer.Context, json: JsonOpt = False, quiet: QuietOpt = False) -> None:
    """List the secrets of the namespace (names and dates; values are never shown).

    Example: valyent secrets list
    """
    from valyent_cli.cli.output import Column
    from valyent_cli.cli.humanize import ago

    app_ = ctx.obj
    namespace = _namespace(app_)
    out = app_.output(json=json, quiet=quiet)
    out.table(
        app_.connect().secrets.list(namespace),
        [Column("NAME", lambda s: s.get("name")), Column("CREATED", lambda s: ago(s.get("created_at"))),
         Column("UPDATED", lambda s: ago(s.get("updated_at")))],
        id_key="name",
        empty=f"No secrets in namespace {namespace}. Add one: printf %s VALUE | valyent secrets set NAME",
    )


def _read_value(name: str) -> str:
    from valyent_cli.cli.errors import UsageError

    if sys.stdin.isatty():
        import getpass

        value = getpass.getpass(f"Value of {name} (not shown): ", stream=sys.stderr)
    else:
        value = sys.stdin.read()
        # One trailing newline is the shell's (echo, a heredoc), not the secret's.
        if value.endswith("\r\n"):
            value = value[:-2]
        elif value.endswith("\n"):
            value = value[:-1]
    if not value:
        raise UsageError("the secret value is empty: pipe it on stdin (printf %s VALUE | valyent secrets set NAME)")
    if "\x00" in value:
        raise UsageError("the secret value must not contain a NUL character")
    return value


def _refuse_plain_http(settings) -> None:
    """A secret value is as sensitive as a token: the same rule, even for a profile without a token."""
    from urllib.parse import urlsplit

    from valyent_cli.config import ENV_ALLOW_HTTP, InsecureTransportError, is_loopback_host

    parts = urlsplit(settings.endpoint)
    if parts.scheme == "http" and not is_loopback_host(parts.hostname) and not settings.allow_http:
        raise InsecureTransportError(
            f"refusing to send a secret value over plain http to {parts.hostname}. Use https, or allow it "
            f"explicitly: --allow-http, `valyent profiles set allow_http true` or {ENV_ALLOW_HTTP}=1"
        )


@app.command("set")
def set_(ctx: typer.Context, name: NameArg, json: JsonOpt = False) -> None:
    """Create a secret, or change its value when it exists. The value is read from stdin (asked without echo on a
    terminal), never from an argument, so it stays out of shell history and `ps`; one trailing newline is dropped.

    Example: printf %s "$DB_PASSWORD" | valyent secrets set db-password
    """
    _name(name)
    app_ = ctx.obj
    namespace = _namespace(app_)
    _refuse_plain_http(app_.settings)
    value = _read_value(name)
    out = app_.output(json=json)
    secret, created = app_.connect().secrets.set(name, value, namespace)
    del value
    if json:
        out.data(secret)
        return
    out.done(f"{'Created' if created else 'Updated'} secret {name} in namespace {namespace}")


@app.command("delete")
def delete(ctx: typer.Context, name: NameArg, yes: YesOpt = False) -> None:
    """Delete a secret. Machines created with it keep the value they got.

    Example: valyent secrets delete db-password --yes
    """
    from valyent_cli.cli.resolve import confirm, require_yes

    _name(name)
    require_yes(yes, "delete a secret")
    app_ = ctx.obj
    namespace = _namespace(app_)
    out = app_.output()
    confirm(out, f"Delete secret {name} from namespace {namespace}?", yes)
    app_.connect().secrets.delete(name, namespace)
    out.done(f"Deleted secret {name}")
