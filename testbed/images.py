"""Build small OCI images without a Docker engine; push them to the test bed's registry.

An OCI image is a handful of JSON documents and one tar layer per filesystem change. This module
writes them directly (deterministically: fixed mtimes and ordering, so the same inputs give the
same digest) and pushes the archive to the test bed's registry (`publish`), from which the
kubelet pulls it like any image; Pods reference it pinned (`batchx.local/name@sha256:...`).
Only the pause image, which containerd needs before the first Pod, is imported with `ctr`.
The product's own images come from images/Dockerfile instead (testbed/product_images.py).

    python -m testbed.images build pause        # any name from RECIPES below
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from testbed import paths, registry

REGISTRY = "batchx.local"
LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
LAYER_TAR_GZ = "application/vnd.oci.image.layer.v1.tar+gzip"


@dataclass(frozen=True)
class Entry:
    """One file in an image layer: content from bytes, from a host file, or a symlink target."""

    path: str
    data: bytes | None = None
    source: Path | None = None
    link: str | None = None
    mode: int = 0o755


@dataclass(frozen=True)
class DirLayer:
    """A whole directory tree as one layer (e.g. a debootstrap root filesystem).

    `key` names the tree's content (e.g. a hash of what built it); the layer's tar is cached under
    it, so a large tree is archived once, not at every import.
    """

    root: Path
    key: str


@dataclass
class ImageSpec:
    name: str
    tag: str
    entries: list[Entry]
    base_layers: list[DirLayer] = field(default_factory=list)
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    env: list[str] = field(default_factory=lambda: ["PATH=/bin:/usr/bin:/sbin:/usr/sbin"])
    user: str = ""
    workdir: str = "/"
    labels: dict[str, str] = field(default_factory=dict)  # the config's Labels (Dockerfile LABEL)

    @property
    def ref(self) -> str:
        return f"{REGISTRY}/{self.name}:{self.tag}"


@dataclass(frozen=True)
class BuiltImage:
    ref: str
    digest: str

    @property
    def pinned(self) -> str:
        """The digest-pinned reference (`batchx.local/name@sha256:...`)."""
        return f"{self.ref.rsplit(':', 1)[0]}@{self.digest}"


def _tar_layer(entries: Iterable[Entry]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs: set[str] = set()
        for entry in sorted(entries, key=lambda e: e.path):
            rel = entry.path.strip("/")
            parts = rel.split("/")
            for i in range(1, len(parts)):
                d = "/".join(parts[:i])
                if d not in dirs:
                    dirs.add(d)
                    info = tarfile.TarInfo(d)
                    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
                    tar.addfile(info)
            info = tarfile.TarInfo(rel)
            info.mtime, info.mode = 0, entry.mode
            if entry.link is not None:
                info.type, info.linkname = tarfile.SYMTYPE, entry.link
                tar.addfile(info)
                continue
            data = entry.data if entry.data is not None else Path(entry.source or "").read_bytes()
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _reset_mtime(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.mtime = 0
    return info


def _tar_dir(layer: DirLayer) -> bytes:
    """The tree as an uncompressed tar, cached by `layer.key` (names and order deterministic)."""
    cached = paths.cache_dir() / "layers" / f"{layer.key}.tar"
    if cached.exists():
        return cached.read_bytes()
    names: list[str] = []
    for dirpath, dirnames, filenames in os.walk(layer.root):
        rel = os.path.relpath(dirpath, layer.root)
        names += [os.path.normpath(os.path.join(rel, n)) for n in dirnames + filenames]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(names):
            tar.add(layer.root / name, arcname=name, recursive=False, filter=_reset_mtime)
    cached.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=cached.parent, suffix=".partial")
    with os.fdopen(fd, "wb") as f:
        f.write(buf.getvalue())
    os.replace(tmp, cached)
    return buf.getvalue()


def _blob(layout: Path, data: bytes) -> tuple[str, int]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256" / digest[7:]).write_bytes(data)
    return digest, len(data)


def write_archive(spec: ImageSpec, out: Path) -> str:
    """Write `spec` as an OCI image-layout tar at `out`; return the manifest digest."""
    layout = Path(tempfile.mkdtemp(dir=out.parent, suffix=".layout"))
    (layout / "blobs" / "sha256").mkdir(parents=True)
    layers, diff_ids = [], []
    # Directory layers stay uncompressed (gzip of a few hundred MB costs more than it saves on a
    # local import); the small top layer of single files is gzipped.
    for raw, media_type, packed in [
        *((r, LAYER_TAR, r) for r in (_tar_dir(d) for d in spec.base_layers)),
        *((r, LAYER_TAR_GZ, gzip.compress(r, mtime=0)) for r in [_tar_layer(spec.entries)]),
    ]:
        diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
        digest, size = _blob(layout, packed)
        layers.append({"mediaType": media_type, "digest": digest, "size": size})
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Entrypoint": spec.entrypoint or None,
            "Cmd": spec.cmd or None,
            "Env": spec.env,
            "User": spec.user,
            "WorkingDir": spec.workdir,
            # Only when set, so images without labels keep the digests they always had.
            **({"Labels": dict(spec.labels)} if spec.labels else {}),
        },
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        # One entry per layer: builders that take this image as a base (buildah) count them.
        "history": [
            {"created": "1970-01-01T00:00:00Z", "created_by": "testbed.images"} for _ in layers
        ],
    }
    config_digest, config_size = _blob(layout, json.dumps(config, sort_keys=True).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config_size,
        },
        "layers": layers,
    }
    manifest_digest, manifest_size = _blob(layout, json.dumps(manifest, sort_keys=True).encode())
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": manifest_digest,
                "size": manifest_size,
                "annotations": {"org.opencontainers.image.ref.name": spec.ref},
            }
        ],
    }
    (layout / "index.json").write_text(json.dumps(index))
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    with tarfile.open(out, "w") as tar:
        for item in sorted(layout.rglob("*")):
            tar.add(item, arcname=str(item.relative_to(layout)), recursive=False)
    shutil.rmtree(layout)
    return manifest_digest


def ctr(*args: str, sock: Path | None = None) -> str:
    sock = sock or paths.containerd_socket()
    cmd = ["ctr", "--address", str(sock), "--namespace", "k8s.io", *args]
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def publish(spec: ImageSpec) -> BuiltImage:
    """Build `spec` and push it to the test bed's registry; safe to run concurrently."""
    images_dir = paths.cache_dir() / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=images_dir, suffix=".partial") as tmp:
        archive = Path(tmp) / "image.tar"
        digest = write_archive(spec, archive)
        pushed = registry.push_archive(archive, spec.name, spec.tag)
    if pushed != digest:  # pragma: no cover - skopeo --preserve-digests refuses to change it
        raise RuntimeError(f"{spec.ref}: pushed as {pushed}, built as {digest}")
    return BuiltImage(spec.ref, digest)


def import_image(spec: ImageSpec, sock: Path | None = None) -> BuiltImage:
    """Build `spec` and import it into the kubelet's containerd (no registry involved; for the
    pause image); safe to run concurrently.

    The archive is written under a private temporary name (two builders never share a file,
    even when they build different content under the same reference) and removed once imported:
    containerd keeps the content, and large directory layers stay cached by their own key.
    """
    images_dir = paths.cache_dir() / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=images_dir, suffix=".partial.tar")
    os.close(fd)
    archive = Path(tmp_name)
    try:
        digest = write_archive(spec, archive)
        ctr("images", "import", "--no-unpack", str(archive), sock=sock)
    finally:
        archive.unlink(missing_ok=True)
    image = BuiltImage(spec.ref, digest)
    # CRI looks images up by every name they carry; name it by digest too for pinned references.
    ctr("images", "tag", "--force", spec.ref, image.pinned, sock=sock)
    return image


# ---------------------------------------------------------------------------------------------
# Recipes: the images the test bed itself needs. Product images (runner, examples) are built by
# their own recipes elsewhere with the same builder.


def busybox_entries() -> list[Entry]:
    """A busybox-static userland: /bin/busybox plus a symlink per applet it was built with."""
    busybox = Path(shutil.which("busybox") or "/bin/busybox")
    applets = subprocess.run(
        [str(busybox), "--list"], check=True, capture_output=True, text=True
    ).stdout.split()
    entries = [Entry("bin/busybox", source=busybox)]
    entries += [Entry(f"bin/{a}", link="busybox") for a in applets if a != "busybox"]
    entries += [Entry("tmp/.keep", data=b"", mode=0o644)]
    # Static glibc still consults NSS; without these files its resolver crashes (wget segfaults).
    entries += [
        Entry("etc/nsswitch.conf", data=b"passwd: files\ngroup: files\nhosts: files\n", mode=0o644),
        Entry(
            "etc/passwd",
            mode=0o644,
            data=b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n",
        ),
        Entry("etc/group", data=b"root:x:0:\nnogroup:x:65534:\n", mode=0o644),
    ]
    return entries


def pause_spec() -> ImageSpec:
    """Kubernetes' own pause program, compiled statically from the k8s.io/kubernetes module."""
    binary = paths.cache_dir() / "pause" / "pause"
    if not binary.exists():
        source = paths.kube_source_dir() / "build" / "pause" / "linux" / "pause.c"
        binary.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["gcc", "-Os", "-static", "-DVERSION=v3.10-batchx", "-o", str(binary), str(source)],
            check=True,
        )
    return ImageSpec("pause", "3.10", [Entry("pause", source=binary)], entrypoint=["/pause"])


def busybox_spec() -> ImageSpec:
    return ImageSpec("busybox", "1", busybox_entries(), cmd=["sh"])


RECIPES = {"pause": pause_spec, "busybox": busybox_spec}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("verb", choices=["build"])
    parser.add_argument("names", nargs="+", choices=sorted(RECIPES))
    args = parser.parse_args()
    for name in args.names:
        built = publish(RECIPES[name]())
        print(built.pinned)


if __name__ == "__main__":
    main()
