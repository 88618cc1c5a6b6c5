"""Tenants are isolated: who may do what, shown as one matrix, and what a job's container can reach.

Two Environments, ``A`` (with an admin, a member and a viewer) and ``B`` (no member of ``A``). The
matrix asks the API server's own authorizer (SubjectAccessReviews, what ``kubectl auth can-i
--as`` sends) every role x action x environment, prints the answers as a table and compares them
with the expected table, cell by cell. A few cells are also tried for real, impersonating the
user, so the matrix is not only the authorizer's word. Then real jobs:

- the user's container (a busybox probe image) has no service-account token, no store
  credential in its environment, files or visible processes, and the API server answers its
  request without a token with 401/403; the store refuses it anonymously too;
- a job of ``B`` cannot read ``A``'s files by any input path: ``..`` and absolute paths are
  refused at admission (InvalidInput, with the JSON path), and ``A``'s index keys or job output
  paths are paths of ``B``'s own file system, where they do not exist (InputFileNotFound);
- ``A``'s private image cannot be run from ``B``, its public one can.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from kopf.testing import KopfRunner
from kubernetes import client, config
from kubernetes.client.rest import ApiException
from testbed.images import Entry, ImageSpec, busybox_entries, publish
from testbed.topology import GATEWAY

from batchx.planning.job_pod import pod_name
from batchx.planning.job_protocol import JOB_CONTAINER
from tests.fixtures_jobs import JobBed
from tests.helpers import eventually
from tests.integration.bx import GROUP, VERSION, Bx, condition
from tests.job_lab import Lab, make_env

pytestmark = [pytest.mark.cluster, pytest.mark.s3]

SECRET_TEXT = b"env A's secret words\n"
PROBE_NAME = "tests/tenancy-probe"

# -- the roles --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Role:
    """One row of people (or programs) the matrix asks about."""

    name: str
    user: str
    groups: tuple[str, ...]


def roles(env_a: str) -> list[Role]:
    people = ("system:authenticated",)
    runner = f"system:serviceaccount:{env_a}:default"
    return [
        Role("admin", "t-ada", people),
        Role("member", "t-alice", people),
        Role("viewer", "t-vic", people),
        Role("non-member", "t-nobody", people),
        # Job pods run as the namespace's default service account (no token mounted anyway).
        Role(
            "runner",
            runner,
            ("system:serviceaccounts", f"system:serviceaccounts:{env_a}", *people),
        ),
        # The user's container holds no credential at all: the API server sees it as anonymous.
        Role("container", "system:anonymous", ("system:unauthenticated",)),
    ]


MEMBERS = [
    {"name": "t-ada", "role": "admin"},
    {"name": "t-alice", "role": "member"},
    {"name": "t-vic", "role": "viewer"},
]

# -- the actions ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Action:
    verb: str
    resource: str
    group: str = ""
    subresource: str = ""
    cluster: bool = False  # Environments: cluster-scoped, "own" is the Environment's name

    @property
    def label(self) -> str:
        sub = f"/{self.subresource}" if self.subresource else ""
        return f"{self.verb} {self.resource}{sub}"


READ = ("get", "list")
ACTIONS = [
    *(Action(v, "jobs", GROUP) for v in (*READ, "create", "patch", "delete")),
    Action("patch", "jobs", GROUP, "status"),
    *(Action(v, "images", GROUP) for v in (*READ, "create", "delete")),
    Action("patch", "images", GROUP, "status"),
    *(Action(v, "secrets") for v in (*READ, "create")),
    *(Action(v, "pods") for v in (*READ, "create", "delete")),
    Action("get", "pods", subresource="log"),
    Action("create", "pods", subresource="exec"),
    *(Action(v, "configmaps") for v in (*READ, "create", "delete")),
    Action("create", "serviceaccounts", subresource="token"),
    *(Action(v, "environments", GROUP, cluster=True) for v in ("get", "patch", "delete")),
    Action("patch", "environments", GROUP, "status", cluster=True),
    Action("list", "environments", GROUP, cluster=True),
]

RANK = {"viewer": 1, "member": 2, "admin": 3}
# The least role allowed each action in its own environment; absent: nobody (of these roles).
LEAST_ROLE = {
    ("get", "jobs", ""): "viewer",
    ("list", "jobs", ""): "viewer",
    ("create", "jobs", ""): "member",
    ("patch", "jobs", ""): "member",  # spec.cancel is the only mutable field (CEL rules)
    ("delete", "jobs", ""): "admin",
    ("get", "images", ""): "viewer",
    ("list", "images", ""): "viewer",
    ("create", "images", ""): "admin",
    ("delete", "images", ""): "admin",
    ("get", "pods", ""): "viewer",
    ("list", "pods", ""): "viewer",
    ("get", "pods", "log"): "viewer",
    ("get", "environments", ""): "viewer",  # its own, by name (`bx env`)
}


def expected(role: Role, action: Action, own: bool) -> bool:
    """The rule: members act only in their own environment, each within their role; the
    runner identity, the container and non-members may do nothing at all. No role reads a
    Secret or a ConfigMap (the store credentials, the ledger), writes a status, creates or
    deletes a Pod, execs into one, mints a token or lists every Environment."""
    least = LEAST_ROLE.get((action.verb, action.resource, action.subresource))
    if not own or least is None or role.name not in RANK:
        return False
    return RANK[role.name] >= RANK[least]


def can(api: client.ApiClient, role: Role, action: Action, env: str) -> bool:
    attributes = client.V1ResourceAttributes(
        verb=action.verb,
        group=action.group,
        resource=action.resource,
        subresource=action.subresource or None,
        namespace=None if action.cluster else env,
        name=env if action.cluster and action.verb != "list" else None,
    )
    review = client.V1SubjectAccessReview(
        spec=client.V1SubjectAccessReviewSpec(
            user=role.user, groups=list(role.groups), resource_attributes=attributes
        )
    )
    result = client.AuthorizationV1Api(api).create_subject_access_review(review)
    return bool(result.status.allowed)


def render(rows: list[tuple[str, list[tuple[bool, bool]]]], names: list[str]) -> str:
    """The matrix: `yes`/`-` per cell, `!` marking a cell that differs from the expected one."""
    width = max(len(label) for label, _ in rows)
    lines = [" " * width + " | " + " | ".join(f"{n:^10}" for n in names)]
    lines.append("-" * len(lines[0]))
    for label, cells in rows:
        shown = [("yes" if got else "-") + ("" if got == want else " !") for got, want in cells]
        lines.append(f"{label:<{width}} | " + " | ".join(f"{s:^10}" for s in shown))
    return "\n".join(lines)


# -- the probe image ---------------------------------------------------------------------------

# Prints what the user's container can see and reach, one `key: value` line each (the test
# reads the job container's log). busybox only: no Python, as in many real images.
PROBE_SCRIPT = r"""#!/bin/sh
# busybox wget: no -T (busybox-static's wget segfaults with it), `timeout` bounds it instead.
code() { timeout 15 wget -q -S --no-check-certificate -O /dev/null "$1" 2>&1 \
  | grep -o 'HTTP/1.[01] [0-9]*' | head -n 1 | cut -d' ' -f2; }
field() {
  sed -n "s/.*\"$1\"[[:space:]]*:[[:space:]]*\"\([^\"]*\)\".*/\1/p" /batchx/input/input.json
}
store=$(field store)
kubelet=$(field kubelet)
echo "probe-batchx-env: $BATCHX_ENV"
echo "probe-env: $(env | cut -d= -f1 | sort | tr '\n' ' ')"
if [ -e /var/run/secrets ]; then echo "probe-secrets-dir: present"; else
  echo "probe-secrets-dir: absent"; fi
echo "probe-mounts: $(cut -d' ' -f2 /proc/mounts | sort | tr '\n' ' ')"
echo "probe-processes: $(cat /proc/[0-9]*/comm | sort -u | tr '\n' ' ')"
found=$(grep -l -r -s -e AWS_ -e BATCHX_STORE /batchx /etc /tmp /proc/[0-9]*/environ)
echo "probe-files-with-credentials: ${found:-none}"
api=https://10.96.0.1:443
echo "probe-api-secrets: $(code "$api/api/v1/namespaces/$BATCHX_ENV/secrets")"
echo "probe-api-jobs: $(code "$api/apis/batchx.io/v1alpha1/namespaces/$BATCHX_ENV/jobs")"
if [ -n "$store" ]; then echo "probe-store: $(code "$store")"; fi
if [ -n "$kubelet" ]; then echo "probe-kubelet: $(code "$kubelet")"; fi
echo '{}' > /batchx/output/output.json
"""

PROBE_MANIFEST: dict[str, Any] = {
    "name": PROBE_NAME,
    "version": "1.0.0",
    "title": "Prints what the user's container can see and reach",
    "author": "batchx tests",
    "changeLog": "first version",
    "schema": {
        "input": {
            "type": "object",
            "properties": {"store": {"type": "string"}, "kubelet": {"type": "string"}},
        },
        "output": {"type": "object", "properties": {}},
    },
    "runtime": {"minMem": 32},
}


def probe_image_object(namespace: str) -> dict[str, Any]:
    spec = ImageSpec(
        PROBE_NAME,
        "1.0.0",
        [*busybox_entries(), Entry("probe.sh", data=PROBE_SCRIPT.encode(), mode=0o755)],
        entrypoint=["/bin/sh", "/probe.sh"],
    )
    built = publish(spec)
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Image",
        "metadata": {"name": "tenancy-probe-1-0-0", "namespace": namespace},
        "spec": {"image": built.pinned, "manifest": PROBE_MANIFEST, "public": True},
    }


# -- fixtures ---------------------------------------------------------------------------------


@dataclass
class Tenants:
    a: Lab
    b: Lab


@pytest.fixture(scope="module")
def tenants(jobs_operator: KopfRunner, module_bx: Bx, job_bed: JobBed) -> Tenants:
    a = make_env(module_bx, job_bed, members=MEMBERS, credits=1000)
    b = make_env(module_bx, job_bed, credits=1000)
    probe = probe_image_object(a.name)
    module_bx.custom.create_namespaced_custom_object(GROUP, VERSION, a.name, "images", probe)
    module_bx.wait_image(a.name, probe["metadata"]["name"], "True", "Accepted")
    with job_bed.store() as store:
        store.env(a.name).put_bytes("texts/secret.txt", SECRET_TEXT)
        store.env(b.name).put_bytes("texts/mine.txt", b"env B's own words\n")
    return Tenants(a, b)


@pytest.fixture
def impersonating(kubeconfig: str) -> Iterator[Any]:
    """A factory of API clients that act as a given user (the admin's kubeconfig impersonates)."""
    made: list[client.ApiClient] = []

    def make(user: str) -> client.ApiClient:
        api = config.new_client_from_config(config_file=kubeconfig)
        api.set_default_header("Impersonate-User", user)
        made.append(api)
        return api

    yield make
    for api in made:
        api.close()


# -- the matrix -------------------------------------------------------------------------------


def test_roles_and_environments_matrix(tenants: Tenants, module_bx: Bx) -> None:
    a, b = tenants.a.name, tenants.b.name
    api = module_bx.api
    people = roles(a)
    member = people[1]
    # The aggregation controller fills the roles' rules asynchronously: wait on the answer.
    eventually(
        lambda: can(api, member, Action("create", "jobs", GROUP), a),
        timeout=60,
        what="the member may create jobs",
    )
    eventually(
        lambda: can(api, member, Action("get", "environments", GROUP, cluster=True), a),
        timeout=60,
        what="members may read their Environment",
    )
    rows = []
    for own, env in ((True, a), (False, b)):
        for action in ACTIONS:
            cells = [(can(api, role, action, env), expected(role, action, own)) for role in people]
            rows.append((f"{action.label} [{'own' if own else 'other'}]", cells))
    table = render(rows, [r.name for r in people])
    print(f"\nisolation matrix ({len(rows)} actions x {len(people)} roles):\n{table}")
    wrong = [label for label, cells in rows if any(g != w for g, w in cells)]
    assert not wrong, f"cells marked ! differ from the expected table:\n{table}"


def test_real_attempts_agree_with_the_matrix(
    tenants: Tenants, module_bx: Bx, impersonating: Any
) -> None:
    """The authorizer's answers hold for real requests (impersonating each user)."""
    a, b = tenants.a.name, tenants.b.name
    alice = client.CustomObjectsApi(impersonating("t-alice"))
    vic = client.CustomObjectsApi(impersonating("t-vic"))
    ada_core = client.CoreV1Api(impersonating("t-ada"))

    def job(name: str) -> dict[str, Any]:
        return {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Job",
            "metadata": {"name": name},
            "spec": {"image": "examples/hello-static", "input": {"name": "alice"}},
        }

    def status(call: Any) -> int:
        try:
            call()
        except ApiException as exc:
            return int(exc.status)
        return 200

    name = f"alice-{uuid.uuid4().hex[:6]}"
    attempts = {
        "alice creates a job in A": status(
            lambda: alice.create_namespaced_custom_object(GROUP, VERSION, a, "jobs", job(name))
        ),
        "alice creates a job in B": status(
            lambda: alice.create_namespaced_custom_object(GROUP, VERSION, b, "jobs", job(name))
        ),
        "alice writes her job's status": status(
            lambda: alice.patch_namespaced_custom_object_status(
                GROUP, VERSION, a, "jobs", name, {"status": {"state": "SUCCEEDED"}}
            )
        ),
        "vic creates a job in A": status(
            lambda: vic.create_namespaced_custom_object(GROUP, VERSION, a, "jobs", job(name + "v"))
        ),
        "vic lists jobs in A": status(
            lambda: vic.list_namespaced_custom_object(GROUP, VERSION, a, "jobs")
        ),
        "ada reads the store Secret of A": status(
            lambda: ada_core.read_namespaced_secret("batchx-store", a)
        ),
        "ada lists the ConfigMaps of A": status(lambda: ada_core.list_namespaced_config_map(a)),
        "ada lists the pods of A": status(lambda: ada_core.list_namespaced_pod(a)),
        "ada lists the pods of B": status(lambda: ada_core.list_namespaced_pod(b)),
    }
    assert attempts == {
        "alice creates a job in A": 200,
        "alice creates a job in B": 403,
        "alice writes her job's status": 403,
        "vic creates a job in A": 403,
        "vic lists jobs in A": 200,
        "ada reads the store Secret of A": 403,
        "ada lists the ConfigMaps of A": 403,
        "ada lists the pods of A": 200,
        "ada lists the pods of B": 403,
    }
    # The job alice created runs as any job does, and its status is the operator's alone.
    done = tenants.a.wait_done(name)
    assert done["status"]["state"] == "SUCCEEDED"


# -- the user's container ---------------------------------------------------------------------


def _probe_report(lab: Lab, job: str) -> dict[str, str]:
    # Raw bytes: the client would hand back the repr of a bytes object for this log.
    response = lab.bx.core.read_namespaced_pod_log(
        pod_name(job), lab.name, container=JOB_CONTAINER, _preload_content=False
    )
    text = response.data.decode()
    report = {}
    for line in text.splitlines():
        key, sep, value = line.partition(": ")
        if sep and key.startswith("probe-"):
            report[key.removeprefix("probe-")] = value.strip()
    report.setdefault("log", text[-2000:])
    return report


def test_user_container_holds_no_credential_and_the_api_refuses_it(
    tenants: Tenants, job_bed: JobBed
) -> None:
    a = tenants.a
    bucket = job_bed.store_url.removeprefix("s3://").split("/")[0]
    store = f"{job_bed.s3.endpoint}/{bucket}/"  # the bridge gateway's MinIO, as pods reach it
    kubelet = f"https://{GATEWAY}:10250/pods"  # the node's kubelet: every pod of the node
    name = a.submit(
        f"probe-{uuid.uuid4().hex[:6]}", PROBE_NAME, {"store": store, "kubelet": kubelet}
    )
    done = a.wait_done(name)
    assert done["status"]["state"] == "SUCCEEDED", done["status"]

    pod = a.bx.core.read_namespaced_pod(pod_name(name), a.name)
    assert pod.spec.automount_service_account_token is False
    user = next(c for c in pod.spec.containers if c.name == JOB_CONTAINER)
    assert user.env_from is None
    assert all(e.value_from is None for e in user.env or [])
    assert {m.mount_path for m in user.volume_mounts or []} == {"/batchx/input", "/batchx/output"}
    assert not any(v.secret or v.projected for v in pod.spec.volumes or [])

    report = _probe_report(a, name)
    assert "env" in report, report
    env_names = set(report["env"].split())
    assert {"BX_JOB", "BX_VCPUS", "BATCHX_ENV"} <= env_names
    assert not {n for n in env_names if n.startswith("AWS_") or n == "BATCHX_STORE"}, env_names
    assert report["secrets-dir"] == "absent"
    assert "serviceaccount" not in report["mounts"]
    assert report["files-with-credentials"] == "none"
    # The API server is reachable (the Service's address), and says no without a token.
    assert "python" not in report["processes"]  # the runners' processes are not visible
    assert report["api-secrets"] in {"401", "403"}, report
    assert report["api-jobs"] in {"401", "403"}, report
    # So are the store and the kubelet, which refuse an anonymous request.
    assert report["store"] == "403", report
    assert report["kubelet"] in {"401", "403"}, report


# -- files across environments ----------------------------------------------------------------


def test_a_job_of_b_cannot_read_the_files_of_a(tenants: Tenants) -> None:
    a, b = tenants.a, tenants.b
    origin = a.submit(
        f"wc-{uuid.uuid4().hex[:6]}", "examples/wordcount", {"text": "bx://texts/secret.txt"}
    )
    done = a.wait_done(origin)
    assert done["status"]["state"] == "SUCCEEDED", done["status"]
    output = done["status"]["output"]["counts"]  # bx://jobs/<origin>/output/...
    attempts = {
        "parent segment": (f"bx://../{a.name}/paths/texts/secret.txt", "InvalidInput"),
        "parent after a folder": (
            f"bx://texts/../../{a.name}/paths/texts/secret.txt",
            "InvalidInput",
        ),
        "absolute store key": (f"bx:///envs/{a.name}/paths/texts/secret.txt", "InvalidInput"),
        "dot segment": ("bx://./texts/secret.txt", "InvalidInput"),
        "backslash": (f"bx://..\\{a.name}\\paths\\texts\\secret.txt", "InvalidInput"),
        "store key as a path": (f"bx://envs/{a.name}/paths/texts/secret.txt", "InputFileNotFound"),
        "A's path in B": ("bx://texts/secret.txt", "InputFileNotFound"),
        "A's job output": (output, "InputFileNotFound"),
        "encoded parent": (f"bx://%2e%2e/{a.name}/paths/texts/secret.txt", "InputFileNotFound"),
    }
    names = {
        what: b.submit(f"steal-{i}-{uuid.uuid4().hex[:4]}", "examples/wordcount", {"text": path})
        for i, (what, (path, _)) in enumerate(attempts.items())
    }
    control = b.submit(
        f"own-{uuid.uuid4().hex[:4]}", "examples/wordcount", {"text": "bx://texts/mine.txt"}
    )
    outcomes = {}
    for what, name in names.items():
        status = b.wait_done(name)["status"]
        succeeded = condition({"status": status}, "Succeeded") or {}
        outcomes[what] = (status["state"], succeeded.get("reason"), "podName" in status)
    assert outcomes == {what: ("FAILED", reason, False) for what, (_, reason) in attempts.items()}
    # Each refusal names the JSON path of the input that held the path.
    for name in names.values():
        assert "$.spec.input.text" in (b.job(name)["status"].get("message") or ""), b.job(name)
    # The peer: B's own file, by the same image, in the same run.
    assert b.wait_done(control)["status"]["state"] == "SUCCEEDED"


def test_private_images_stay_home_and_public_ones_travel(tenants: Tenants) -> None:
    a, b = tenants.a, tenants.b
    private = b.submit(f"private-{uuid.uuid4().hex[:6]}", f"{a.name}@examples/hello-static:1.0.0")
    public = b.submit(f"public-{uuid.uuid4().hex[:6]}", f"{a.name}@{PROBE_NAME}:1.0.0")
    refused = b.wait_done(private)["status"]
    assert (
        refused["state"],
        (condition({"status": refused}, "Succeeded") or {}).get("reason"),
    ) == (
        "FAILED",
        "ImageNotFound",
    )
    # Told the same as for an image that does not exist: a private image's existence is A's.
    assert refused["message"].startswith("$.spec.image: no image"), refused["message"]
    assert "podName" not in refused
    ran = b.wait_done(public)["status"]
    assert ran["state"] == "SUCCEEDED", ran
    # It ran as B's job, in B's namespace, told it is in B.
    assert _probe_report(b, public)["batchx-env"] == b.name
