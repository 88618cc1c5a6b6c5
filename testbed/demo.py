"""`make demo`: the product's main job, end to end, on the local test bed, installed as an admin
installs it.

Brings up the cluster (or reuses a running one) with its registry, starts MinIO where pods can
reach it, builds the operator and runner images from images/Dockerfile and an example image,
pushes them to the registry, `helm install`s the chart (the operator runs as a Pod pulled from
the registry), creates an Environment, imports the image, uploads an input file, runs a Job and
prints its state, output JSON (with `bx://` paths), the output file's content and the credits
charged. The release is uninstalled and MinIO stopped at the end (CRDs and Environments stay,
as `helm uninstall` leaves them); the cluster keeps running for the next demo
(`make cluster-down` stops it).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from testbed import chart, cluster, example_images, paths, product_images, topology
from testbed import s3 as s3bed

REPO = Path(__file__).resolve().parent.parent
BX = str(Path(sys.executable).parent / "bx")  # the console script of this environment
ENV = "demo"
BUCKET = "batchx"
SYSTEM_NAMESPACE = "batchx-system"
GROUP, VERSION = "batchx.io", "v1alpha1"
TERMINAL = {
    "SUCCEEDED", "WARNING", "FAILED", "CANCELLED", "OUT_OF_MEMORY", "INVALID_OUTPUT",
}  # fmt: skip
TEXT = "the quick brown fox\njumps over the lazy dog\nthe end\n"


def say(msg: str) -> None:
    print(f"\033[1m==> {msg}\033[0m", flush=True)


def wait(what: str, probe: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.5)
    raise TimeoutError(f"{what} not reached within {timeout:.0f}s")


def crds_established(api: client.ApiClient) -> bool:
    ext = client.ApiextensionsV1Api(api)
    for plural in ("environments", "images", "jobs"):
        crd = ext.read_custom_resource_definition(f"{plural}.{GROUP}")
        conditions = {c.type: c.status for c in crd.status.conditions or []}
        if conditions.get("Established") != "True":
            return False
    return True


def create_or_replace(custom: client.CustomObjectsApi, plural: str, body: dict[str, Any]) -> None:
    ns = body["metadata"].get("namespace")
    name = body["metadata"]["name"]
    try:
        if ns:
            custom.create_namespaced_custom_object(GROUP, VERSION, ns, plural, body)
        else:
            custom.create_cluster_custom_object(GROUP, VERSION, plural, body)
    except ApiException as exc:
        if exc.status != 409:
            raise
        print(f"   {plural}/{name} already exists: kept")


def env_ready(custom: client.CustomObjectsApi) -> bool:
    env = custom.get_cluster_custom_object(GROUP, VERSION, "environments", ENV)
    conditions = {c["type"]: c["status"] for c in env.get("status", {}).get("conditions", [])}
    return conditions.get("Ready") == "True"


def image_coordinates(custom: client.CustomObjectsApi) -> str | None:
    image = custom.get_namespaced_custom_object(GROUP, VERSION, ENV, "images", "wordcount-1.0.0")
    coordinates: str | None = image.get("status", {}).get("coordinates")
    return coordinates


def start_store(workdir: Path) -> tuple[s3bed.S3Server, dict[str, str]]:
    """MinIO on the bridge gateway (pods reach it there), a bucket, and the store settings."""
    s3 = s3bed.start(workdir / "s3", host=topology.GATEWAY)
    s3.make_bucket(BUCKET)
    return s3, {"BATCHX_STORE": f"s3://{BUCKET}?endpoint={s3.endpoint}", **s3.credentials()}


def run_job(custom: client.CustomObjectsApi, name: str) -> dict[str, Any]:
    create_or_replace(custom, "jobs", {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "Job",
        "metadata": {"name": name, "namespace": ENV},
        "spec": {"image": "examples/wordcount:1.0.0",
                 "input": {"text": "bx://inputs/text.txt"}, "timeout": 120},
    })  # fmt: skip
    seen: list[str] = []

    def finished() -> dict[str, Any] | None:
        obj: dict[str, Any] = custom.get_namespaced_custom_object(GROUP, VERSION, ENV, "jobs", name)
        state = obj.get("status", {}).get("state")
        if state and (not seen or seen[-1] != state):
            seen.append(state)
            print(f"   state: {state}")
        return obj if state in TERMINAL else None

    result: dict[str, Any] = wait("Job finished", finished, 180)
    return result


def show_result(
    custom: client.CustomObjectsApi, status: dict[str, Any], workdir: Path, bx_env: dict[str, str]
) -> None:
    say(f"result: {status['state']}")
    shown = ("state", "exitCode", "message", "output", "credits", "podName")
    print(json.dumps({k: status[k] for k in shown if k in status}, indent=2))
    for value in (status.get("output") or {}).values():
        if isinstance(value, str) and value.startswith("bx://"):
            say(f"output file {value}")
            fetched = workdir / "out" / value.rsplit("/", 1)[-1]
            fetched.parent.mkdir(exist_ok=True)
            subprocess.run([BX, "cp", value, str(fetched)], check=True, env=bx_env)
            print(fetched.read_text(), end="")
    credits = custom.get_cluster_custom_object(GROUP, VERSION, "environments", ENV)["status"][
        "credits"
    ]
    say(f"credits charged: {status.get('credits', {}).get('charged')}")
    print(f"   environment {ENV}: {json.dumps(credits)}")


def install_operator(
    api: client.ApiClient, release: chart.Release, s3: s3bed.S3Server
) -> tuple[example_images.Example, float]:
    """Build and push the images, then `helm install` the chart as an admin would; the example
    image and when `helm install` began (monotonic)."""
    say("images: operator and runner from images/Dockerfile (buildah), examples/wordcount")
    t_build = time.monotonic()
    operator_image = product_images.build("operator")
    runner = product_images.build("runner")
    example = example_images.build_example("wordcount")
    print(f"   {operator_image.pinned}\n   {runner.pinned}\n   {example.image.pinned}")
    print(f"   built and pushed to the test bed's registry in {time.monotonic() - t_build:.0f}s")

    say(f"operator: helm install {release.name} helm/batchx-operator -n {release.namespace}")
    release.store_secret(s3)
    values = chart.admin_values(operator_image, runner, s3, BUCKET)
    print("   values: " + json.dumps(values))
    t_helm = time.monotonic()
    ready_after = release.install(values)
    pod = release.operator_pod()
    print(f"   pod {pod['metadata']['name']} Ready {ready_after:.0f}s after helm install")
    print(f"   pulled {pod['status']['containerStatuses'][0]['imageID']}")
    wait("CRDs established", lambda: crds_established(api), 60)
    return example, t_helm


def create_environment_and_image(
    custom: client.CustomObjectsApi, example: example_images.Example
) -> None:
    say(f"Environment {ENV}: 4 vCPU, 4 GiB, 2 jobs at once, 1 GiB storage, 100 credits")
    create_or_replace(custom, "environments", {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "Environment",
        "metadata": {"name": ENV},
        "spec": {"quota": {"cpu": "4", "memory": "4Gi", "gpus": 0, "jobs": 2,
                           "storage": "1Gi"}, "credits": 100},
    })  # fmt: skip
    wait("Environment Ready", lambda: env_ready(custom), 90)

    say("Image examples/wordcount:1.0.0")
    create_or_replace(custom, "images", {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "Image",
        "metadata": {"name": "wordcount-1.0.0", "namespace": ENV},
        "spec": {"image": example.image.pinned, "manifest": example.manifest},
    })  # fmt: skip
    print(f"   coordinates: {wait('Image Ready', lambda: image_coordinates(custom), 60)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--keep", action="store_true", help="leave the operator and MinIO running afterwards"
    )
    keep = parser.parse_args().keep
    t0 = time.monotonic()
    say("test bed: cluster")
    kubeconfig = paths.kubeconfig() if cluster.status_quiet() else cluster.up()
    api = config.new_client_from_config(config_file=str(kubeconfig))
    custom = client.CustomObjectsApi(api)
    workdir = Path(tempfile.mkdtemp(prefix="batchx-demo-"))
    say("test bed: S3 server (MinIO) on the pod bridge gateway")
    s3, store_env = start_store(workdir)
    release = chart.Release("batchx", SYSTEM_NAMESPACE, kubeconfig)
    try:
        example, t_helm = install_operator(api, release, s3)
        create_environment_and_image(custom, example)

        say("input: bx cp text.txt bx://inputs/text.txt")
        local = workdir / "text.txt"
        local.write_text(TEXT)
        bx_env = {**os.environ, **store_env, "BATCHX_ENV": ENV}
        subprocess.run([BX, "cp", str(local), "bx://inputs/text.txt"], check=True, env=bx_env)

        job = f"wordcount-{int(time.time())}"
        say(f"Job {job}: examples/wordcount:1.0.0 on bx://inputs/text.txt")
        status = run_job(custom, job)["status"]
        print(f"   final {time.monotonic() - t_helm:.0f}s after helm install began")
        show_result(custom, status, workdir, bx_env)
        say(f"done in {time.monotonic() - t0:.0f}s; `make cluster-down` stops the cluster")
        return 0 if status["state"] in ("SUCCEEDED", "WARNING") else 1
    finally:
        if keep:
            print(f"   kept: release {release.name} in {release.namespace}; MinIO {s3.endpoint}")
        else:
            release.uninstall()
            s3bed.stop(s3)


if __name__ == "__main__":
    sys.exit(main())
