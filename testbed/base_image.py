"""The test bed's base image: Debian bookworm with python3 and pip, in the test bed's registry.

No public registry is reachable here, so `images/Dockerfile` is built on this base instead of
its default (a public slim Python image): `--build-arg BASE=<this image, pinned by digest>`.
The root filesystem comes from `debootstrap --variant=minbase`, with packages fetched through
the machine's own apt sources (read from /etc/apt/sources.list*), never a mirror written here.
It is built once and cached under ~/.cache/batchx-testbed/rootfs; Debian's python3 is 3.11, like
the product's.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from testbed import images, paths, registry

SUITE = "bookworm"
PACKAGES = ["python3", "python3-pip", "ca-certificates"]
# Not part of an image (as slim images drop them): package caches, logs, documentation and
# translations, about a quarter of the tree.
TRIMMED = [
    "var/cache/apt/archives", "var/lib/apt/lists", "var/log",
    "usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale",
]  # fmt: skip
NAME = "batchx-base"
SOURCES = Path("/etc/apt")


def apt_mirror(root: Path = SOURCES) -> str:
    """The first configured Debian archive (`deb` type, suite `SUITE`, component `main`).

    Reads both formats: one-line `sources.list` entries and deb822 `*.sources` stanzas.
    """
    files = [root / "sources.list", *sorted((root / "sources.list.d").glob("*.list"))]
    for file in files:
        for line in file.read_text().splitlines() if file.is_file() else []:
            words = [w for w in line.split("#", 1)[0].split() if not w.startswith("[")]
            if len(words) >= 4 and words[0] == "deb" and words[2] == SUITE and "main" in words[3:]:
                return words[1]
    for file in sorted((root / "sources.list.d").glob("*.sources")):
        for stanza in file.read_text().split("\n\n"):
            fields: dict[str, list[str]] = {}
            for line in stanza.splitlines():
                if ":" in line and not line.startswith(("#", " ")):
                    key, value = line.split(":", 1)
                    fields[key.strip().lower()] = value.split()
            if (
                "deb" in fields.get("types", [])
                and SUITE in fields.get("suites", [])
                and "main" in fields.get("components", [])
                and fields.get("enabled", ["yes"]) != ["no"]
                and fields.get("uris")
            ):
                return fields["uris"][0]
    raise RuntimeError(f"no apt source for Debian {SUITE} main under {root}")


def rootfs() -> Path:
    """The base root filesystem; built once (about a minute), then reused from the cache."""
    recipe = f"{SUITE} {' '.join(PACKAGES)} -{' -'.join(TRIMMED)}"
    key = hashlib.sha256(recipe.encode()).hexdigest()[:12]
    root = paths.cache_dir() / "rootfs" / f"{SUITE}-{key}"
    done = root.with_suffix(".complete")  # beside the tree: nothing extra goes into the image
    if done.exists():
        return root
    if shutil.which("debootstrap") is None:
        raise RuntimeError("debootstrap is missing: run `make system-deps`")
    partial = root.with_suffix(".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE,
         str(partial), apt_mirror()],
        check=True,
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    for junk in TRIMMED:
        shutil.rmtree(partial / junk, ignore_errors=True)
    shutil.rmtree(root, ignore_errors=True)
    partial.rename(root)
    done.write_text("")
    return root


def _present(digest: str) -> bool:
    request = urllib.request.Request(
        f"{registry.url()}/v2/{NAME}/manifests/{digest}",
        method="HEAD",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return bool(resp.status == 200)
    except urllib.error.HTTPError:
        return False


def pushed() -> str:
    """The base in the running test bed's registry, as `ADDRESS/batchx-base@sha256:...`.

    The image is deterministic (fixed mtimes and order), so its digest is remembered beside the
    root filesystem and pushed again only when the registry lacks it.
    """
    root = rootfs()
    spec = images.ImageSpec(
        NAME,
        f"{SUITE}-{root.name.rsplit('-', 1)[1]}",
        [],
        base_layers=[images.DirLayer(root, f"rootfs-{root.name}")],
        cmd=["python3"],
        env=["PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8"],
    )
    remembered = root.with_suffix(".digest")
    digest = remembered.read_text().strip() if remembered.exists() else ""
    if not digest or not _present(digest):
        with tempfile.TemporaryDirectory(prefix="batchx-base-", dir=paths.cache_dir()) as tmp:
            archive = Path(tmp) / "base.tar"
            images.write_archive(spec, archive)
            digest = registry.push_archive(archive, NAME, spec.tag)
        remembered.write_text(digest + "\n")
    return f"{registry.address()}/{NAME}@{digest}"
