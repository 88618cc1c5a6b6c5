"""The product's images, built from `images/Dockerfile` with buildah and pushed to the registry.

The same file a user builds with `docker build`; here buildah (Debian's, no daemon) builds it on
the test bed's own Debian base (`testbed.base_image`), because no public registry is reachable.
Layers are cached (`--layers`) and stamped with time 0 (`--timestamp 0`), so an unchanged tree
rebuilds in seconds to the same digest. The image is pushed as `batchx-<target>:<appVersion>`
(the chart's default tag) and returned pinned by digest, as the chart and Images pin it.

    python -m testbed.product_images operator runner   # prints the pinned references

buildah keeps its storage under ~/.cache/batchx-testbed/buildah. These machines withhold
CAP_SYS_RESOURCE, so RUN steps get ulimits no higher than the machine's own, and run with chroot
isolation on the host's network (they install Python packages from the package index).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Literal

import yaml

from testbed import base_image, images, paths, registry

REPO = Path(__file__).resolve().parent.parent
DOCKERFILE = REPO / "images" / "Dockerfile"
CHART = REPO / "helm" / "batchx-operator" / "Chart.yaml"
Target = Literal["operator", "runner"]
TARGETS: tuple[Target, ...] = ("operator", "runner")
CA_BUNDLE = Path(os.environ.get("PIP_CERT") or "/etc/ssl/certs/ca-certificates.crt")


def app_version() -> str:
    return str(yaml.safe_load(CHART.read_text())["appVersion"])


def buildah(*args: str) -> subprocess.CompletedProcess[str]:
    store = paths.cache_dir() / "buildah"
    cmd = ["buildah", "--root", str(store / "root"), "--runroot", str(store / "run"),
           "--storage-driver", "overlay", *args]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:8])} ... failed:\n{done.stdout[-4000:]}{done.stderr}")
    return done


def build(target: Target) -> images.BuiltImage:
    """Build one target of images/Dockerfile and push it; the pinned `batchx.local` reference."""
    name, tag = f"batchx-{target}", app_version()
    local = f"localhost/{name}:{tag}"
    args = ["bud", "--layers", "--timestamp", "0", "--isolation", "chroot", "--network", "host",
            "--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768",
            "--tls-verify=false", "--build-arg", f"BASE={base_image.pushed()}",
            "-f", str(DOCKERFILE), "--target", target, "-t", local]  # fmt: skip
    if index := os.environ.get("PIP_INDEX_URL"):
        args += ["--build-arg", f"PIP_INDEX_URL={index}"]
    if CA_BUNDLE.is_file():
        args += ["--secret", f"id=cacert,src={CA_BUNDLE}"]
    buildah(*args, str(REPO))
    with tempfile.TemporaryDirectory(prefix="batchx-push-") as tmp:
        digestfile = Path(tmp) / "digest"
        buildah("push", "--quiet", "--tls-verify=false", "--digestfile", str(digestfile),
                 local, f"docker://{registry.address()}/{name}:{tag}")  # fmt: skip
        digest = digestfile.read_text().strip()
    return images.BuiltImage(f"{registry.NAME}/{name}:{tag}", digest)


def export(target: Target, archive: Path) -> None:
    """The last build of `target` as an OCI archive (for clusters loaded from files, e.g. kind)."""
    buildah("push", "--quiet", f"localhost/batchx-{target}:{app_version()}",
             f"oci-archive:{archive}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("targets", nargs="*", metavar="TARGET", help=" or ".join(TARGETS))
    targets = parser.parse_args().targets or list(TARGETS)
    if unknown := sorted(set(targets) - set(TARGETS)):
        parser.error(f"unknown target(s) {', '.join(unknown)}; known: {', '.join(TARGETS)}")
    for target in targets:
        print(build(target).pinned)


if __name__ == "__main__":
    main()
