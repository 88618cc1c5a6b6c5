"""Install the product on the test bed as an admin does: `helm install` of helm/batchx-operator.

Used by `make demo` and the chart's integration test. The values are the ones an admin sets
(`registry`, `config.store`, `storeCredentialsSecret`) plus the digests the images were built
with, as a release pins them; the images come from the test bed's registry.
"""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from testbed import images, kube, paths, registry
from testbed import s3 as s3bed

REPO = Path(__file__).resolve().parent.parent
CHART = REPO / "helm" / "batchx-operator"
HERE = Path(__file__).resolve().parent
CREDENTIALS_SECRET = "batchx-store-credentials"
DEPLOYMENT = "batchx-operator"


def helm_binary() -> str:
    out = subprocess.run(
        [str(HERE / "build-helm.sh")], check=True, capture_output=True, text=True
    ).stdout
    return out.strip().splitlines()[-1]


def helm(kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [helm_binary(), f"--kubeconfig={kubeconfig}", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )


def admin_values(
    operator: images.BuiltImage, runner: images.BuiltImage, s3: s3bed.S3Server, bucket: str
) -> dict[str, Any]:
    """What an admin writes into values.yaml for this cluster."""
    return {
        "registry": registry.NAME,
        "image": {"digest": operator.digest},
        "runner": {"digest": runner.digest},
        "config": {"store": {"endpoint": s3.endpoint, "bucket": bucket}},
        "storeCredentialsSecret": CREDENTIALS_SECRET,
    }


@dataclass(frozen=True)
class Release:
    name: str
    namespace: str
    kubeconfig: Path

    def kubectl(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return kube.kubectl(self.kubeconfig, *args, input=input)

    def store_secret(self, s3: s3bed.S3Server) -> None:
        """The Secret `storeCredentialsSecret` names (the admin creates it; never in values)."""
        self.kubectl("create", "namespace", self.namespace)
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": CREDENTIALS_SECRET, "namespace": self.namespace},
            "stringData": s3.credentials(),
        }
        done = self.kubectl("apply", "-f", "-", input=json.dumps(secret))
        if done.returncode != 0:
            raise RuntimeError(done.stderr)

    def install(self, values: dict[str, Any], *extra: str) -> float:
        """`helm upgrade --install --wait`; seconds until the operator's Deployment was Ready."""
        t0 = time.monotonic()
        file = paths.cache_dir() / f"values-{self.name}.json"
        file.write_text(json.dumps(values, indent=2))
        done = helm(self.kubeconfig, "upgrade", "--install", self.name, str(CHART),
                    "-n", self.namespace, "--create-namespace", "-f", str(file),
                    "--wait", "--timeout", "180s", *extra)  # fmt: skip
        if done.returncode != 0:
            logs = self.kubectl("logs", f"deploy/{DEPLOYMENT}", "-n", self.namespace, "--tail=40")
            raise RuntimeError(f"helm install failed: {done.stderr}\noperator log:\n{logs.stdout}")
        return time.monotonic() - t0

    def uninstall(self) -> None:
        done = helm(self.kubeconfig, "uninstall", self.name, "-n", self.namespace, "--wait")
        if done.returncode != 0 and "not found" not in done.stderr:
            raise RuntimeError(f"helm uninstall failed: {done.stderr}")

    def operator_pod(self) -> dict[str, Any]:
        out = self.kubectl("get", "pods", "-n", self.namespace, "-l",
                           f"app.kubernetes.io/instance={self.name}", "-o", "json")  # fmt: skip
        pods: list[dict[str, Any]] = json.loads(out.stdout)["items"]
        running = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
        if len(running) != 1:
            raise RuntimeError(f"expected one operator pod, found {len(running)}")
        return running[0]
