"""The test bed itself: a real API server, scheduler, controllers and kubelet doing real work."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from testbed import cluster as testbed_cluster
from testbed import images, topology
from tests.fixtures_cluster import Cluster
from tests.helpers import eventually

pytestmark = pytest.mark.cluster


def busybox_pod(name: str, image: images.BuiltImage, script: str, **resources: str) -> client.V1Pod:
    limits = resources or {"cpu": "100m", "memory": "32Mi"}
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1PodSpec(
            restart_policy="Never",
            automount_service_account_token=False,
            containers=[
                client.V1Container(
                    name="main",
                    image=image.pinned,
                    image_pull_policy="IfNotPresent",
                    command=["sh", "-c", script],
                    resources=client.V1ResourceRequirements(limits=limits, requests=limits),
                )
            ],
        ),
    )


def pod_log(core: client.CoreV1Api, ns: str, name: str) -> str:
    # The generated client turns the body into the repr of bytes; read the raw response instead.
    return str(core.read_namespaced_pod_log(name, ns, _preload_content=False).data.decode())


def wait_phase(core: client.CoreV1Api, ns: str, name: str, timeout: float = 90) -> str:
    def finished() -> str | None:
        phase = core.read_namespaced_pod(name, ns).status.phase
        return phase if phase in ("Succeeded", "Failed") else None

    return eventually(finished, timeout=timeout, what=f"pod {ns}/{name} to finish")


def test_node_is_ready_and_advertises_gpus(kube_api: client.ApiClient) -> None:
    node = client.CoreV1Api(kube_api).read_node(topology.NODE)
    ready = {c.type: c.status for c in node.status.conditions}["Ready"]
    assert ready == "True"
    assert node.status.capacity["nvidia.com/gpu"] == str(testbed_cluster.GPUS)
    assert node.metadata.labels["nvidia.com/gpu.product"] == testbed_cluster.GPU_PRODUCT


def test_pod_with_limits_runs_to_completion_and_logs_are_read(
    kube_api: client.ApiClient, namespace: str, busybox: images.BuiltImage, cluster: Cluster
) -> None:
    core = client.CoreV1Api(kube_api)
    script = "echo hello from $(hostname); cat /sys/fs/cgroup/memory/memory.limit_in_bytes"
    core.create_namespaced_pod(
        namespace, busybox_pod("limits", busybox, script, cpu="200m", memory="48Mi")
    )
    assert wait_phase(core, namespace, "limits") == "Succeeded"
    logs = pod_log(core, namespace, "limits")
    assert logs.splitlines() == ["hello from limits", str(48 * 1024 * 1024)]
    # `kubectl logs` goes API server -> kubelet too, authenticated by client certificates.
    out = cluster.kubectl("logs", "-n", namespace, "limits")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == "hello from limits"


def test_gpu_quota_admits_one_pod_and_refuses_the_second(
    kube_api: client.ApiClient, namespace: str, busybox: images.BuiltImage
) -> None:
    core = client.CoreV1Api(kube_api)
    core.create_namespaced_resource_quota(
        namespace,
        client.V1ResourceQuota(
            metadata=client.V1ObjectMeta(name="gpus"),
            spec=client.V1ResourceQuotaSpec(hard={"requests.nvidia.com/gpu": "1"}),
        ),
    )
    # The quota controller must have computed usage before the admission plugin enforces it.
    eventually(
        lambda: core.read_namespaced_resource_quota("gpus", namespace).status.used,
        timeout=60,
        what="quota usage computed",
    )

    def gpu_pod(name: str) -> client.V1Pod:
        return busybox_pod(
            name, busybox, "sleep 30", cpu="50m", memory="16Mi", **{"nvidia.com/gpu": "1"}
        )

    core.create_namespaced_pod(namespace, gpu_pod("gpu-1"))
    with pytest.raises(ApiException) as refused:
        core.create_namespaced_pod(namespace, gpu_pod("gpu-2"))
    assert refused.value.status == 403
    assert "exceeded quota: gpus" in refused.value.body
    assert "requested: requests.nvidia.com/gpu=1" in refused.value.body
    assert "limited: requests.nvidia.com/gpu=1" in refused.value.body
    eventually(
        lambda: core.read_namespaced_pod("gpu-1", namespace).spec.node_name,
        what="GPU pod scheduled",
    )


def test_deleting_an_owner_garbage_collects_what_it_owns(
    kube_api: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(kube_api)
    owner = core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="owner"))
    )
    ref = client.V1OwnerReference(
        api_version="v1", kind="ConfigMap", name="owner", uid=owner.metadata.uid
    )
    core.create_namespaced_config_map(
        namespace,
        client.V1ConfigMap(metadata=client.V1ObjectMeta(name="owned", owner_references=[ref])),
    )
    core.delete_namespaced_config_map("owner", namespace)

    def owned_gone() -> bool:
        try:
            core.read_namespaced_config_map("owned", namespace)
        except ApiException as exc:
            return exc.status == 404
        return False

    eventually(owned_gone, timeout=60, what="owned ConfigMap garbage-collected")


def test_restricted_pod_security_refuses_a_privileged_pod(
    kube_api: client.ApiClient, namespace: str, busybox: images.BuiltImage
) -> None:
    core = client.CoreV1Api(kube_api)
    core.patch_namespace(
        namespace, {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}}
    )
    pod = busybox_pod("privileged", busybox, "true")
    pod.spec.containers[0].security_context = client.V1SecurityContext(privileged=True)
    with pytest.raises(ApiException) as refused:
        core.create_namespaced_pod(namespace, pod)
    assert refused.value.status == 403
    message = json.loads(refused.value.body)["message"]
    assert 'violates PodSecurity "restricted:latest": privileged' in message


@pytest.fixture
def gateway_http() -> Iterator[int]:
    """An HTTP server on the bridge gateway, where the test bed's S3 server listens for pods."""

    class Hello(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"reached the gateway\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer((topology.GATEWAY, 0), Hello)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_pods_get_an_address_and_reach_the_bridge_gateway(
    kube_api: client.ApiClient, namespace: str, busybox: images.BuiltImage, gateway_http: int
) -> None:
    core = client.CoreV1Api(kube_api)
    url = f"http://{topology.GATEWAY}:{gateway_http}/"
    # No `wget -T`: busybox-static's wget segfaults with a timeout set.
    core.create_namespaced_pod(namespace, busybox_pod("net", busybox, f"wget -qO- {url}"))
    assert wait_phase(core, namespace, "net") == "Succeeded"
    assert pod_log(core, namespace, "net") == "reached the gateway\n"
    pod_ip = core.read_namespaced_pod("net", namespace).status.pod_ip
    assert pod_ip.startswith(topology.GATEWAY.rsplit(".", 1)[0] + ".")


def test_the_gateway_keeps_its_mac_address_while_pods_come_and_go(
    kube_api: client.ApiClient, namespace: str, busybox: images.BuiltImage
) -> None:
    """A bridge without a set address takes its lowest port's: deleting that pod would move the
    gateway's MAC under the other pods (their connections hang until ARP notices)."""
    bridge = Path("/sys/class/net") / topology.BRIDGE
    core = client.CoreV1Api(kube_api)
    core.create_namespaced_pod(namespace, busybox_pod("mac", busybox, "true"))
    assert wait_phase(core, namespace, "mac") == "Succeeded"
    core.delete_namespaced_pod("mac", namespace, grace_period_seconds=0)
    assert (bridge / "address").read_text().strip() == topology.BRIDGE_MAC
    assert (bridge / "addr_assign_type").read_text().strip() == "3"  # NET_ADDR_SET: fixed
