"""The test bed's OCI registry, and pushing images to it.

A real registry (CNCF distribution, `testbed/build-registry.sh`) on 127.0.0.1, started and
stopped with the cluster. Its storage lives under the build cache, so images pushed once stay
across `down`/`up`, as they would on a real registry.

Images are named `batchx.local/<name>`: containerd's CRI resolves that host through a
`hosts.toml` mirror (`certs.d/batchx.local/hosts.toml`) to this registry over plain HTTP, and the
kubelet pulls them the way every cluster pulls from its registry. Only containerd (a host
process) and the test bed's builders talk to it, so it listens on the loopback address alone.

    python -m testbed.registry push ARCHIVE NAME:TAG   # an OCI archive; prints the pinned ref
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import urllib.request
from pathlib import Path

from testbed import paths

HOST = "127.0.0.1"
PORT = int(os.environ.get("BATCHX_REGISTRY_PORT", "5000"))
NAME = "batchx.local"  # the registry's name in image references (testbed.images.REGISTRY)
HERE = Path(__file__).resolve().parent


def address() -> str:
    return f"{HOST}:{PORT}"


def url() -> str:
    return f"http://{address()}"


def binary() -> Path:
    out = subprocess.run(
        [str(HERE / "build-registry.sh")], check=True, stdout=subprocess.PIPE, text=True
    ).stdout
    return Path(out.strip().splitlines()[-1])


def storage_dir() -> Path:
    return paths.cache_dir() / "registry"


def config(state: Path) -> Path:
    """The registry's configuration (JSON is YAML): filesystem storage, loopback, no access log."""
    cfg = state / "registry.yaml"
    storage_dir().mkdir(parents=True, exist_ok=True)
    cfg.write_text(
        json.dumps(
            {
                "version": 0.1,
                "log": {"level": "warn", "accesslog": {"disabled": True}},
                "storage": {
                    "filesystem": {"rootdirectory": str(storage_dir())},
                    "delete": {"enabled": True},
                    "maintenance": {"uploadpurging": {"enabled": False}},
                },
                "http": {"addr": address(), "secret": "batchx-testbed"},
            },
            indent=2,
        )
    )
    return cfg


def argv(state: Path) -> list[str]:
    return [str(binary()), "serve", str(config(state))]


def hosts_dir(state: Path) -> Path:
    """containerd's `config_path`: one `hosts.toml` per registry name, here `batchx.local`."""
    root = state / "certs.d"
    mirror = root / NAME
    mirror.mkdir(parents=True, exist_ok=True)
    (mirror / "hosts.toml").write_text(
        f'server = "{url()}"\n\n[host."{url()}"]\n  capabilities = ["pull", "resolve"]\n'
    )
    return root


def ready() -> bool:
    with urllib.request.urlopen(f"{url()}/v2/", timeout=2) as resp:
        return bool(resp.status == 200)


def push_archive(archive: Path, name: str, tag: str) -> str:
    """Copy an OCI image-layout archive to `name:tag` unchanged; return its manifest digest.

    skopeo keeps the manifest's bytes (`--preserve-digests`), so the digest the archive was built
    with is the digest Pods pin.
    """
    with tempfile.TemporaryDirectory(prefix="batchx-push-") as tmp:
        digestfile = Path(tmp) / "digest"
        subprocess.run(
            [
                "skopeo",
                "copy",
                "--quiet",
                "--preserve-digests",
                "--dest-tls-verify=false",
                "--digestfile",
                str(digestfile),
                f"oci-archive:{archive}",
                f"docker://{address()}/{name}:{tag}",
            ],
            check=True,
            capture_output=True,
        )
        return digestfile.read_text().strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="verb", required=True)
    push = sub.add_parser("push")
    push.add_argument("archive", type=Path)
    push.add_argument("ref", help="NAME:TAG")
    args = parser.parse_args()
    name, tag = args.ref.rsplit(":", 1)
    print(f"{NAME}/{name}@{push_archive(args.archive, name, tag)}")


if __name__ == "__main__":
    main()
