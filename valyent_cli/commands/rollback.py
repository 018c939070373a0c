"""`valyent rollback [RELEASE]`: deploy a recorded release's payload again, with the same strategy and safety."""

from __future__ import annotations

from typing import Annotated

import typer

from valyent_cli.cli.options import FleetOpt, JsonOpt
from valyent_cli.commands.app_views import (AppOpt, CountOpt, DetachOpt, DryRunOpt, MaxUnavailableOpt,
                                            StrategyOpt, WaitTimeoutOpt)

HELP = """Roll the app back: deploy again the machine payload recorded with a release (default: the newest
release before the current one that succeeded and runs something else), as a new release, with [deploy]'s strategy and the same safety as
`valyent deploy`. The release it replaces is recorded rolled-back.

Examples:

  valyent rollback

  valyent rollback 4 --strategy bluegreen
"""

app = typer.Typer(name="rollback", short_help="Deploy a previous release of the app again.", help=HELP,
                  invoke_without_command=True, no_args_is_help=False, subcommand_metavar="")


@app.callback()
def rollback(
    ctx: typer.Context,
    release: Annotated[int | None, typer.Argument(metavar="[RELEASE]", show_default=False,
                                                  help="The release to go back to (see `valyent releases`).")] = None,
    strategy: StrategyOpt = None,
    count: CountOpt = None,
    max_unavailable: MaxUnavailableOpt = None,
    wait_timeout: WaitTimeoutOpt = None,
    dry_run: DryRunOpt = False,
    detach: DetachOpt = False,
    app_name: AppOpt = None,
    fleet: FleetOpt = None,
    json: JsonOpt = False,
) -> None:
    from valyent_cli.apps import releases as rel
    from valyent_cli.cli import resolve
    from valyent_cli.cli.errors import CliError, UsageError
    from valyent_cli.cli.exits import Exit
    from valyent_cli.commands import app_views

    if release is not None and release < 1:
        raise UsageError("RELEASE must be a release number >= 1 (see `valyent releases`)")
    app_ = ctx.obj
    out = app_.output(json=json)
    fleet_ref = resolve.fleet(app_, fleet)
    spec = app_views.spec(app_, fleet_ref, app=app_name, count=count, strategy=strategy,
                          max_unavailable=max_unavailable, wait_timeout=wait_timeout)
    records = rel.Releases(app_.connect(), fleet_ref, spec.app).list()
    succeeded = [r for r in records if r.get("status") == rel.SUCCEEDED]
    if release is None:
        # the newest release before the current one that once succeeded (rolled back or not) and runs something
        # else: after a rollback to 1, the next rollback goes to 2 again, as `kubectl rollout undo` toggles
        current = succeeded[0] if succeeded else None
        earlier = [r for r in records if current is not None and r["release"] < current["release"]
                   and r.get("status") in (rel.SUCCEEDED, rel.ROLLED_BACK)
                   and r.get("payload") != current.get("payload")]
        if not earlier:
            raise CliError(f"app {spec.app} has no earlier successful release to roll back to",
                           Exit.NOT_FOUND, hint=f"see `valyent releases --app {spec.app} --fleet {fleet_ref}`")
        target = earlier[0]
    else:
        target = next((r for r in records if r["release"] == release), None)
        if target is None:
            raise CliError(f"app {spec.app} has no release {release} on record (the fleet keeps the last "
                           f"{rel.KEEP})", Exit.NOT_FOUND, hint=f"see `valyent releases --app {spec.app}`")
    if not isinstance(target.get("payload"), dict):
        raise CliError(f"release {target['release']} has no recorded payload to deploy again")
    if detach and not dry_run:
        from valyent_cli.commands import app_detach

        command = ["rollback", str(target["release"]), *app_detach.options(
            strategy=strategy, count=count, max_unavailable=max_unavailable, wait_timeout=wait_timeout,
            app=app_name, fleet=fleet_ref)]
        app_detach.start(app_, out, command, json_out=json)
        return
    app_views.run_rollout(app_, out, fleet_ref, spec, target["payload"], dry_run=dry_run, json=json,
                          rollback_of=target["release"])
