"""``Client``: the Valyent API's resources over one transport (``api/_transport.py``).

``Client`` is a ``Transport`` (the request loop, retries, deadlines, the debug hook) that exposes each resource as
a property made on first use, which imports the resource's module then (a command uses one or two of them). None
of them imports this module (they are given the transport they send with, ``api/_resource.py``). The transport's
names are re-exported here, where they always were.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from valyent_cli.api._transport import (  # noqa: F401 - re-exported: their import path since the first release
    AUTH_SCHEMES,
    BACKOFF_BASE,
    BACKOFF_MAX,
    DEFAULT_ENDPOINT,
    DEFAULT_INITD_ENDPOINT,
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
    MAX_RETRY_AFTER,
    RETRY_STATUSES,
    Exchange,
    Transport,
    backoff_delay,
    drop_none,
    encode,
    parse_json,
)

if TYPE_CHECKING:  # each resource module is imported by its property, on first use (a command uses one or two)
    from valyent_cli.api.builds import Builds
    from valyent_cli.api.fleets import Fleets
    from valyent_cli.api.gateways import Gateways
    from valyent_cli.api.initd import FileSystem
    from valyent_cli.api.machines import Machines
    from valyent_cli.api.namespaces import Namespaces
    from valyent_cli.api.nodes import Nodes
    from valyent_cli.api.secrets import Secrets

__all__ = [
    "AUTH_SCHEMES", "BACKOFF_BASE", "BACKOFF_MAX", "DEFAULT_ENDPOINT", "DEFAULT_INITD_ENDPOINT", "DEFAULT_MAX_RETRIES",
    "DEFAULT_TIMEOUT", "MAX_RETRY_AFTER", "RETRY_STATUSES", "Client", "Exchange", "backoff_delay", "drop_none",
    "encode", "parse_json",
]


class Client(Transport):
    """A client of the Valyent API.

    >>> client = Client("token")                         # Valyent Cloud
    >>> fleet = client.fleets.create("my-fleet")
    >>> machine = client.machines.create(fleet.id, {...})
    >>> machine.wait("running", 60)

    ``endpoint`` is the API base URL (``https://console.valyent.cloud/v1``, or a Ravel server's root);
    ``token`` goes in ``Authorization: Bearer TOKEN``, or alone with ``auth_scheme="raw"`` (a Ravel compares the
    whole header with its ``bearer_token``); with no token (only off Valyent Cloud) no header is sent.
    ``ca_cert``, ``client_cert`` and ``client_key`` are PEM files: the CA to trust, and this client's certificate
    for servers that require one (mTLS);
    ``namespace`` is sent as ``?namespace=`` on every request when set; ``initd_endpoint`` is the URL template of a
    machine's agent, with ``{machine_id}`` in it.

    Retry policy. A call is retried at most ``max_retries`` times (default 2) when it can be repeated safely:

    * a connection that could not be made (refused, DNS, TLS) is retried for every call, since nothing reached
      the server;
    * idempotent calls (GET, DELETE, machine start/stop, wait, mkdir) are also retried on a read timeout, a
      connection broken mid-answer, and the statuses 408, 429, 500, 502, 503 and 504;
    * a create, an exec or an upload that may have reached the server is never sent twice.

    Retries wait ``min(backoff_base * 2**n, backoff_max)`` seconds (0.5 and 8 by default) times a random factor in
    [0.75, 1], or what ``Retry-After`` asks, capped at ``max_retry_after`` (30 s). Each request has ``timeout``
    seconds (default 30) to connect and between two reads of the answer, and a call that is not a stream one
    overall deadline for all its attempts and the waits between them: its read timeout plus ``timeout``, so
    ``2 x timeout`` for most calls (``api/_deadline.py``). A retry that would start past it is not made: the last
    error is raised (a timeout when the deadline cut an answer). Live log streams have no overall deadline. A machine wait's 408 is not an error to retry: it ends one long poll, and ``wait`` loops them.
    """


    # The resources, each made on first use (its constructor only stores the client).
    @cached_property
    def fleets(self) -> Fleets:
        from valyent_cli.api.fleets import Fleets

        return Fleets(self)

    @cached_property
    def machines(self) -> Machines:
        from valyent_cli.api.machines import Machines

        return Machines(self)

    @cached_property
    def gateways(self) -> Gateways:
        from valyent_cli.api.gateways import Gateways

        return Gateways(self)

    @cached_property
    def namespaces(self) -> Namespaces:
        from valyent_cli.api.namespaces import Namespaces

        return Namespaces(self)

    @cached_property
    def secrets(self) -> Secrets:
        from valyent_cli.api.secrets import Secrets

        return Secrets(self)

    @cached_property
    def nodes(self) -> Nodes:
        from valyent_cli.api.nodes import Nodes

        return Nodes(self)

    @cached_property
    def builds(self) -> Builds:
        """Image builds."""
        from valyent_cli.api.builds import Builds

        return Builds(self)

    def fs(self, machine_id: str) -> FileSystem:
        """The filesystem of a machine, on its initd host."""
        from valyent_cli.api.initd import FileSystem

        return FileSystem(self, machine_id)
