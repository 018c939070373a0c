"""A small image registry on loopback (the distribution API's read side, plain HTTP), serving one image made here
from the test root filesystem, that can hold its layer half-sent until the test lets it go: a pull that is under
way for as long as a test needs, with no registry reachable from this machine.

Both engines pull from it: docker takes any 127.0.0.0/8 registry as insecure (plain HTTP) by default; podman is told
so by a registries.conf (`registries_conf`), given to the sandbox in CONTAINERS_REGISTRIES_CONF."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import secrets
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_TYPE = "application/vnd.docker.container.image.v1+json"
LAYER_TYPE = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Registry:
    """`name:tag` of one image whose layer is `rootfs` plus a file of this run only (so that no engine has the
    layer already); `held` is set once half of the layer is sent, and the rest waits for `release`."""

    def __init__(self, rootfs: Path, name: str, tag: str = "1", cmd: list[str] | None = None):
        self.name, self.tag = name, tag
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w") as tar:
            tar.add(rootfs, arcname=".")
            mark = secrets.token_hex(8).encode()
            info = tarfile.TarInfo("etc/valyent-test-layer")
            info.size = len(mark)
            tar.addfile(info, io.BytesIO(mark))
        layer_tar = raw.getvalue()
        self.layer = gzip.compress(layer_tar, compresslevel=1)
        config = json.dumps({
            "architecture": "amd64", "os": "linux",
            "config": {"Env": ["PATH=/bin"], "Cmd": cmd or ["sleep", "600"]},
            "rootfs": {"type": "layers", "diff_ids": [_digest(layer_tar)]},
        }).encode()
        self.blobs = {_digest(config): config, _digest(self.layer): self.layer}
        self.layer_digest = _digest(self.layer)
        self.manifest = json.dumps({
            "schemaVersion": 2, "mediaType": MANIFEST_TYPE,
            "config": {"mediaType": CONFIG_TYPE, "size": len(config), "digest": _digest(config)},
            "layers": [{"mediaType": LAYER_TYPE, "size": len(self.layer), "digest": self.layer_digest}],
        }).encode()
        self.held = threading.Event()
        self.release = threading.Event()
        self.requests: list[str] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.image = f"{self.host}/{name}:{tag}"

    def registries_conf(self, path: Path) -> Path:
        """A registries.conf that lets podman pull from this registry over plain HTTP."""
        path.write_text(f'[[registry]]\nlocation = "{self.host}"\ninsecure = true\n')
        return path

    def _handler(self):
        registry = self
        manifest_path = re.compile(rf"^/v2/{re.escape(registry.name)}/manifests/([^/]+)$")
        blob_path = re.compile(rf"^/v2/{re.escape(registry.name)}/blobs/(sha256:[0-9a-f]{{64}})$")

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _answer(self, status: int, body: bytes, content_type: str, digest: str | None = None,
                        send_body: bool = True) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Docker-Distribution-API-Version", "registry/2.0")
                if digest:
                    self.send_header("Docker-Content-Digest", digest)
                self.end_headers()
                if not send_body:
                    return
                if digest == registry.layer_digest:  # half, then wait for the test
                    half = len(body) // 2
                    self.wfile.write(body[:half])
                    self.wfile.flush()
                    registry.held.set()
                    registry.release.wait(120)
                    self.wfile.write(body[half:])
                else:
                    self.wfile.write(body)

            def _serve(self, send_body: bool) -> None:
                registry.requests.append(f"{self.command} {self.path}")
                if self.path == "/v2/":
                    return self._answer(200, b"{}", "application/json", send_body=send_body)
                match = manifest_path.match(self.path)
                if match and match.group(1) in (registry.tag, _digest(registry.manifest)):
                    return self._answer(200, registry.manifest, MANIFEST_TYPE, _digest(registry.manifest),
                                        send_body)
                match = blob_path.match(self.path)
                if match and match.group(1) in registry.blobs:
                    return self._answer(200, registry.blobs[match.group(1)], "application/octet-stream",
                                        match.group(1), send_body)
                body = b'{"errors":[{"code":"NAME_UNKNOWN","message":"unknown"}]}'
                return self._answer(404, body, "application/json", send_body=send_body)

            def do_GET(self) -> None:  # noqa: N802
                self._serve(True)

            def do_HEAD(self) -> None:  # noqa: N802
                self._serve(False)

        return Handler

    def __enter__(self) -> Registry:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
