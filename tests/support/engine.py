"""Container engine fixtures: offline images from a busybox-static rootfs, and a sandbox with the podman driver.

No image registry is reachable in CI, so every image is `podman import`ed from a directory holding busybox's
static binary and its applet links. Tests that need an engine skip, saying why, where podman or busybox is
missing (CI installs both: `.ci/run`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

BASE_IMAGE = "localhost/valyent-test-busybox:latest"
HELLO_IMAGE = "localhost/valyent-test-hello:latest"
WEB_IMAGE = "localhost/valyent-test-web:latest"
#: two versions of an app (`valyent deploy`): httpd serving "v1" or "v2" on port 8080
APP_IMAGES = {v: f"localhost/valyent-test-app:{v}" for v in ("v1", "v2")}
LABEL = "valyent.machine"


def engine_missing() -> str | None:
    if not shutil.which("podman"):
        return "podman is not installed (CI installs it: .ci/run)"
    if not shutil.which("busybox"):
        return "busybox(-static) is not installed: the test images are built from it (.ci/run installs it)"
    return None


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


def _import(rootfs: Path, tarball: Path, image: str, *changes: str) -> None:
    args = ["podman", "import"]
    for change in ("ENV PATH=/bin", *changes):
        args += ["--change", change]
    subprocess.run([*args, str(tarball), image], check=True, capture_output=True, timeout=120)


@pytest.fixture(scope="session")
def engine_images(tmp_path_factory) -> dict:
    reason = engine_missing()
    if reason:
        pytest.skip(reason)
    tmp = tmp_path_factory.mktemp("images")
    rootfs = _rootfs(tmp)
    tarball = tmp / "rootfs.tar"
    with tarfile.open(tarball, "w") as tar:
        tar.add(rootfs, arcname=".")
    _import(rootfs, tarball, BASE_IMAGE, 'CMD ["/bin/sh"]')
    _import(rootfs, tarball, HELLO_IMAGE,
            'CMD ["sh", "-c", "echo hello from the image CMD; echo to stderr >&2; exec sleep 600"]')
    _import(rootfs, tarball, WEB_IMAGE, 'CMD ["httpd", "-f", "-p", "8080", "-h", "/www"]')
    for version, image in APP_IMAGES.items():
        _import(rootfs, tarball, image,
                f'CMD ["sh", "-c", "mkdir -p /app && printf {version} > /app/index.html && exec httpd -f -p 8080 -h /app"]')
    yield {"base": BASE_IMAGE, "hello": HELLO_IMAGE, "web": WEB_IMAGE, **APP_IMAGES}
    # the next run imports them again: leave no image (nor its layers, once untagged) behind
    # (not --force: a container of another test session would go with it)
    subprocess.run(["podman", "rmi", BASE_IMAGE, HELLO_IMAGE, WEB_IMAGE, *APP_IMAGES.values()], capture_output=True,
                   timeout=120)


def containers_of(machine_id: str) -> list[str]:
    out = subprocess.run(["podman", "ps", "--all", "--quiet", "--filter", f"label={LABEL}={machine_id}"],
                         capture_output=True, text=True, check=True, timeout=30).stdout
    return out.split()


def containers_of_sandbox(data_dir: Path) -> list[str]:
    """The containers of the sandbox of ``data_dir`` (only its own: other runs may use podman at the same time)."""
    from valyent_cli.local.procs import sandbox_id

    return subprocess.run(["podman", "ps", "--all", "--quiet", "--filter",
                           f"label=valyent.sandbox={sandbox_id(data_dir)}"],
                          capture_output=True, text=True, timeout=30).stdout.split()


def remove_containers_of_sandbox(data_dir: Path) -> None:
    """What a failed test left behind (a passing one deletes its machines, and so their containers)."""
    ids = containers_of_sandbox(data_dir)
    if ids:
        subprocess.run(["podman", "rm", "--force", "--time", "0", *ids], capture_output=True, timeout=60)
