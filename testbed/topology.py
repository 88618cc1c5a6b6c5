"""Where the test bed's cluster lives: its node, bridge, addresses and ports (one place for all)."""

from __future__ import annotations

import os

NODE = "batchx-node"
BRIDGE = "bxbr0"
BRIDGE_MAC = "02:42:0a:57:00:01"  # locally administered, fixed (see cluster.up)
GATEWAY = os.environ.get("BATCHX_BRIDGE_IP", "10.87.0.1")
SUBNET = os.environ.get("BATCHX_POD_SUBNET", "10.87.0.0/24")
SERVICE_RANGE = "10.96.0.0/16"
SERVICE_IP = "10.96.0.1"  # the `kubernetes` Service: the first address of SERVICE_RANGE
API_PORT = int(os.environ.get("BATCHX_API_PORT", "6443"))
ETCD_PORT = int(os.environ.get("BATCHX_ETCD_PORT", "23790"))
