"""A tiny OCI registry for tests: blobs and manifests in memory, served over the distribution
API by a real HTTP server on 127.0.0.1 (the reader's boundary is HTTP, so that is what it gets).

    with serve_registry() as registry:
        image = registry.push("examples/tool", "1.0.0", [layer({"a.txt": b"hi"})], labels={...})
        read_image(f"127.0.0.1:{registry.port}/examples/tool:1.0.0", ["/a.txt"])
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
LAYER_TAR_GZ = "application/vnd.oci.image.layer.v1.tar+gzip"


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer(files: Mapping[str, bytes | None], *, gzipped: bool = True) -> tuple[bytes, str]:
    """A layer blob and its media type; a None value writes a whiteout (`.wh.<name>`), and a
    name ending in `/.wh..wh..opq` an opaque folder marker."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            folder, _, base = name.rpartition("/")
            path = name if data is not None or base.startswith(".wh.") else f"{folder}/.wh.{base}"
            info = tarfile.TarInfo(path.lstrip("/"))
            payload = data or b""
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    raw = buf.getvalue()
    return (gzip.compress(raw, mtime=0), LAYER_TAR_GZ) if gzipped else (raw, LAYER_TAR)


@dataclass
class FakeRegistry:
    """What the server serves, per repository: blobs by digest and manifests by tag/digest."""

    port: int = 0
    blobs: dict[str, bytes] = field(default_factory=dict)
    manifests: dict[tuple[str, str], tuple[bytes, str]] = field(default_factory=dict)
    token: str | None = None  # when set, require `Authorization: Bearer <token>`
    requests: list[str] = field(default_factory=list)

    def put_manifest(self, repository: str, tag: str, document: Mapping[str, Any]) -> str:
        raw = json.dumps(document).encode()
        digest = digest_of(raw)
        media_type = str(document.get("mediaType", OCI_MANIFEST))
        self.manifests[(repository, tag)] = (raw, media_type)
        self.manifests[(repository, digest)] = (raw, media_type)
        return digest

    def push(
        self,
        repository: str,
        tag: str,
        layers: list[tuple[bytes, str]],
        labels: Mapping[str, str] | None = None,
    ) -> str:
        """An image with `layers` (bottom first) and config `labels`; its manifest digest."""
        config = json.dumps(
            {"architecture": "amd64", "os": "linux", "config": {"Labels": dict(labels or {})}}
        ).encode()
        self.blobs[digest_of(config)] = config
        for data, _ in layers:
            self.blobs[digest_of(data)] = data
        return self.put_manifest(
            repository,
            tag,
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": digest_of(config),
                    "size": len(config),
                },
                "layers": [
                    {"mediaType": t, "digest": digest_of(d), "size": len(d)} for d, t in layers
                ],
            },
        )


@contextmanager
def serve_registry(registry: FakeRegistry | None = None) -> Iterator[FakeRegistry]:
    state = registry or FakeRegistry()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def _send(self, code: int, body: bytes, content_type: str = "application/json") -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            if code == 401:
                realm = f"http://127.0.0.1:{state.port}/token"
                self.send_header(
                    "WWW-Authenticate", f'Bearer realm="{realm}",service="fake",scope="pull"'
                )
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            state.requests.append(self.path)
            if self.path.startswith("/token"):
                self._send(200, json.dumps({"token": state.token}).encode())
                return
            if state.token and self.headers.get("Authorization") != f"Bearer {state.token}":
                self._send(401, b'{"errors": [{"code": "UNAUTHORIZED"}]}')
                return
            path = self.path.removeprefix("/v2/")
            repository, _, rest = path.partition("/manifests/")
            if rest:
                found = state.manifests.get((repository, rest))
                if found is None:
                    self._send(404, b'{"errors": [{"code": "MANIFEST_UNKNOWN"}]}')
                else:
                    self._send(200, found[0], found[1])
                return
            repository, _, digest = path.partition("/blobs/")
            blob = state.blobs.get(digest)
            if not digest or blob is None:
                self._send(404, b'{"errors": [{"code": "BLOB_UNKNOWN"}]}')
            else:
                self._send(200, blob, "application/octet-stream")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
