"""`valyent deploy --detach` (and `rollback --detach`): the rollout runs on in a process of its own, and the command
returns with the release's number once the release is recorded.

The command runs itself again (same global options, its own options with the image settled, so a [build] is not
repeated) in a new session, with ``VALYENT_DEPLOY_DETACHED=1``: that process prints the release record as one JSON
line on stdout as soon as it is saved, then sends its stdout to /dev/null and goes on; its stderr goes to a log file
(0600) under the user's log directory, named in the answer. `valyent status` and `valyent releases` follow it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from valyent_cli.cli.context import AppContext
    from valyent_cli.cli.output import Output

ENV = "VALYENT_DEPLOY_DETACHED"


def is_child() -> bool:
    return os.environ.get(ENV) == "1"


def announce(out: Output, record: dict[str, Any]) -> None:
    """In the detached process: the record, once, to the waiting command; then stdout goes nowhere."""
    out.data({k: v for k, v in record.items() if k != "payload"})
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)


def global_args(app_: AppContext) -> list[str]:
    args = []
    for flag, value in (("--profile", app_.profile), ("--endpoint", app_.endpoint), ("--namespace", app_.namespace)):
        if value is not None:
            args += [flag, value]
    if app_.allow_http:
        args.append("--allow-http")
    return args


def options(**values: Any) -> list[str]:
    """Command-line options from keyword values: None left out, True a bare flag."""
    args: list[str] = []
    for name, value in values.items():
        if value is None or value is False:
            continue
        flag = "--" + name.replace("_", "-")
        args += [flag] if value is True else [flag, str(value)]
    return args


def start(app_: AppContext, out: Output, command: list[str], *, json_out: bool) -> None:
    """Run ``command`` (the words after `valyent`) detached; print its release number (--json: its record)."""
    import time

    import platformdirs

    from valyent_cli.cli.errors import CliError

    logs = Path(platformdirs.user_log_dir("valyent")) / "deploys"
    logs.mkdir(parents=True, exist_ok=True, mode=0o700)
    log_path = logs / time.strftime("deploy-%Y%m%d-%H%M%S.log", time.gmtime())
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    env = {**os.environ, ENV: "1"}
    with os.fdopen(fd, "wb") as log:
        child = subprocess.Popen([sys.executable, "-m", "valyent_cli", *global_args(app_), *command],
                                 stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log, env=env,
                                 start_new_session=True)
    assert child.stdout is not None
    line = child.stdout.readline()
    child.stdout.close()
    try:
        record = json.loads(line)
    except ValueError:
        code = child.wait()
        tail = log_path.read_text(errors="replace").strip().splitlines()[-5:]
        raise CliError(f"the deploy did not start (exit {code}): " + " / ".join(tail),
                       hint=f"its log: {log_path}") from None
    if json_out:
        out.data(record)
    else:
        out.text(str(record.get("release")))
    out.info(f"Release {record.get('release')} of {record.get('app')} is rolling out in the background "
             f"(pid {child.pid}); its log: {log_path}. Follow it with `valyent status` or `valyent releases`.")
