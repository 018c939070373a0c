"""What the endpoint is, for the few defaults that depend on it: the region of a new machine (issue 23).

Valyent Cloud's defaults (`gra-1`, `shared`) are kept for Valyent Cloud (and any endpoint under `/v1`, its API's
prefix) and the local sandbox. Any other endpoint is a self-hosted Ravel, whose regions are its nodes' (`GET /nodes`): with no region configured, a machine goes to
the one region all nodes share, else the command stops and lists them. The sandbox reached by its URL (not through
the `local` profile) is known by its one node, whose id is `local`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from valyent_cli.cli.context import AppContext


def is_sandbox_nodes(nodes: list[Any]) -> bool:
    """The local sandbox's answer to `GET /nodes` (valyent_cli/local/server.py: one node, id `local`; its region is
    the machines' default, gra-1)."""
    return len(nodes) == 1 and isinstance(nodes[0], dict) and nodes[0].get("id") == "local"


def _valyent_api(endpoint: str) -> bool:
    """An endpoint under `/v1` speaks Valyent Cloud's API (a Ravel serves its routes at the root)."""
    from urllib.parse import urlsplit

    return urlsplit(endpoint).path.rstrip("/").endswith("/v1")


def default_region(app: AppContext) -> str:
    """The region of a new machine when none is configured (flag, environment, project file, profile, --config)."""
    from valyent_cli.defaults import DEFAULT_REGION

    settings = app.settings
    if settings.is_local or settings.is_valyent_cloud or _valyent_api(settings.endpoint):
        return DEFAULT_REGION
    nodes = app.connect().nodes.list()
    if is_sandbox_nodes(nodes):
        return DEFAULT_REGION
    regions = sorted({str(n.get("region")) for n in nodes if isinstance(n, dict) and n.get("region")})
    if len(regions) == 1:
        return regions[0]
    from valyent_cli.cli.errors import UsageError

    how = "pass --region REGION, or set it once: `valyent profiles set region REGION`"
    if not regions:
        raise UsageError(f"no region given, and the server lists no nodes to take one from ({how}; a Ravel with "
                         "the no-op cluster state lists none)")
    raise UsageError(f"no region given, and this server's nodes are in several: {', '.join(regions)} ({how})")


def is_sandbox(app: AppContext) -> bool:
    """Whether the endpoint is the local sandbox: the `local` profile, or (asked only when this is needed) a server
    whose one node is the sandbox's. Valyent Cloud is not."""
    settings = app.settings
    if settings.is_local:
        return True
    if settings.is_valyent_cloud:
        return False
    return is_sandbox_nodes(app.connect().nodes.list())
