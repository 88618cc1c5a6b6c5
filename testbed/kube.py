"""The test bed's own Kubernetes build: where its binaries are, and kubectl run with a kubeconfig.

`build_binaries` runs testbed/build-kube.sh, which builds once (cached under ~/.cache) and then
only prints the folder; every caller that needs kubectl or a component goes through it.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent


def build_binaries() -> Path:
    """The folder of kube-apiserver, kubelet, kubectl, ... built from the Kubernetes module."""
    out = subprocess.run(
        [str(HERE / "build-kube.sh")], check=True, stdout=subprocess.PIPE, text=True
    ).stdout
    return Path(out.strip().splitlines()[-1])


def kubectl(
    kubeconfig: Path | str,
    *args: str,
    input: str | None = None,
    check: bool = False,
    executable: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """`kubectl --kubeconfig=KUBECONFIG ARGS...` (the test bed's build unless `executable`)."""
    return subprocess.run(
        [executable or str(build_binaries() / "kubectl"), f"--kubeconfig={kubeconfig}", *args],
        input=input,
        capture_output=True,
        text=True,
        check=check,
        timeout=120,
    )
