"""`valyent deploy`: ship a new release of an app (valyent.toml's [machine] and [deploy]) with no request lost."""

from __future__ import annotations

from typing import Annotated

import typer

from valyent_cli.cli.options import FleetOpt, JsonOpt
from valyent_cli.commands.app_views import (AppOpt, CountOpt, DetachOpt, DryRunOpt, MaxUnavailableOpt,
                                            StrategyOpt, WaitTimeoutOpt)

HELP = """Deploy a new release of the app: its machines replaced by machines of valyent.toml's [machine] table.

The app is the fleet's machines labelled valyent.app=APP; each new machine is labelled valyent.release=N. The
rollout follows [deploy] strategy (rolling, bluegreen, canary, immediate): a new machine takes requests only once
it runs (and is healthy, with a health check); an old one leaves the gateway before it is stopped with its stop
signal and timeout, then deleted. A new machine that does not run in time fails the deploy: the new machines go,
the old ones keep serving, the release is recorded failed, its last log lines are shown, exit 1. Ctrl-C undoes the
same way (exit 130). [deploy] release_command runs first, once, in a one-shot machine of the new version.
--dry-run prints the plan; --json prints the release record at the end; --detach returns with the release
number once it is recorded and lets the rollout go on in the background. See docs/deploy.md.

Examples:

  valyent deploy

  valyent deploy --image registry.example.com/web:1.5 --strategy bluegreen

  valyent deploy --dry-run
"""

app = typer.Typer(name="deploy", short_help="Deploy a new release of the app (valyent.toml).", help=HELP,
                  invoke_without_command=True, no_args_is_help=False, subcommand_metavar="")


@app.callback()
def deploy(
    ctx: typer.Context,
    image: Annotated[str | None, typer.Option("--image", "-i", metavar="IMAGE", show_default=False,
                                              help="The image to deploy (default: [machine] image; skips [build]).")] = None,
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
    # The help is HELP, on the Typer app (a group of one command, as `completion`).
    from valyent_cli.cli import payload as pl
    from valyent_cli.cli import resolve
    from valyent_cli.commands import app_views

    app_ = ctx.obj
    out = app_.output(json=json)
    flags = pl.CreateFlags(image=image)
    if image is None and app_.settings.project.get("build"):
        from valyent_cli.commands import app_build

        flags.image = app_build.build_image(app_, out, dry_run=dry_run)
    payload = pl.app_payload(app_, flags)
    fleet_ref = resolve.fleet(app_, fleet)
    spec = app_views.spec(app_, fleet_ref, app=app_name, count=count, strategy=strategy,
                          max_unavailable=max_unavailable, wait_timeout=wait_timeout)
    if detach and not dry_run:
        from valyent_cli.commands import app_detach

        command = ["deploy", *app_detach.options(image=payload["config"]["image"], strategy=strategy, count=count,
                                                 max_unavailable=max_unavailable, wait_timeout=wait_timeout,
                                                 app=app_name, fleet=fleet_ref)]
        app_detach.start(app_, out, command, json_out=json)
        return
    app_views.run_rollout(app_, out, fleet_ref, spec, payload, dry_run=dry_run, json=json)
