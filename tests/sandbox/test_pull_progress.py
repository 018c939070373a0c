"""`machines create` shows an image's pull as it goes (issue 24 item 2), on both engines: a registry on loopback
(support/registry.py) holds the image's layer half-sent, and while it does, the engine's own lines of the pull
are already on the CLI's stderr; then it lets go, and the machine runs."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import threading
import time

from support.env import cli_environ
from support.engine import _rootfs
from support.registry import Registry
from support.sandbox import Sandbox

ENGINE_LINE = ("Trying to pull", "Getting image source signatures", "Copying blob",  # podman (containers/image)
               "Pulling from", "Pulling fs layer", "Downloading")  # docker


def test_create_shows_the_engines_pull_while_it_runs(engine, tmp_path):
    name = f"valyent-test/pulled-{secrets.token_hex(4)}"
    with Registry(_rootfs(tmp_path), name) as registry:
        env = {"CONTAINERS_REGISTRIES_CONF": str(registry.registries_conf(tmp_path / "registries.conf"))}
        sb = Sandbox(tmp_path / "data", driver=engine.name, env=env).start()
        proc = None
        try:
            cli_env = cli_environ(tmp_path / "config", sandbox=sb, fleet="default")
            proc = subprocess.Popen([sys.executable, "-m", "valyent_cli", "machines", "create", "--image",
                                     registry.image, "--wait-timeout", "2m"], env={**os.environ, **cli_env},
                                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            lines: list[str] = []
            reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
            reader.start()
            assert registry.held.wait(90), (registry.requests, lines, sb.log_text())

            def shown() -> list[str]:  # the engine's own lines, in the events' details: "(Trying to pull ...)"
                return [line for line in list(lines)
                        if "machine.prepare " in line and any(word in line for word in ENGINE_LINE)]

            deadline = time.monotonic() + 30
            while not shown() and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.05)
            assert not registry.release.is_set()
            assert any(f"pulling image {registry.image}" in line for line in lines), lines
            assert shown(), f"no line of {engine.name}'s pull while the layer was held: {lines}"
            registry.release.set()
            proc.wait(timeout=120)
            reader.join(10)
            assert proc.returncode == 0, "".join(lines)
            assert "machine.started -> running" in "".join(lines)
            assert any(f"pulled image {registry.image}" in line for line in lines)
        finally:
            registry.release.set()
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
            try:
                sb.finish()
            finally:
                engine.remove_containers_of_sandbox(sb.data_dir)
                engine.run("rmi", "--force", registry.image)
