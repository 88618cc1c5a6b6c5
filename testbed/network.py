"""The test bed's packet rules: pods reach the API server at the `kubernetes` Service address, and
nothing leaves the pod bridge for another network. Our chains are named BATCHX-*, and `down`
removes them with the KUBE-* chains the kubelet adds.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from testbed.topology import API_PORT, BRIDGE, SERVICE_IP


def _sh(*argv: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), check=check, capture_output=True, text=True)


SERVICE_CHAIN = "BATCHX-APISERVER"
FORWARD_CHAIN = "BATCHX-FORWARD"


def route_service_ip_to_apiserver() -> None:
    """Pods reach the API server at the `kubernetes` Service's address, as in any cluster.

    The test bed runs no kube-proxy and its API server listens on 127.0.0.1 only, so one DNAT
    rule (in a chain of our own, for packets that enter from the pod bridge) sends
    10.96.0.1:443 to 127.0.0.1:API_PORT; `route_localnet` on the bridge lets the kernel deliver
    them to a loopback address. In-cluster clients (the operator's Pod, pipelines) then use
    KUBERNETES_SERVICE_HOST unchanged. The API server's certificate names 10.96.0.1.
    """
    Path(f"/proc/sys/net/ipv4/conf/{BRIDGE}/route_localnet").write_text("1\n")
    _sh("iptables", "-t", "nat", "-N", SERVICE_CHAIN)
    _sh("iptables", "-t", "nat", "-F", SERVICE_CHAIN)
    dnat = ["-d", f"{SERVICE_IP}/32", "-p", "tcp", "--dport", "443",
            "-j", "DNAT", "--to-destination", f"127.0.0.1:{API_PORT}"]  # fmt: skip
    _sh("iptables", "-t", "nat", "-A", SERVICE_CHAIN, *dnat, check=True)
    _sh("iptables", "-t", "nat", "-A", "PREROUTING", "-i", BRIDGE, "-j", SERVICE_CHAIN, check=True)
    # Nothing from the pods is forwarded off the bridge (this host forwards packets): pods reach
    # the gateway's own services and each other, never another network.
    _sh("iptables", "-N", FORWARD_CHAIN)
    _sh("iptables", "-F", FORWARD_CHAIN)
    _sh("iptables", "-A", FORWARD_CHAIN, "!", "-o", BRIDGE, "-j", "DROP", check=True)
    _sh("iptables", "-I", "FORWARD", "-i", BRIDGE, "-j", FORWARD_CHAIN, check=True)


def remove_kubelet_iptables() -> None:
    """Drop the KUBE-* chains the kubelet adds (firewall for localnet, canaries), our own
    BATCHX-* chain, and their jumps."""
    ours = ("KUBE-", "BATCHX-")
    for table in ("filter", "nat", "mangle"):
        rules = _sh("iptables", "-t", table, "-S").stdout.splitlines()
        for rule in rules:
            parts = rule.split()
            if parts[0] == "-A" and not parts[1].startswith(ours) and any(o in rule for o in ours):
                _sh("iptables", "-t", table, "-D", *parts[1:])
        for rule in rules:
            if rule.startswith(("-N KUBE-", "-N BATCHX-")):
                _sh("iptables", "-t", table, "-F", rule.split()[1])
        for rule in rules:
            if rule.startswith(("-N KUBE-", "-N BATCHX-")):
                _sh("iptables", "-t", table, "-X", rule.split()[1])
