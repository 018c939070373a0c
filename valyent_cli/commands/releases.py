"""`valyent releases`: the app's release history, from the fleet's annotations."""

from __future__ import annotations

import typer

from valyent_cli.cli.options import FleetOpt, JsonOpt
from valyent_cli.commands.app_views import AppOpt

HELP = """List the app's releases, newest first: number, status (running, succeeded, failed, rolled-back), image,
strategy, when and by whom (the CI's actor and commit when deployed from CI). The fleet keeps the last 10
releases of each app in its annotations. --json prints the records, each with its full machine payload.

Examples:

  valyent releases

  valyent releases --json | jq '.[0].status'
"""

app = typer.Typer(name="releases", short_help="List the app's releases.", help=HELP,
                  invoke_without_command=True, no_args_is_help=False, subcommand_metavar="")


def _by(record: dict) -> str:
    by = record.get("by") or {}
    who = by.get("actor") or "-"
    where = by.get("ci") or by.get("host")
    commit = (by.get("commit") or "")[:12]
    return " ".join(x for x in (who, f"({where}{' ' + commit if commit else ''})" if where else "") if x)


@app.callback()
def releases(ctx: typer.Context, app_name: AppOpt = None, fleet: FleetOpt = None, json: JsonOpt = False) -> None:
    from valyent_cli.apps.releases import Releases
    from valyent_cli.cli import resolve
    from valyent_cli.cli.output import Column, state_style
    from valyent_cli.commands import app_views

    app_ = ctx.obj
    out = app_.output(json=json)
    fleet_ref = resolve.fleet(app_, fleet)
    name = app_views.app_only(app_, fleet_ref, app_name)
    records = Releases(app_.connect(), fleet_ref, name).list()
    if json:
        out.data(records)
        return
    columns = [
        Column("RELEASE", lambda r: r.get("release")),
        Column("STATUS", lambda r: r.get("status"), style=state_style),
        Column("IMAGE", lambda r: r.get("image")),
        Column("STRATEGY", lambda r: r.get("strategy")),
        Column("CREATED", lambda r: r.get("created_at")),
        Column("BY", _by),
        Column("NOTE", lambda r: r.get("error") or (f"rollback to {r['rollback_of']}" if r.get("rollback_of")
                                                    else "")),
    ]
    out.table(records, columns, empty=f"No release of app {name} in fleet {fleet_ref} yet (valyent deploy).")
