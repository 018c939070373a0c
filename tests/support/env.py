"""The one environment builder of the suite: what every CLI run and every sandbox server gets.

    cli_environ(tmp_path / "config", sandbox=sb, fleet="web")   # a user of the sandbox `sb`, fleet web
    cli_environ(tmp_path / "config", url=..., token=...)       # any endpoint (a fault server, a Ravel stand-in)
    clean_environ()                                            # os.environ without any VALYENT_* variable

Every environment starts from os.environ without its VALYENT_* variables (a developer's own settings never leak
into a test), with this checkout first on PYTHONPATH and the sandbox's process driver (a test that wants
containers says so). ``NO_COLOR=1`` unless ``color=True``.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


#: sockets bound and never listening, kept open for the whole run (see dead_port)
_HELD: list[socket.socket] = []


def dead_port() -> int:
    """A loopback port that refuses every connection for the whole run: bound by a socket that never listens, so no
    server of a test running alongside can take it (a port from free_port is only free until someone binds it)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    _HELD.append(s)
    return s.getsockname()[1]


def with_repo_path(env: dict) -> dict:
    """``env`` with this checkout first on PYTHONPATH, so `python -m valyent_cli` runs the code under test."""
    return {**env, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))}


def clean_environ() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VALYENT_")}
    # the sandbox's machines are local processes unless a test asks for a container driver
    env["VALYENT_LOCAL_DRIVER"] = "process"
    return with_repo_path(env)


def cli_environ(config_dir: Any = None, *, sandbox: Any = None, url: str | None = None, token: str | None = None,
                initd: str | None = None, fleet: str | None = None, namespace: str | None = None,
                local_dir: Any = None, color: bool = False, **extra: str) -> dict[str, str]:
    """The environment of a CLI run: ``config_dir`` as VALYENT_CONFIG_DIR; the endpoint, token and initd template of
    ``sandbox`` (a support.sandbox.Sandbox) unless given as ``url``/``token``/``initd``; the fleet, namespace and
    sandbox data dir when given; then ``extra`` (any variable, VALYENT_* or not)."""
    env = clean_environ()
    if sandbox is not None:
        url = url or sandbox.url
        token = token or sandbox.token
        initd = initd or sandbox.initd
    values = {"VALYENT_CONFIG_DIR": config_dir, "VALYENT_API_URL": url, "VALYENT_API_TOKEN": token,
              "VALYENT_INITD_URL": initd, "VALYENT_FLEET": fleet, "VALYENT_NAMESPACE": namespace,
              "VALYENT_LOCAL_DIR": local_dir}
    env.update({key: str(value) for key, value in values.items() if value is not None})
    if not color:
        env["NO_COLOR"] = "1"
    env.update(extra)
    return env
