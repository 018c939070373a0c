"""What this host can do, found out without the code under test, so a test can tell "cannot here" (skip, saying
why) from "the code switched it off" (fail): machine isolation, the container engines (support/engine.py), the
shells of the completion tests. In CI (`CI=true`, as CI services set it) nothing of these may skip: `.ci/run`
installs every tool and CI runs as root, so a skip there would hide a regression; `skip_or_fail` fails instead.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys

import httpx
import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def skip_or_fail(reason: str) -> None:
    """Skip with ``reason``; in CI, fail with it."""
    if in_ci():
        pytest.fail(f"{reason}, and CI=true: CI must run this test (.ci/run sets it up)", pytrace=False)
    pytest.skip(reason)


@functools.lru_cache(maxsize=None)
def cannot_isolate() -> str | None:
    """Why this host cannot give a machine its own user, mount and PID namespaces (what the sandbox's process
    driver does), or None when it can: asked of util-linux itself (`unshare`), not of the sandbox's probe."""
    if not sys.platform.startswith("linux"):
        return "not Linux: no namespaces"
    missing = [tool for tool in ("unshare", "nsenter", "setpriv") if not shutil.which(tool)]
    if missing:
        return f"util-linux {', '.join(missing)} not installed"
    try:
        proc = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "--pid", "--fork", "--mount-proc",
                               "true"], capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"unshare cannot run: {exc}"
    if proc.returncode != 0:
        return f"this kernel refuses user/mount/PID namespaces: {proc.stderr.strip() or proc.returncode}"
    return None


def expected_isolation() -> str:
    """What the sandbox's /healthz must say here: "namespaces" where the host can isolate (always in CI)."""
    return "namespaces" if cannot_isolate() is None or in_ci() else "none"


def require_isolation(base_url: str) -> None:
    """Where the host can isolate (and in CI), fail unless the sandbox at ``base_url`` isolates its machines;
    elsewhere skip, saying why."""
    said = httpx.get(base_url + "/healthz", timeout=10).json().get("isolation")
    why = cannot_isolate()
    if why is not None and not in_ci():
        pytest.skip(f"this host cannot isolate machines ({why})")
    assert said == "namespaces", (f"this host can isolate machines (`unshare` works{'; CI=true' if in_ci() else ''})"
                                  f" but the sandbox says isolation={said!r}: its probe switched isolation off")


def isolation_on(base_url: str) -> bool:
    """Whether the sandbox at ``base_url`` isolates its machines, after checking that it does exactly where it
    should (for tests that check both ways: the isolated paths, or the plain ones)."""
    said = httpx.get(base_url + "/healthz", timeout=10).json().get("isolation")
    assert said == expected_isolation(), f"the sandbox says isolation={said!r}; this host: {cannot_isolate()}"
    return said == "namespaces"
