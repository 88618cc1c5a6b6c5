"""The runner image: the project's own container that stages job files in and out of the store.

Three layers, cheapest to rebuild last:

1. a Debian bookworm root filesystem with python3 (debootstrap, minbase variant), built once and
   cached under ~/.cache/batchx-testbed/rootfs; Debian's python3 is 3.11, like the product's;
2. the product's third-party dependencies, `pip install --target` as manylinux wheels for
   CPython 3.11, cached by the hash of pyproject.toml;
3. the `batchx` package source itself (operator/batchx), small and rebuilt at every import.

    python -m testbed.runner_image      # builds, imports into the cluster, prints the pinned ref
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

from batchx.planning.job_pod import RUNNER_COMMAND
from testbed import images, paths

REPO = Path(__file__).resolve().parent.parent
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
PACKAGES = ["python3", "ca-certificates"]
SITE = "opt/batchx/site"
SRC = "opt/batchx/src"
PYC_MODE = "unchecked-hash"


def _debootstrap() -> Path:
    """The base root filesystem; built once (about a minute), then reused from the cache."""
    key = hashlib.sha256(f"{SUITE} {' '.join(PACKAGES)}".encode()).hexdigest()[:12]
    root = paths.cache_dir() / "rootfs" / f"{SUITE}-python3-{key}"
    done = root.with_suffix(".complete")  # beside the tree: nothing extra goes into the image
    if done.exists():
        return root
    if shutil.which("debootstrap") is None:
        raise RuntimeError("debootstrap is missing: run `make system-deps`")
    partial = root.with_suffix(".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(PACKAGES)}",
            SUITE,
            str(partial),
            MIRROR,
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    # Package caches and logs are not part of the image.
    for junk in ("var/cache/apt/archives", "var/lib/apt/lists", "var/log"):
        shutil.rmtree(partial / junk, ignore_errors=True)
    shutil.rmtree(root, ignore_errors=True)
    partial.rename(root)
    done.write_text("")
    return root


def _dependencies() -> tuple[Path, str]:
    """The product's dependencies as an importable tree (no Kopf-side extras needed at runtime)."""
    pyproject = (REPO / "pyproject.toml").read_bytes()
    key = hashlib.sha256(pyproject + PYC_MODE.encode()).hexdigest()[:12]
    root = paths.cache_dir() / "runner-site" / key
    done = root.with_suffix(".complete")
    if done.exists():
        return root, key
    deps = tomllib.loads(pyproject.decode())["project"]["dependencies"]
    partial = root.with_suffix(".partial")
    shutil.rmtree(partial, ignore_errors=True)
    target = partial / SITE
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-compile",
            "--target",
            str(target),
            "--only-binary=:all:",
            "--python-version",
            "3.11",
            "--implementation",
            "cp",
            "--platform",
            "manylinux2014_x86_64",
            "--platform",
            "manylinux_2_28_x86_64",
            *deps,
        ],
        check=True,
    )
    _precompile(partial)
    shutil.rmtree(root, ignore_errors=True)
    partial.rename(root)
    done.write_text("")
    return root, key


def _precompile(tree: Path) -> None:
    """Bytecode for everything under `tree` (an image root), as the image's Python will load it.

    The runner runs as a non-root user on a root-owned tree, so without shipped .pyc files every
    start recompiles boto3, pydantic and the product in memory (seconds per job, twice). The
    `unchecked-hash` mode keys the files by source hash, not mtime: deterministic layers. The
    host's Python is 3.11 like Debian bookworm's, so the bytecode format matches.
    """
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", PYC_MODE,
         "-s", str(tree), "-p", "/", str(tree)],
        check=True,
    )  # fmt: skip


def _source_entries(staging: Path) -> list[images.Entry]:
    """The batchx package and its bytecode, read into memory (the staging copy is temporary)."""
    tree = staging / SRC / "batchx"
    shutil.copytree(REPO / "operator" / "batchx", tree,
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    _precompile(staging)
    return [
        images.Entry(str(f.relative_to(staging)), data=f.read_bytes(), mode=0o644)
        for f in sorted(tree.rglob("*"))
        if f.is_file()
    ]


def runner_spec() -> images.ImageSpec:
    base = _debootstrap()
    site, site_key = _dependencies()
    with tempfile.TemporaryDirectory(prefix="batchx-runner-src-") as staging:
        entries = _source_entries(Path(staging))
    return images.ImageSpec(
        "batchx-runner",
        "dev",
        entries,
        base_layers=[
            images.DirLayer(base, f"rootfs-{base.name}"),
            images.DirLayer(site, f"site-{site_key}"),
        ],
        entrypoint=list(RUNNER_COMMAND),
        env=[
            "PATH=/usr/local/bin:/usr/bin:/bin",
            f"PYTHONPATH=/{SRC}:/{SITE}",
            "PYTHONDONTWRITEBYTECODE=1",
            "PYTHONUNBUFFERED=1",
        ],
        user="65532:65532",
    )


def main() -> None:
    print(images.import_image(runner_spec()).pinned)


if __name__ == "__main__":
    main()
