"""A job's own identity: ServiceAccount, RoleBinding and the token in one container only."""

from __future__ import annotations

from batchx import API_VERSION
from batchx.planning.environment import child_selector
from batchx.planning.job_identity import PIPELINE, TOKEN_DIR, TOKEN_SECONDS, JobOwner
from batchx.planning.job_pod import JobRef, plan_pod
from batchx.planning.job_protocol import JOB_CONTAINER
from batchx.rbac import cluster_roles, pipeline_policy
from tests.job_builders import POD_POLICY, make_bx_job, request_for

OWNER = JobOwner("count-all", "lab", "uid-p")


def test_the_service_account_and_binding_belong_to_the_job() -> None:
    account = PIPELINE.service_account(OWNER)
    binding = PIPELINE.role_binding(OWNER)
    for body in (account, binding):
        assert body["metadata"]["name"] == "bx-pipeline-count-all"
        assert body["metadata"]["namespace"] == "lab"
        (owner,) = body["metadata"]["ownerReferences"]
        assert (owner["apiVersion"], owner["kind"], owner["uid"]) == (API_VERSION, "Job", "uid-p")
    assert account["automountServiceAccountToken"] is False
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "batchx-pipeline",
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "bx-pipeline-count-all", "namespace": "lab"}
    ]


def test_only_the_job_container_gets_the_token() -> None:
    ref = JobRef("count-all", "lab", "uid-p", 1)
    pod = plan_pod(ref, request_for(make_bx_job().model()), POD_POLICY)
    with_token = PIPELINE.with_token(pod, OWNER, JOB_CONTAINER)
    spec = with_token["spec"]
    assert spec["serviceAccountName"] == "bx-pipeline-count-all"
    assert spec["automountServiceAccountToken"] is False  # nothing else gets a token
    mounted = {
        c["name"]: [m["mountPath"] for m in c.get("volumeMounts", [])]
        for c in spec["containers"] + spec.get("initContainers", [])
    }
    assert TOKEN_DIR in mounted[JOB_CONTAINER]
    assert all(TOKEN_DIR not in paths for name, paths in mounted.items() if name != JOB_CONTAINER)
    volume = next(v for v in spec["volumes"] if v["name"] == "bx-identity")
    token = volume["projected"]["sources"][0]["serviceAccountToken"]
    assert token == {"path": "token", "expirationSeconds": TOKEN_SECONDS}  # API server audience
    assert pod["spec"].get("serviceAccountName") is None  # the planned pod is not changed


def test_the_pipeline_role_can_only_handle_jobs() -> None:
    role = next(r for r in cluster_roles() if r["metadata"]["name"] == PIPELINE.cluster_role)
    assert role["rules"] == [
        {
            "apiGroups": ["batchx.io"],
            "resources": ["jobs"],
            "verbs": ["create", "get", "list", "watch", "patch"],
        }
    ]
    assert not any(k.startswith("batchx.io/aggregate") for k in role["metadata"]["labels"])


def test_the_policy_derives_the_parent_from_the_identity_prefix() -> None:
    policy, binding = pipeline_policy()[:2]
    assert policy["kind"] == "ValidatingAdmissionPolicy"
    assert binding["spec"] == {
        "policyName": policy["metadata"]["name"],
        "validationActions": ["Deny"],
    }
    assert f":{PIPELINE.prefix}'" in policy["spec"]["matchConditions"][0]["expression"]
    assert f":{PIPELINE.prefix}'" in policy["spec"]["variables"][0]["expression"]


def test_the_environment_does_not_take_the_identity_for_a_stale_member_binding() -> None:
    # The Environment's reconcile deletes the RoleBindings its selector finds that are not a
    # member's: on the test bed it removed the pipeline's binding (its create was Forbidden).
    selector = dict(kv.split("=") for kv in child_selector("lab").split(","))
    for body in (PIPELINE.service_account(OWNER), PIPELINE.role_binding(OWNER)):
        found = body["metadata"]["labels"]
        assert not all(found.get(k) == v for k, v in selector.items())
