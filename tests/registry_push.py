"""Push an OCI image-layout archive to a registry through the distribution API (tests only).

The reverse of what `bx import` reads: every blob by monolithic upload (`POST` then `PUT
?digest=`), then the manifest under its tag. Enough for the test bed's registry (distribution
v3, no auth on 127.0.0.1).
"""

from __future__ import annotations

import json
import tarfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path


def registry_up(base_url: str) -> bool:
    """Whether a distribution API answers at `base_url` (GET /v2/ is 200 or 401)."""
    try:
        with urllib.request.urlopen(f"{base_url}/v2/", timeout=2) as response:
            return bool(response.status == 200)
    except urllib.error.HTTPError as err:
        return err.code == 401
    except (urllib.error.URLError, OSError):
        return False


def push_archive(archive: Path, base_url: str, repository: str, tag: str) -> str:
    """Upload the archive's blobs and its (first) manifest as `repository:tag`; its digest."""
    with tarfile.open(archive) as tar:
        files = {
            m.name.removeprefix("./"): tar.extractfile(m).read()  # type: ignore[union-attr]
            for m in tar.getmembers()
            if m.isfile()
        }
    index = json.loads(files["index.json"])
    entry = index["manifests"][0]
    manifest_digest = str(entry["digest"])
    manifest = files[f"blobs/sha256/{manifest_digest[7:]}"]
    for name, data in files.items():
        if name.startswith("blobs/sha256/") and name != f"blobs/sha256/{manifest_digest[7:]}":
            _upload_blob(base_url, repository, "sha256:" + name.rsplit("/", 1)[1], data)
    request = urllib.request.Request(
        f"{base_url}/v2/{repository}/manifests/{tag}",
        data=manifest,
        method="PUT",
        headers={"Content-Type": str(entry.get("mediaType") or json.loads(manifest)["mediaType"])},
    )
    with urllib.request.urlopen(request, timeout=60):
        pass
    return manifest_digest


def _upload_blob(base_url: str, repository: str, digest: str, data: bytes) -> None:
    start = urllib.request.Request(f"{base_url}/v2/{repository}/blobs/uploads/", method="POST")
    with urllib.request.urlopen(start, timeout=60) as response:
        location = response.headers["Location"]
    url = urllib.parse.urljoin(f"{base_url}/", location)
    url += ("&" if "?" in url else "?") + urllib.parse.urlencode({"digest": digest})
    put = urllib.request.Request(
        url, data=data, method="PUT", headers={"Content-Type": "application/octet-stream"}
    )
    with urllib.request.urlopen(put, timeout=300):
        pass
