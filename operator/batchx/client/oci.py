"""Read an image's config and a few files from an OCI registry or an OCI image-layout archive.

`bx import` needs two things from an image, without pulling or unpacking it: the config's labels
(`io.batchx.manifest=10`) and the file `/batchx/manifest/manifest.json`. Both sources have the
same structure (index or manifest -> config + layers, every blob named by its sha256), so one
walker serves both:

- a registry, through the OCI distribution API (`GET /v2/<repo>/manifests/<ref>` and
  `/v2/<repo>/blobs/<digest>`), anonymous or with the registry's anonymous bearer token;
- an archive written by `docker save --format oci`, `skopeo copy oci-archive:` or
  `testbed.images.write_archive`: `index.json` and `blobs/sha256/*` in a tar.

An index (multi-platform image) resolves to its linux/amd64 manifest, else the first. Layers are
searched from the top down; the first layer that has the file wins, and a whiteout of the file
or of a folder above it (`.wh.<name>`, `.wh..wh..opq`) in a higher layer hides it. gzip and
uncompressed tar layers are read; every blob is checked against its digest.

References: `[host[:port]/]path[:tag][@sha256:...]`. `batchx.local` (the test bed's registry,
as containerd knows it) is served at http://127.0.0.1:5000 unless `registry_url` says otherwise;
`localhost` and `127.0.0.1` are spoken to over plain HTTP, everything else over HTTPS.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import posixpath
import re
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from batchx.client.errors import RegistryError

__all__ = ["ImageReference", "OciImage", "parse_reference", "read_image"]

DEFAULT_REGISTRY_URLS = {"batchx.local": "http://127.0.0.1:5000"}
DOCKER_HUB = "docker.io"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
_ACCEPT = ", ".join([OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST])
_INDEXES = frozenset({OCI_INDEX, DOCKER_LIST})
_DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
MAX_MANIFEST_BYTES = 4 << 20
REF_NAME = "org.opencontainers.image.ref.name"


@dataclass(frozen=True)
class ImageReference:
    """A parsed registry reference: `registry/repository[:tag][@digest]`."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """The reference without tag or digest, as a container runtime resolves it."""
        return f"{self.registry}/{self.repository}"

    def __str__(self) -> str:
        tag = f":{self.tag}" if self.tag else ""
        digest = f"@{self.digest}" if self.digest else ""
        return f"{self.name}{tag}{digest}"


@dataclass(frozen=True)
class OciImage:
    """What was read: the image's name, manifest digest, config labels and the files asked for."""

    name: str
    digest: str
    labels: Mapping[str, str]
    files: Mapping[str, bytes] = field(default_factory=dict)

    @property
    def pinned(self) -> str:
        """`name@sha256:...`: the digest-pinned reference an Image's spec.image holds."""
        return f"{self.name}@{self.digest}"


def parse_reference(value: str) -> ImageReference:
    """`[host[:port]/]path[:tag][@digest]`; a bare `name` is Docker Hub's `library/name`."""
    rest, digest = value, None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        if not _DIGEST.match(digest):
            raise RegistryError(f"{value!r}: {digest!r} is not a sha256 digest")
    head, _, tail = rest.partition("/")
    if tail and ("." in head or ":" in head or head == "localhost"):
        registry, path = head, tail
    else:
        registry, path = DOCKER_HUB, rest if "/" in rest else f"library/{rest}"
    tag = None
    last = path.rsplit("/", 1)[-1]
    if ":" in last:
        path, tag = path.rsplit(":", 1)
        if not _TAG.match(tag):
            raise RegistryError(f"{value!r}: {tag!r} is not a valid tag")
    if not path or not re.fullmatch(r"[a-z0-9]+([._/-][a-z0-9]+)*", path):
        raise RegistryError(f"{value!r}: {path!r} is not a valid repository name")
    if tag is None and digest is None:
        tag = "latest"
    return ImageReference(registry, path, tag, digest)


def registry_base_url(registry: str, override: str | None = None) -> str:
    """The HTTP(S) base URL the distribution API of `registry` is served at."""
    if override:
        return override.rstrip("/")
    if registry in DEFAULT_REGISTRY_URLS:
        return DEFAULT_REGISTRY_URLS[registry]
    if registry == DOCKER_HUB:
        return "https://registry-1.docker.io"
    host = registry.split(":", 1)[0]
    scheme = "http" if host in ("localhost", "127.0.0.1") else "https"
    return f"{scheme}://{registry}"


def is_archive(source: str) -> bool:
    return source.startswith("oci-archive:") or (source.endswith(".tar") and Path(source).is_file())


def read_image(source: str, paths: Iterable[str], *, registry_url: str | None = None) -> OciImage:
    """Read `source` (a registry reference, `oci-archive:PATH` or a .tar path) and the files at
    `paths` (absolute paths inside the image; those missing are absent from `files`)."""
    blobs: _Blobs
    if is_archive(source):
        blobs = _Archive(Path(source.removeprefix("oci-archive:")))
        name, raw, media_type, digest = blobs.top()
    else:
        ref = parse_reference(source)
        blobs = _Registry(registry_base_url(ref.registry, registry_url), ref.repository)
        raw, media_type, digest = blobs.manifest(ref.digest or ref.tag or "latest")
        name = ref.name
    try:
        manifest = _json(raw, "manifest")
        media_type = media_type or str(manifest.get("mediaType") or OCI_MANIFEST)
        if media_type in _INDEXES or "manifests" in manifest:
            chosen = _platform(manifest)
            raw, _, digest = blobs.manifest(chosen)
            manifest = _json(raw, "manifest")
        config = _json(blobs.blob(str(manifest["config"]["digest"])), "config")
        labels = dict((config.get("config") or {}).get("Labels") or {})
        wanted = {p.strip("/"): p for p in paths}
        files = _find_files(blobs, list(manifest.get("layers") or []), set(wanted))
    except (KeyError, TypeError, AttributeError) as err:
        raise RegistryError(f"{source}: malformed image ({type(err).__name__}: {err})") from None
    finally:
        blobs.close()
    return OciImage(name, digest, labels, {wanted[k]: v for k, v in files.items()})


# --------------------------------------------------------------------------- the walker


class _Blobs(Protocol):
    def manifest(self, reference: str) -> tuple[bytes, str, str]: ...

    def blob(self, digest: str) -> bytes: ...

    def close(self) -> None: ...


def _json(raw: bytes, what: str) -> dict[str, Any]:
    try:
        document = json.loads(raw)
    except ValueError as err:
        raise RegistryError(f"the image's {what} is not JSON: {err}") from None
    if not isinstance(document, dict):
        raise RegistryError(f"the image's {what} is not a JSON object")
    return document


def _platform(index: Mapping[str, Any]) -> str:
    entries = [m for m in index.get("manifests") or [] if isinstance(m, dict) and "digest" in m]
    if not entries:
        raise RegistryError("the image index lists no manifests")
    for entry in entries:
        platform = entry.get("platform") or {}
        if (platform.get("os"), platform.get("architecture")) == ("linux", "amd64"):
            return str(entry["digest"])
    return str(entries[0]["digest"])


def _verified(digest: str, data: bytes) -> bytes:
    if not _DIGEST.match(digest):
        raise RegistryError(f"unsupported digest {digest!r} (sha256 only)")
    actual = "sha256:" + hashlib.sha256(data).hexdigest()
    if actual != digest:
        raise RegistryError(f"blob {digest} has content of digest {actual}")
    return data


def _find_files(blobs: _Blobs, layers: list[Any], wanted: set[str]) -> dict[str, bytes]:
    """The newest content of each wanted path, searching layers from the top down."""
    found: dict[str, bytes] = {}
    hidden: set[str] = set()
    for layer in reversed(layers):
        pending = wanted - found.keys() - hidden
        if not pending:
            break
        members, whiteouts, opaque = _read_layer(blobs.blob(str(layer["digest"])), pending)
        for path in pending:
            if path in members:
                found[path] = members[path]
            elif _whited_out(path, whiteouts, opaque):
                hidden.add(path)
    return found


def _whited_out(path: str, whiteouts: set[str], opaque: set[str]) -> bool:
    parents = []
    head = posixpath.dirname(path)
    while head:
        parents.append(head)
        head = posixpath.dirname(head)
    return (
        path in whiteouts or any(p in whiteouts or p in opaque for p in parents) or ("" in opaque)
    )


def _member_name(name: str) -> str:
    """A tar member's path relative to the root: `./a/b`, `/a/b` and `a/b` are all `a/b`."""
    name = posixpath.normpath("/" + name).lstrip("/")
    return "" if name == "." else name


def _read_layer(data: bytes, wanted: set[str]) -> tuple[dict[str, bytes], set[str], set[str]]:
    """(wanted files found, paths whited out, folders made opaque) of one layer blob."""
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as err:
            raise RegistryError(f"a layer is not valid gzip: {err}") from None
    members: dict[str, bytes] = {}
    whiteouts: set[str] = set()
    opaque: set[str] = set()
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            for info in tar:
                name = _member_name(info.name)
                folder, base = posixpath.split(name)
                if base == ".wh..wh..opq":
                    opaque.add(folder)
                elif base.startswith(".wh."):
                    whiteouts.add(posixpath.join(folder, base[4:]))
                elif name in wanted and info.isfile():
                    extracted = tar.extractfile(info)
                    if extracted is not None:
                        members[name] = extracted.read()
    except tarfile.TarError as err:
        raise RegistryError(f"a layer is not a valid tar archive: {err}") from None
    return members, whiteouts, opaque


# ---------------------------------------------------------------------------- registry


class _Registry:
    """The OCI distribution API of one repository (anonymous, or an anonymous bearer token)."""

    def __init__(self, base_url: str, repository: str) -> None:
        self.base = base_url
        self.repository = repository
        self.token: str | None = None

    def _get(self, path: str, accept: str | None = None) -> tuple[bytes, Mapping[str, str]]:
        url = f"{self.base}/v2/{self.repository}/{path}"
        for attempt in range(2):
            request = urllib.request.Request(url)
            if accept:
                request.add_header("Accept", accept)
            if self.token:
                request.add_header("Authorization", f"Bearer {self.token}")
            try:
                with urllib.request.urlopen(request, timeout=60) as response:
                    return response.read(), dict(response.headers.items())
            except urllib.error.HTTPError as err:
                challenge = err.headers.get("WWW-Authenticate", "")
                if err.code == 401 and attempt == 0 and challenge.startswith("Bearer "):
                    self.token = _anonymous_token(challenge)
                    continue
                if err.code == 404:
                    raise RegistryError(f"{url}: not found (404)") from None
                raise RegistryError(f"{url}: HTTP {err.code} {err.reason}") from None
            except (urllib.error.URLError, OSError) as err:
                reason = getattr(err, "reason", err)
                raise RegistryError(f"cannot reach the registry at {self.base}: {reason}") from None
        raise RegistryError(f"{url}: the registry refused the anonymous token")

    def manifest(self, reference: str) -> tuple[bytes, str, str]:
        raw, headers = self._get(f"manifests/{reference}", _ACCEPT)
        if len(raw) > MAX_MANIFEST_BYTES:
            raise RegistryError(f"manifest {reference} is larger than {MAX_MANIFEST_BYTES} bytes")
        digest = "sha256:" + hashlib.sha256(raw).hexdigest()
        if _DIGEST.match(reference):
            _verified(reference, raw)
        media_type = _header(headers, "Content-Type").split(";")[0].strip()
        known = _INDEXES | {OCI_MANIFEST, DOCKER_MANIFEST}
        return raw, media_type if media_type in known else "", digest

    def blob(self, digest: str) -> bytes:
        raw, _ = self._get(f"blobs/{digest}")
        return _verified(digest, raw)

    def close(self) -> None:
        pass


def _header(headers: Mapping[str, str], name: str) -> str:
    return next((v for k, v in headers.items() if k.lower() == name.lower()), "")


def _anonymous_token(challenge: str) -> str:
    params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
    realm = params.pop("realm", "")
    if not realm:
        raise RegistryError(f"the registry's challenge names no token realm: {challenge}")
    url = f"{realm}?{urllib.parse.urlencode(params)}"
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            document = json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError) as err:
        raise RegistryError(f"cannot get an anonymous token from {realm}: {err}") from None
    return str(document.get("token") or document.get("access_token") or "")


# ----------------------------------------------------------------------------- archive


class _Archive:
    """An OCI image layout inside a tar file (`index.json`, `blobs/sha256/<hex>`)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            # Held open across calls (blobs are read on demand); `close()` closes it.
            self.tar = tarfile.open(path, mode="r:*")  # noqa: SIM115
        except (OSError, tarfile.TarError) as err:
            raise RegistryError(f"cannot open OCI archive {path}: {err}") from None
        self.names = {_member_name(m.name): m for m in self.tar.getmembers()}

    def _read(self, name: str) -> bytes:
        member = self.names.get(name)
        extracted = self.tar.extractfile(member) if member is not None else None
        if extracted is None:
            raise RegistryError(f"{self.path}: no {name} (is it an OCI image-layout archive?)")
        return extracted.read()

    def top(self) -> tuple[str, bytes, str, str]:
        """(image name from the index's ref.name annotation, top document, its type, digest)."""
        if "index.json" not in self.names and "manifest.json" in self.names:
            # `docker save` before Docker 25 writes no OCI index and no registry manifest, so
            # there is no digest to pin a Pod to: say how to get one.
            raise RegistryError(
                f"{self.path} is a docker-archive (no index.json): it holds no registry "
                "manifest digest to pin; push it (skopeo copy docker-archive:... docker://...) "
                "and import the reference, or save it as an oci-archive"
            )
        index = _json(self._read("index.json"), "index.json")
        entries = [m for m in index.get("manifests") or [] if isinstance(m, dict)]
        if not entries:
            raise RegistryError(f"{self.path}: index.json lists no image")
        entry = entries[0]
        ref_name = str((entry.get("annotations") or {}).get(REF_NAME, ""))
        if "/" not in ref_name:
            raise RegistryError(
                f"{self.path}: the image has no {REF_NAME} annotation naming its repository"
            )
        reference = parse_reference(ref_name)
        digest = str(entry["digest"])
        return reference.name, self.blob(digest), str(entry.get("mediaType") or ""), digest

    def manifest(self, reference: str) -> tuple[bytes, str, str]:
        return self.blob(reference), "", reference

    def blob(self, digest: str) -> bytes:
        if not _DIGEST.match(digest):
            raise RegistryError(f"unsupported digest {digest!r} (sha256 only)")
        return _verified(digest, self._read(f"blobs/sha256/{digest[7:]}"))

    def close(self) -> None:
        self.tar.close()
