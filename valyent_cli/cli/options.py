"""Options shared by several commands, declared once."""

from __future__ import annotations

from typing import Annotated

import typer

from valyent_cli.cli import complete

JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print the API objects as JSON, exactly as the API returns them (a list is an array).")
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Print only ids, one a line.")]
FleetOpt = Annotated[
    str | None,
    typer.Option(
        "--fleet",
        metavar="FLEET",
        help="Fleet id or name (default: VALYENT_FLEET, then valyent.toml, then the profile's fleet).",
        show_default=False,
        autocompletion=complete.fleets,
    ),
]
YesOpt = Annotated[
    bool, typer.Option("--yes", "-y", help="Do not ask for confirmation (required when not on a terminal).")
]
