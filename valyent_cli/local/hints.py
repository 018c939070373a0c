"""What `valyent local start` suggests trying first: a command that can work on this machine.

With a container driver, `--image nginx` works only when the engine has nginx or can pull it. Offline (no image
registry resolves), the suggestion names an image the engine already has, or says how to get one.
"""

from __future__ import annotations

import subprocess

#: the image the README's first command uses
FIRST_IMAGE = "nginx"
#: the registry an unqualified name is pulled from
REGISTRY = "registry-1.docker.io"


def _run(args: list[str]) -> subprocess.CompletedProcess | None:
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None


def _has_image(engine: str, image: str) -> bool:
    done = _run([engine, "image", "inspect", image])
    return done is not None and done.returncode == 0


def _images(engine: str) -> list[str]:
    done = _run([engine, "images", "--format", "{{.Repository}}:{{.Tag}}"])
    if done is None or done.returncode != 0:
        return []
    return [line for line in done.stdout.split() if "<none>" not in line]


def registry_reachable(host: str = REGISTRY, timeout: float = 1.5) -> bool:
    """Whether the registry's name resolves (a thread, so that a slow resolver costs at most `timeout`)."""
    import socket
    import threading

    result: list[bool] = []

    def look() -> None:
        try:
            socket.getaddrinfo(host, 443)
            result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=look, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


def first_command(driver: str | None) -> str:
    """The line `local start` ends with: a first command that can work with this driver here."""
    nginx = f"Try: valyent machines create --image {FIRST_IMAGE}"
    if driver not in ("podman", "docker"):
        return nginx
    if _has_image(driver, FIRST_IMAGE) or registry_reachable():
        return nginx
    images = _images(driver)
    if images:
        return f"Try: valyent machines create --image {images[0]}   (no image registry answers: use an image {driver} has)"
    return (f"No image registry answers and {driver} has no image: get one (`{driver} load`, `{driver} import`), "
            "or run commands without images: valyent local stop && valyent local start --driver process")
