"""`valyent nodes`: the hosts of a self-hosted Ravel cluster."""

from __future__ import annotations

import typer

from valyent_cli.cli.options import JsonOpt, QuietOpt

app = typer.Typer(
    name="nodes",
    short_help="List the nodes of a Ravel cluster.",
    help="The nodes of a Ravel cluster: where machines run.\n\nExample: valyent nodes list",
    no_args_is_help=True,
)


@app.command("list")
def list_(ctx: typer.Context, json: JsonOpt = False, quiet: QuietOpt = False) -> None:
    """List nodes: id, address, region and the age of their last heartbeat.

    Example: valyent nodes list --json | jq -r '.[].region' | sort -u
    """
    from valyent_cli.cli.output import Column
    from valyent_cli.cli.humanize import ago

    app_ = ctx.obj
    out = app_.output(json=json, quiet=quiet)
    out.table(
        app_.connect().nodes.list(),
        [
            Column("ID", lambda n: n.get("id")),
            Column("ADDRESS", lambda n: f"{n.get('address')}:{n.get('agent_port')}" if n.get("agent_port") else n.get("address")),
            Column("REGION", lambda n: n.get("region")),
            Column("HEARTBEAT", lambda n: ago(n.get("heartbeated_at"))),
        ],
        empty="No nodes.",
    )
