"""Where the test bed keeps its builds, state and logs.

Builds and imported images are cached under ~/.cache/batchx-testbed (BATCHX_CACHE overrides) and
survive `down`; a running cluster's state lives under <cache>/state (BATCHX_TESTBED_DIR
overrides) and is wiped by `down`, except containerd's image store, which is kept so that images
are imported once.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    return Path(os.environ.get("BATCHX_CACHE", Path.home() / ".cache" / "batchx-testbed"))


def state_dir() -> Path:
    return Path(os.environ.get("BATCHX_TESTBED_DIR", cache_dir() / "state"))


def run_dir() -> Path:
    """Sockets, pid files and logs of the running cluster (short paths: unix sockets cap at 108)."""
    return state_dir() / "run"


def containerd_socket() -> Path:
    return run_dir() / "containerd.sock"


def kubeconfig() -> Path:
    return state_dir() / "admin.kubeconfig"


def kube_source_dir() -> Path:
    """The k8s.io/kubernetes module source that testbed/build-kube.sh downloaded (for pause.c)."""
    found = sorted((cache_dir() / "gomod").glob("k8s.io/kubernetes@v*"))
    if not found:
        raise FileNotFoundError("no k8s.io/kubernetes source: run testbed/build-kube.sh")
    return found[-1]
