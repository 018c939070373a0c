"""`valyent namespaces`: the namespaces of a self-hosted Ravel (every fleet, machine and secret lives in one)."""

from __future__ import annotations

from typing import Annotated

import typer

from valyent_cli.cli import complete
from valyent_cli.cli.options import JsonOpt, QuietOpt, YesOpt

app = typer.Typer(
    name="namespaces",
    short_help="Manage the namespaces of a Ravel server.",
    help="Manage namespaces. A stock Ravel needs one before anything else: create it, then select it with "
    "--namespace, VALYENT_NAMESPACE or `valyent profiles set namespace NAME`.\n\n"
    "Example: valyent namespaces create demo",
    no_args_is_help=True,
)

NameArg = Annotated[str, typer.Argument(metavar="NAME", help="Namespace name.", show_default=False, autocompletion=complete.namespaces)]


def _columns():
    from valyent_cli.cli.output import Column
    from valyent_cli.cli.humanize import ago

    return [Column("NAME", lambda n: n.get("name")), Column("CREATED", lambda n: ago(n.get("created_at")))]


def _check(name: str) -> str:
    from valyent_cli.cli.validate import fleet_name

    return fleet_name(name, "NAME")


@app.command("list")
def list_(ctx: typer.Context, json: JsonOpt = False, quiet: QuietOpt = False) -> None:
    """List namespaces.

    Example: valyent namespaces list -q
    """
    app_ = ctx.obj
    out = app_.output(json=json, quiet=quiet)
    out.table(app_.connect().namespaces.list(), _columns(), id_key="name",
              empty="No namespaces. Create one: valyent namespaces create NAME")


@app.command("create")
def create(ctx: typer.Context, name: Annotated[str, typer.Argument(metavar="NAME", help="Namespace name: 1-63 letters, digits and '-'.")],
           json: JsonOpt = False, quiet: QuietOpt = False) -> None:
    """Create a namespace.

    Example: valyent namespaces create demo && valyent profiles set namespace demo
    """
    _check(name)
    app_ = ctx.obj
    out = app_.output(json=json, quiet=quiet)
    item = app_.connect().namespaces.create(name)
    if json or quiet:
        out.fields(item, [])
        return
    out.done(f"Created namespace {item.get('name') or name}")
    if app_.settings.namespace != name:
        out.info(f"Use it: valyent profiles set namespace {name}   (or --namespace {name}, VALYENT_NAMESPACE={name})")


@app.command("show")
def show(ctx: typer.Context, name: NameArg, json: JsonOpt = False) -> None:
    """Show a namespace.

    Example: valyent namespaces show demo
    """
    from valyent_cli.cli.humanize import clock

    app_ = ctx.obj
    out = app_.output(json=json)
    item = app_.connect().namespaces.get(name)
    out.fields(item, [("Name", item.get("name")), ("Created", clock(item.get("created_at")))])


@app.command("delete")
def delete(ctx: typer.Context, name: NameArg, yes: YesOpt = False) -> None:
    """Delete a namespace.

    Example: valyent namespaces delete demo --yes
    """
    from valyent_cli.cli.resolve import confirm, require_yes

    require_yes(yes, "delete a namespace")
    app_ = ctx.obj
    out = app_.output()
    confirm(out, f"Delete namespace {name}?", yes)
    app_.connect().namespaces.delete(name)
    out.done(f"Deleted namespace {name}")
