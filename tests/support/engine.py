"""Container engine fixtures: offline images from a busybox-static rootfs, on podman and on docker.

`engine` (session, parametrized ``podman`` and ``docker``): the engine a container-driver test runs on; every test
using it (directly, or through `engine_images`, `engine_sandbox`, `engine_env`) runs once per engine. Where an
engine is missing (podman not installed, no docker daemon answering, no busybox to build the images from) its
tests skip, saying why; in CI (`CI=true`, as CI services set it) they fail instead, since CI
installs both engines and starts dockerd (`.ci/run`), so a missing engine there is a broken run, not a skip.

No image registry is reachable in CI, so every image is imported (`<engine> import`) from a directory holding
busybox's static binary and its applet links.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from support.host import skip_or_fail

ENGINES = ("podman", "docker")
# a name of this run only: test runs on the same machine at once (or an interrupted one's leftovers) must not
# untag or replace each other's images
RUN = secrets.token_hex(3)
BASE_IMAGE = f"localhost/valyent-test-busybox-{RUN}:latest"
HELLO_IMAGE = f"localhost/valyent-test-hello-{RUN}:latest"
WEB_IMAGE = f"localhost/valyent-test-web-{RUN}:latest"
#: two versions of an app (`valyent deploy`): httpd serving "v1" or "v2" on port 8080
APP_IMAGES = {v: f"localhost/valyent-test-app-{RUN}:{v}" for v in ("v1", "v2")}
LABEL = "valyent.machine"


def _answers(*args: str) -> bool:
    try:
        return subprocess.run(args, capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def engine_missing(engine: str = "podman") -> str | None:
    """Why ``engine`` cannot run the container tests here, or None."""
    if not shutil.which(engine):
        return f"{engine} is not installed (CI installs it: .ci/run)"
    if engine == "docker" and not _answers("docker", "version", "--format", "{{.Server.Version}}"):
        return "no docker daemon answers `docker version` (.ci/run starts dockerd)"
    if not shutil.which("busybox"):
        return "busybox(-static) is not installed: the test images are built from it (.ci/run installs it)"
    return None


class Engine:
    """One container engine's command line, as the tests use it (the sandbox's driver uses its own)."""

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return self.name

    def run(self, *args: str, check: bool = False, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([self.name, *args], capture_output=True, text=True, check=check, timeout=timeout)

    def running(self, container: str) -> str:
        """`true`/`false`: whether the container runs (both engines print Go's bool)."""
        return self.run("inspect", "--format", "{{.State.Running}}", container).stdout.strip()

    def containers_of(self, machine_id: str) -> list[str]:
        return self.run("ps", "--all", "--quiet", "--filter", f"label={LABEL}={machine_id}",
                        check=True, timeout=30).stdout.split()

    def containers_of_sandbox(self, data_dir: Path) -> list[str]:
        """The containers of the sandbox of ``data_dir`` (only its own: other runs may use the engine at once)."""
        from valyent_cli.local.procs import sandbox_id

        return self.run("ps", "--all", "--quiet", "--filter", f"label=valyent.sandbox={sandbox_id(data_dir)}",
                        timeout=30).stdout.split()

    def remove_containers_of_sandbox(self, data_dir: Path) -> None:
        """What a failed test left behind (a passing one deletes its machines, and so their containers)."""
        ids = self.containers_of_sandbox(data_dir)
        if ids:
            # docker's rm has no --time: kill first, then remove
            self.run("kill", *ids, timeout=60)
            self.run("rm", "--force", *ids, timeout=60)

    def volume_rm(self, name: str) -> None:
        self.run("volume", "rm", "--force", name)


@pytest.fixture(scope="session", params=ENGINES)
def engine(request) -> Engine:
    reason = engine_missing(request.param)
    if reason:
        skip_or_fail(reason)
    return Engine(request.param)


def _rootfs(tmp: Path) -> Path:
    """A root filesystem: /bin/busybox and a link per applet, /etc/passwd, an httpd document root."""
    root = tmp / "rootfs"
    for d in ("bin", "etc", "tmp", "root", "www", "proc", "sys", "dev"):
        (root / d).mkdir(parents=True, exist_ok=True)
    busybox = root / "bin" / "busybox"
    shutil.copy2(os.path.realpath(shutil.which("busybox")), busybox)
    applets = subprocess.run([str(busybox), "--list"], capture_output=True, text=True, check=True).stdout.split()
    for applet in applets:
        if applet != "busybox" and not (root / "bin" / applet).exists():
            os.symlink("busybox", root / "bin" / applet)
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\nnobody:x:65534:\n")
    (root / "www" / "index.html").write_text("hello from the web image\n")
    (root / "tmp").chmod(0o1777)
    return root


def _import(engine: Engine, tarball: Path, image: str, *changes: str) -> None:
    args = ["import"]
    for change in ("ENV PATH=/bin", *changes):
        args += ["--change", change]
    engine.run(*args, str(tarball), image, check=True)


def _images(tmp_path_factory, engine: Engine, suffix: str = ""):
    """Import the test images into ``engine`` (names of this run, plus ``suffix``); yield {"base", "hello", "web",
    "v1", "v2"} -> image name; remove them afterwards."""
    tmp = tmp_path_factory.mktemp(f"images-{engine.name}{suffix}")
    rootfs = _rootfs(tmp)
    tarball = tmp / "rootfs.tar"
    with tarfile.open(tarball, "w") as tar:
        tar.add(rootfs, arcname=".")
    names = {"base": BASE_IMAGE, "hello": HELLO_IMAGE, "web": WEB_IMAGE, **APP_IMAGES}
    names = {k: v.replace(f"-{RUN}", f"-{RUN}{suffix}") for k, v in names.items()}
    _import(engine, tarball, names["base"], 'CMD ["/bin/sh"]')
    _import(engine, tarball, names["hello"],
            'CMD ["sh", "-c", "echo hello from the image CMD; echo to stderr >&2; exec sleep 600"]')
    _import(engine, tarball, names["web"], 'CMD ["httpd", "-f", "-p", "8080", "-h", "/www"]')
    for version in APP_IMAGES:
        _import(engine, tarball, names[version],
                f'CMD ["sh", "-c", "mkdir -p /app && printf {version} > /app/index.html && exec httpd -f -p 8080 -h /app"]')
    yield names
    # the next run imports them again: leave no image behind (not --force: a container left by a failed test
    # would go with it, and its sandbox's cleanup reports it)
    engine.run("rmi", *names.values())


@pytest.fixture(scope="session")
def engine_images(tmp_path_factory, engine) -> dict:
    """The test images, imported into ``engine``: {"base", "hello", "web", "v1", "v2"} -> image name."""
    yield from _images(tmp_path_factory, engine)


@pytest.fixture(scope="session")
def podman() -> Engine:
    """podman alone, for the tests that watch podman's own command line (a wrapper on the sandbox's PATH): skips,
    saying why, where podman or busybox is missing; fails instead in CI."""
    reason = engine_missing("podman")
    if reason:
        skip_or_fail(reason)
    return Engine("podman")


@pytest.fixture(scope="session")
def podman_images(tmp_path_factory, podman) -> dict:
    """The test images in podman, under names of their own (``engine_images`` of podman may run beside them)."""
    yield from _images(tmp_path_factory, podman, "-p")
