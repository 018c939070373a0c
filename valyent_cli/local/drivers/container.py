"""Machines as containers of their image, through the podman or docker command line.

Each machine is one container named `valyent-<machine id>`, labelled `valyent.machine=<id>` and
`valyent.sandbox=<hash of the data dir>`. It is created once (pulling its image first when missing, the engine's
progress lines going to the machine's events) and kept while the machine lives, so its files survive a stop and
a start, as a VM's disk does; a delete removes it. A run is `<engine> start --attach`: the container's stdout
and stderr are the machine's log, live, and its exit code is the engine's (`inspect`). Stop signals go through
`<engine> kill --signal`. exec is `<engine> exec`; the filesystem calls work on the container's merged root
(the engine's `GraphDriver.Data.MergedDir`, reachable when the engine runs as the same user as the sandbox).
Gateway target ports are published on 127.0.0.1 only, on ports the engine picks.

Written against the command lines podman and docker share; both are tested (tests/support/engine.py runs every
container test on each). Where they differ, the driver reads both: docker's client says `Error response from daemon:`
where podman says `Error:`, and docker refuses a memory limit under 6 MB that podman applies.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import signal
import subprocess
from pathlib import Path

from valyent_cli.local import procs
from valyent_cli.local.drivers.base import (
    Driver, Instance, LineSink, PipedInstance, Pipes, PrepareFailed, StartFailed, finish_exec,
)
from valyent_cli.local.drivers.engine_events import EngineEvents
from valyent_cli.local.problems import Problem

log = logging.getLogger("valyent.local")

MACHINE_LABEL = "valyent.machine"
SANDBOX_LABEL = "valyent.sandbox"
MAX_PULL_EVENTS = 40
EXEC_MARKER = procs.EXEC_MARKER


def container_name(machine_id: str) -> str:
    return f"valyent-{machine_id}"


# how each engine's client introduces its error: podman `Error: ...`, docker `Error response from daemon: ...`
# (and `Error: ...` for what the client itself refuses)
ERROR_PREFIXES = ("error response from daemon:", "error:")
def namespace_image(namespace: str, image: str) -> str:
    """Where a namespace's builds without a registry live in the engine: `localhost/<namespace>/<image>` (builds.py
    tags them so; a machine of that namespace naming `<image>` gets it first)."""
    return f"localhost/{namespace}/{image}"


def env_secret_name(machine_id: str, key: str) -> str:
    """The podman secret that carries a multi-line environment value of a machine (issue 27 item 5)."""
    return f"valyent-{machine_id}-env-{key}"


def _error_text(stderr: str, fallback: str) -> str:
    """The engine's own message, without the client's prefix: its last `Error...` line, else its last line."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    for line in reversed(lines):
        low = line.lower()
        if low.startswith("error"):
            for prefix in ERROR_PREFIXES:
                if low.startswith(prefix):
                    return line[len(prefix):].strip() or fallback
            return line
    return lines[-1] if lines else fallback


def _limits_unsupported(stderr: str) -> bool:
    """Whether `create` failed because this host cannot apply memory/cpu limits at all (no cgroup controller), not
    because the limit itself was refused: docker's `Minimum memory limit allowed is 6MB` names memory too, and
    dropping the limit then would run the machine with none."""
    low = stderr.lower()
    if "minimum memory limit" in low:
        return False
    return any(w in low for w in ("cgroup", "memory", "cpu"))


def _started(state: dict) -> bool:
    """Whether the container's process ever started (a failed start leaves StartedAt at Go's zero time)."""
    st = state.get("State") or {}
    return bool(st.get("Running")) or not str(st.get("StartedAt") or "0001-").startswith("0001-")


def qualify(image: str) -> str:
    """A short name (`nginx`, `user/app:1`) as docker reads it (`docker.io/library/nginx`), since podman refuses
    short names it has no search registry for."""
    first, sep, _ = image.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return image
    return f"docker.io/{image}" if sep else f"docker.io/library/{image}"


#: seconds an instance whose engine client ended waits for the engine's `died` event before asking the engine
DIED_GRACE = 2.0


class ContainerInstance(PipedInstance):
    def __init__(self, driver: ContainerDriver, name: str, transport, proto: Pipes, died=None, activity=None):
        self.driver = driver
        self.name = name
        self.died = died  # the engine's `died` event (EngineEvents), when it streams them
        self.activity = activity or [0.0]  # when the container last wrote a line
        super().__init__(driver.loop, transport, proto)

    async def _wait(self) -> int:
        if self.died is not None:
            await asyncio.wait({self.died, self.proto.exited}, return_when=asyncio.FIRST_COMPLETED)
            if not self.died.done():
                # The client ended first (a busy machine): the engine logged the death before its clean-up let the
                # client go, and its event is on its way (podman's file events log is read by polling, every 250 ms)
                await asyncio.wait({self.died}, timeout=DIED_GRACE)
            if self.died.done() and not self.died.cancelled() and isinstance(self.died.result(), int):
                # The engine says the container died, with its code: its client (`start --attach`) takes a
                # while longer to end (the engine's clean-up). Wait only for the output in transit to arrive.
                await self._quiet()
                self.proto.flush()
                self.driver.spawn_task(self._reap())
                return self.died.result()
            self.driver.events.forget(self.name, self.died)
        returncode = await self.proto.exited
        await self._collect(2.0)
        state = await self.driver.inspect(self.name)
        if state and state.get("State", {}).get("Running"):
            # the attached client ended but the container did not: a stopped machine runs nothing
            await self.driver.run("kill", self.name)
            state = await self.driver.inspect(self.name)
        if state and isinstance(state.get("State", {}).get("ExitCode"), int):
            return state["State"]["ExitCode"]
        return procs.exit_code_of(returncode)

    async def _quiet(self, quiet: float = 0.05, cap: float = 1.0) -> None:
        """Until the container's output has been quiet for `quiet` s, or its pipes closed (at most `cap` s)."""
        end = self.driver.loop.time() + cap
        while not self.proto.pipes_closed.done():
            now = self.driver.loop.time()
            idle = now - self.activity[0]
            if idle >= quiet or now >= end:
                return
            await asyncio.wait({self.proto.pipes_closed}, timeout=min(quiet - idle, end - now))

    async def _reap(self) -> None:
        """The engine's client ends after its clean-up: what it still relays goes to the log, then it is let go."""
        await self.proto.exited
        await self._collect(2.0)

    def signal(self, sig: signal.Signals) -> None:
        self.driver.spawn_task(self.driver.run("kill", "--signal", signal.Signals(sig).name, self.name))


class ContainerDriver(Driver):
    prepares_in_background = True

    def __init__(self, kind: str, engine: str, data_dir: Path):
        self.name = kind
        self.engine = engine
        self.data_dir = data_dir
        self.loop = asyncio.get_running_loop()
        self.sandbox_id = procs.sandbox_id(data_dir)
        self.tasks: set[asyncio.Task] = set()
        self.just_created: set[str] = set()
        # what this server knows to be there, so that a create asks the engine only what it must
        self.existing: set[str] = set()  # container names (created here, or kept by reconcile)
        self.images: set[str] = set()  # images seen present
        # starts and exits come from the engine's event stream, not from polling `inspect`
        self.events = EngineEvents(engine, f"{SANDBOX_LABEL}={self.sandbox_id}", self.loop)
        self.events.start()

    def describe(self) -> dict:
        return {"driver": self.name, "engine": self.engine}

    def spawn_task(self, coro) -> asyncio.Task:
        task = self.loop.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def run(self, *args: str, timeout: float = 120, input: bytes | None = None) -> tuple[int, str, str]:
        """Run `<engine> args...`, `input` on its stdin: (exit code, stdout, stderr)."""
        try:
            proc = await asyncio.create_subprocess_exec(
                self.engine, *args, stdin=subprocess.DEVNULL if input is None else subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except OSError as exc:
            return 127, "", f"{self.engine}: {exc}"
        try:
            out, err = await asyncio.wait_for(proc.communicate(input), timeout)
        except asyncio.TimeoutError:
            proc.kill()
            out, err = await proc.communicate()
            return 124, out.decode(errors="replace"), err.decode(errors="replace") + f"\ntimed out after {timeout} s"
        return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")

    async def inspect(self, name: str) -> dict | None:
        code, out, _ = await self.run("container", "inspect", name)
        if code != 0:
            return None
        try:
            data = json.loads(out)
        except ValueError:
            return None
        return data[0] if isinstance(data, list) and data else None

    # -- prepare: image and container -------------------------------------------------------------------------
    async def _pull(self, image: str, progress) -> str:
        """The image's name to create the container from, pulled first when the engine does not have it."""
        if image in self.images:
            return image  # seen here before (a create that fails on it asks again: _create)
        code, _, _ = await self.run("image", "inspect", image)
        if code == 0:
            self.images.add(image)
            return image
        image = qualify(image)
        progress(f"pulling image {image}")
        try:
            proc = await asyncio.create_subprocess_exec(
                self.engine, "pull", image, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT)
        except OSError as exc:
            raise PrepareFailed(f"cannot run {self.engine}: {exc}") from None
        lines: list[str] = []
        assert proc.stdout is not None
        async for raw in proc.stdout:
            line = raw.decode(errors="replace").strip()
            if not line:
                continue
            lines.append(line)
            # the engine's error line is said once, by the failure that follows (prepare_failed), not as progress
            if len(lines) <= MAX_PULL_EVENTS and not line.lower().startswith(ERROR_PREFIXES):
                progress(line)
        await proc.wait()
        if proc.returncode != 0:
            raise PrepareFailed(f"pulling image {image}: " + _error_text("\n".join(lines), f"exit {proc.returncode}"))
        progress(f"pulled image {image}")
        return image

    def create_args(self, machine_id: str, config: dict, env: dict[str, str], ports: list[int],
                    namespace: str = "default", limits: bool = True) -> list[str]:
        workload = config.get("workload") or {}
        init = workload.get("init") or {}
        guest = config.get("guest") or {}
        args = ["create", "--name", container_name(machine_id),
                "--label", f"{MACHINE_LABEL}={machine_id}", "--label", f"{SANDBOX_LABEL}={self.sandbox_id}"]
        plain = {k: v for k, v in env.items() if "\n" not in v and "\r" not in v}
        if plain:
            # in a 0600 file, not on a command line any local user can read (/proc/*/cmdline): secrets are in it
            env_file = self.data_dir / "machines" / machine_id / "create.env"
            env_file.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(env_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write("".join(f"{k}={v}\n" for k, v in plain.items()))
            args += ["--env-file", str(env_file)]
        for key in env:
            if key not in plain:  # an env file cannot hold a line break: the engine's secret store does (see prepare)
                args += ["--secret", f"{env_secret_name(machine_id, key)},type=env,target={key}"]
        if init.get("user"):
            args += ["--user", str(init["user"])]
        if limits and isinstance(guest.get("memory_mb"), int) and guest["memory_mb"] > 0:
            args += ["--memory", f"{guest['memory_mb']}m"]
        if limits and isinstance(guest.get("cpus"), int) and guest["cpus"] > 0:
            args += ["--cpus", str(guest["cpus"])]
        for port in sorted(set(ports)):
            args += ["--publish", f"127.0.0.1::{port}"]
        for vol in workload.get("volumes") or []:
            if isinstance(vol, dict) and vol.get("name") and vol.get("path"):
                args += ["--volume", f"{self.volume_name(namespace, str(vol['name']))}:{vol['path']}"]
        entrypoint = list(init.get("entrypoint") or [])
        cmd = list(init.get("cmd") or [])
        if entrypoint:
            # docker's --entrypoint takes one executable: the rest of the entrypoint goes before the command
            args += ["--entrypoint", entrypoint[0]]
            cmd = entrypoint[1:] + cmd
        args.append(str(config.get("image")))
        args += cmd
        return args

    def volume_name(self, namespace: str, name: str) -> str:
        """The engine volume of a (namespace, volume name): unambiguous, since a namespace (Ravel's object-name rule)
        holds no `_` and the first `_` ends it (`a` + `b-x` and `a-b` + `x` were both `…-a-b-x`: issue 27 item 6).
        Volumes named by the sandbox before that are not reused."""
        from valyent_cli.local.problems import check_namespace, check_volume_name

        return f"valyent-{self.sandbox_id[:12]}-{check_namespace(namespace, 'namespace')}_" \
               f"{check_volume_name(name, 'volume')}"

    async def prepare(self, machine_id: str, config: dict, env: dict[str, str], ports: list[int], progress,
                      namespace: str = "default") -> None:
        name = container_name(machine_id)
        if name in self.existing:
            return  # prepared before (a start after a stop); spawn checks that it is still there
        image = str(config.get("image") or "")
        if not image:
            raise PrepareFailed("the machine has no image")
        own = namespace_image(namespace, image)
        if qualify(image) != image and (await self.run("image", "inspect", own))[0] == 0:
            image = own  # a short name this namespace built (builds.py), before any other image of that name
        config = {**config, "image": await self._pull(image, progress)}
        await self._env_secrets(machine_id, env)
        try:
            code, _, err = await self.run(*self.create_args(machine_id, config, env, ports, namespace))
            if code != 0 and await self.inspect(name) is not None:
                self.existing.add(name)  # left by an earlier server of this sandbox
                return
            if code != 0 and config["image"] in self.images:  # removed from the engine meanwhile: look again
                self.images.discard(config["image"])
                config = {**config, "image": await self._pull(image, progress)}
                code, _, err = await self.run(*self.create_args(machine_id, config, env, ports, namespace))
            if code != 0 and _limits_unsupported(err):
                progress(f"warning: {self.name} cannot apply the memory and cpu limits here "
                         f"({_error_text(err, 'error')}): the container runs without them")
                code, _, err = await self.run(*self.create_args(machine_id, config, env, ports, namespace,
                                                                limits=False))
        finally:
            (self.data_dir / "machines" / machine_id / "create.env").unlink(missing_ok=True)
        if code != 0:
            await self._remove_env_secrets(machine_id)
            raise PrepareFailed(f"creating the container: {_error_text(err, f'exit {code}')}")
        self.just_created.add(name)
        self.existing.add(name)

    async def _env_secrets(self, machine_id: str, env: dict[str, str]) -> None:
        """Environment values with a line break (multi-line secrets) go into the engine's secret store, written
        through stdin: an env file cannot hold them, and a command line (`--env K=V`) is readable by any local user
        in /proc/*/cmdline (issue 27 item 5). Docker has no such store outside swarm: refused there."""
        from valyent_cli.local.problems import ENV_NAME

        for key, value in env.items():
            if "\n" not in value and "\r" not in value:
                continue
            if self.name != "podman":
                raise PrepareFailed(f"the {self.name} driver cannot pass the multi-line value of {key} to a container "
                                    "without putting it on a command line: use the podman driver, or a value "
                                    "without line breaks")
            if not ENV_NAME.match(key):
                raise PrepareFailed(f"{key!r} is not an environment variable name")
            name = env_secret_name(machine_id, key)
            record = self._env_secrets_record(machine_id)
            record.parent.mkdir(parents=True, exist_ok=True)
            with open(record, "a") as fh:  # what remove() deletes
                fh.write(name + "\n")
            await self.run("secret", "rm", name)
            code, _, err = await self.run("secret", "create", name, "-", input=value.encode())
            if code != 0:
                raise PrepareFailed(f"storing the value of {key}: {_error_text(err, f'exit {code}')}")

    def _env_secrets_record(self, machine_id: str) -> Path:
        return self.data_dir / "machines" / machine_id / "env-secrets"

    async def _remove_env_secrets(self, machine_id: str) -> None:
        try:
            names = sorted(set(self._env_secrets_record(machine_id).read_text().split()))
        except OSError:
            return
        if names:
            await self.run("secret", "rm", *names)
        self._env_secrets_record(machine_id).unlink(missing_ok=True)

    # -- run --------------------------------------------------------------------------------------------------
    async def spawn(self, machine_id: str, config: dict, env: dict[str, str], on_lines: LineSink,
                    namespace: str = "default") -> Instance:
        name = container_name(machine_id)
        if name in self.just_created:  # created a moment ago by prepare: no need to ask the engine again
            self.just_created.discard(name)
        elif await self.inspect(name) is None:
            raise StartFailed(f"container {name} is gone (removed outside the sandbox): delete this machine and "
                              "create it again")
        # Until the container is seen started, its output is held back: if it never starts, what the engine
        # said is the start_failed error (and the log gets it once, from the supervisor).
        early: list[tuple[int, list[bytes]]] | None = []
        activity = [self.loop.time()]

        def sink(fd: int, lines: list[bytes]) -> None:
            activity[0] = self.loop.time()
            if early is not None:
                early.append((fd, lines))
            else:
                on_lines(fd, lines)

        proto = Pipes(self.loop, 2, sink)
        started = died = None
        if self.events.alive:  # registered before the start, so that its events cannot be missed
            started, died = self.events.expect(name, "start"), self.events.expect(name, "died")
        try:
            args, preexec = procs.spawn_args([self.engine, "start", "--attach", name])
            transport, _ = await self.loop.subprocess_exec(
                lambda: proto, *args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                start_new_session=True, preexec_fn=preexec,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            for fut in (started, died):
                if fut is not None:
                    self.events.forget(name, fut)
            raise StartFailed(f"cannot run {self.engine}: {exc}") from None
        deadline = self.loop.time() + 30
        state: dict | None = None
        if started is not None:  # the engine's start event, else (not within 2 s) ask it as below
            await asyncio.wait({started, proto.exited}, timeout=2.0, return_when=asyncio.FIRST_COMPLETED)
        while self.loop.time() < deadline:
            if proto.exited.done() or (started is not None and started.done()):
                break
            state = await self.inspect(name)
            if state and _started(state):
                break
            await asyncio.sleep(0.05)
        if proto.exited.done():
            await proto.settle(1.0)
            state = await self.inspect(name)
            if not state or not _started(state):
                transport.close()
                if died is not None:
                    self.events.forget(name, died)
                said = b"\n".join(line for fd, lines in early if fd == 2 for line in lines).decode(errors="replace")
                error = ((state or {}).get("State") or {}).get("Error") or _error_text(said, f"{self.engine} start failed")
                raise StartFailed(error)
        if started is not None and not started.done():
            self.events.forget(name, started)
        held, early = early, None
        for fd, lines in held:
            on_lines(fd, lines)
        return ContainerInstance(self, name, transport, proto, died, activity)

    async def exec(self, machine_id: str, config: dict, env: dict[str, str], cmd: list[str], timeout_ms: int,
                   namespace: str = "default") -> dict:
        proto = Pipes(self.loop, 2)
        # a mark in the command's environment: on a timeout its processes are found (the host sees a rootful
        # engine's container processes) and killed, not just the engine's client
        mark = secrets.token_hex(8)
        try:
            args, preexec = procs.spawn_args([self.engine, "exec", "--env", f"{EXEC_MARKER}={mark}",
                                              container_name(machine_id), *cmd])
            transport, _ = await self.loop.subprocess_exec(
                lambda: proto, *args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                start_new_session=True, preexec_fn=preexec,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            return {"stdout": "", "stderr": f"cannot run {self.engine}: {exc}\n", "exit_code": 255}

        def kill() -> None:
            procs.kill_exec(mark)  # the command and all it started, found by its marker and its descendants
            transport.kill()

        return await finish_exec(proto, transport, timeout_ms, kill)

    # -- files and ports --------------------------------------------------------------------------------------
    async def fs_root(self, machine_id: str) -> Path:
        state = await self.inspect(container_name(machine_id))
        merged = ((state or {}).get("GraphDriver") or {}).get("Data", {}).get("MergedDir")
        if not merged or not Path(merged).is_dir():
            raise Problem("NOT_IMPLEMENTED", f"the {self.name} driver cannot reach this container's files from the "
                          "sandbox (its root is not mounted where the sandbox runs, as with a rootless engine or a "
                          "remote daemon)", status=501)
        return Path(merged)

    async def fs_mounts(self, namespace: str, config: dict) -> list:
        """The machine's engine volumes, where the engine keeps them on this host (the merged root does not show
        what is mounted over it)."""
        from valyent_cli.local.isolation import Mount

        mounts = []
        for vol in (config.get("workload") or {}).get("volumes") or []:
            if not (isinstance(vol, dict) and vol.get("name") and vol.get("path")):
                continue
            code, out, _ = await self.run("volume", "inspect", "--format", "{{.Mountpoint}}",
                                          self.volume_name(namespace, str(vol["name"])))
            if code == 0 and out.strip() and Path(out.strip()).is_dir():
                mounts.append(Mount(str(vol["path"]), Path(out.strip()), False))
        return mounts

    def upload_dir(self, machine_id: str, root: Path) -> Path:
        tmp = root / "tmp"
        return tmp if tmp.is_dir() and not tmp.is_symlink() else root

    async def endpoint(self, machine_id: str, port: int,
                       peers: frozenset[str] = frozenset()) -> tuple[str, int] | None:
        state = await self.inspect(container_name(machine_id))
        if not state or not state.get("State", {}).get("Running"):
            return None
        settings = state.get("NetworkSettings") or {}
        for binding in (settings.get("Ports") or {}).get(f"{port}/tcp") or []:
            if binding.get("HostPort"):
                return ("127.0.0.1", int(binding["HostPort"]))
        ip = settings.get("IPAddress")  # a port the container did not publish (the gateway came later)
        return (ip, port) if ip else None

    # -- cleanup ----------------------------------------------------------------------------------------------
    async def remove(self, machine_id: str) -> None:
        name = container_name(machine_id)
        self.existing.discard(name)
        self.just_created.discard(name)
        # --force kills a running container first (podman: at once, not after its 10 s stop timeout)
        code, _, err = await self.run("rm", "--force", *(["--time", "0"] if self.name == "podman" else []), name)
        if code != 0 and await self.inspect(name) is not None:
            log.warning("cannot remove container %s: %s", name, _error_text(err, f"exit {code}"))
        await self._remove_env_secrets(machine_id)
        path = self.data_dir / "machines" / machine_id
        if path.exists():
            import shutil

            await asyncio.to_thread(shutil.rmtree, path, True)

    async def ours(self) -> list[dict]:
        code, out, _ = await self.run("ps", "--all", "--quiet", "--filter", f"label={SANDBOX_LABEL}={self.sandbox_id}")
        ids = out.split()
        if code != 0 or not ids:
            return []
        code, out, _ = await self.run("container", "inspect", *ids)
        try:
            return json.loads(out) or []
        except ValueError:
            return []

    async def reconcile(self, keep: set[str]) -> None:
        for c in await self.ours():
            mid = ((c.get("Config") or {}).get("Labels") or {}).get(MACHINE_LABEL)
            cid = c.get("Id") or c.get("ID")
            if not cid:
                continue
            if c.get("State", {}).get("Running"):
                await self.run("kill", cid)
            if mid not in keep:
                await self.run("rm", "--force", cid)
            elif c.get("Name"):
                self.existing.add(str(c["Name"]).lstrip("/"))

    async def shutdown(self) -> None:
        for c in await self.ours():
            if c.get("State", {}).get("Running"):
                await self.run("kill", c.get("Id") or c.get("ID"))
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=5)
        await self.events.close()
