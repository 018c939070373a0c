"""`valyent deploy`'s [build] step: the image built from the project's directory first, as `builds create` does."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from valyent_cli.cli.context import AppContext
    from valyent_cli.cli.output import Output


def build_image(app_: AppContext, out: Output, *, dry_run: bool) -> str:
    """Build [build]'s context (relative to valyent.toml) and return the image reference to deploy."""
    from valyent_cli.cli.errors import CliError, UsageError
    from valyent_cli.commands.builds import _context, _follow

    settings = app_.settings
    table = dict(settings.project.get("build") or {})
    source = str(settings.project_path) if settings.project_path else "valyent.toml"
    base = settings.project_path.parent if settings.project_path else Path.cwd()
    directory = (base / table.get("context", ".")).resolve()
    dockerfile = table.get("dockerfile", "Dockerfile")
    name = table.get("image") or (settings.project.get("deploy") or {}).get("app") or settings.fleet or "app"
    tag = time.strftime("deploy-%Y%m%d%H%M%S", time.gmtime())
    if not directory.is_dir():
        raise UsageError(f"{source}: [build] context {str(directory)!r} is not a directory")
    if not (directory / dockerfile).is_file():
        raise UsageError(f"{source}: [build] no {dockerfile} in {directory}")
    if dry_run:
        return f"{name}:{tag}"
    out.info(f"Building {name}:{tag} from {directory}...")
    with _context(directory, dockerfile) as context:
        build = app_.connect().builds.create(context, name, tag=tag, registry=table.get("registry"),
                                             dockerfile=dockerfile, target=table.get("target"))
    build = _follow(app_, out, build)
    if build.get("status") == "failed":
        raise CliError(f"build {build.get('id')} failed: {build.get('error') or 'see valyent builds logs'}; "
                       "nothing was deployed")
    return str(build.get("full_image") or f"{name}:{tag}")
