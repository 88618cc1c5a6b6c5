"""Pipelines on the real test bed: images whose container runs child jobs with its own identity.

The example pipelines (testbed/pipeline_images.py) run `batchx.client` in their pods against the
real API server: count-all runs wordcount on each text in parallel and merge-counts on the
counts; rogue-pipeline tries an image outside its steps, a Job that does not name it as parent,
and the Secrets. Checked: the merged output, the children (label, owner, state, charge), the
ledger, the refusals, the identity's rights (`kubectl auth can-i --list` as it), its revocation
at the end, cancellation of the children, the cache serving a re-run's children, and an
environment whose quota fits the parent and one child.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from kopf.testing import KopfRunner
from kubernetes import client
from kubernetes.client.rest import ApiException

from testbed import pipeline_images
from tests.fixtures_cluster import Cluster
from tests.fixtures_jobs import JobBed
from tests.helpers import eventually
from tests.integration.bx import GROUP, VERSION, Bx, condition
from tests.job_lab import JSON, Lab, make_env

pytestmark = pytest.mark.cluster

TEXTS = [b"one two three\n", b"two three\nthree\n", b"four\n"]
WORDS = 3 + 3 + 1


@pytest.fixture(scope="module")
def pipelines(job_bed: JobBed) -> dict[str, pipeline_images.PipelineExample]:
    return {n: pipeline_images.build(n, job_bed.runner) for n in pipeline_images.NAMES}


def make_lab(
    bx: Bx, job_bed: JobBed, pipelines: dict[str, pipeline_images.PipelineExample], **spec: object
) -> Lab:
    lab = make_env(bx, job_bed, **spec)
    for example in pipelines.values():
        body = example.image_object(lab.name)
        bx.custom.create_namespaced_custom_object(GROUP, VERSION, lab.name, "images", body)
        bx.wait_image(lab.name, body["metadata"]["name"], "True", "Accepted")
    return lab


@pytest.fixture(scope="module")
def lab(
    jobs_operator: KopfRunner,
    module_bx: Bx,
    job_bed: JobBed,
    pipelines: dict[str, pipeline_images.PipelineExample],
) -> Lab:
    return make_lab(module_bx, job_bed, pipelines, quota={"cpu": "4", "jobs": 5}, credits=1000)


def texts(lab: Lab, job_bed: JobBed, *, unique: bool = False) -> list[str]:
    """The texts stored under a fresh folder; `unique`: with content no other job counted (so
    no child is served from the cache), else `TEXTS`."""
    prefix = f"texts/{uuid.uuid4().hex[:8]}"
    with job_bed.store() as store:
        for i, data in enumerate(TEXTS):
            salt = f"{uuid.uuid4().hex}\n".encode() if unique else b""
            store.env(lab.name).put_bytes(f"{prefix}/{i}.txt", data + salt)
    return [f"bx://{prefix}/{i}.txt" for i in range(len(TEXTS))]


def children(lab: Lab, parent: str) -> list[JSON]:
    items: list[JSON] = lab.bx.custom.list_namespaced_custom_object(
        GROUP, VERSION, lab.name, "jobs", label_selector=f"batchx.io/parent={parent}"
    )["items"]
    return items


def succeeded(lab: Lab, name: str, timeout: float = 300) -> JSON:
    status: JSON = lab.wait_done(name, timeout=timeout)["status"]
    assert status["state"] == "SUCCEEDED", (status.get("message"), status.get("conditions"))
    return status


def counts(lab: Lab, job_bed: JobBed, path: str) -> dict[str, int]:
    with job_bed.store() as store:
        text = store.env(lab.name).read_bytes(path.removeprefix("bx://")).decode()
    return {word: int(n) for n, word in (line.split() for line in text.splitlines())}


def test_the_pipeline_runs_its_steps_and_merges_their_counts(
    lab: Lab, job_bed: JobBed, cluster: Cluster
) -> None:
    inputs = texts(lab, job_bed)
    parent = lab.submit("count-all", "examples/count-all", {"texts": inputs})
    status = succeeded(lab, parent)
    output = status["output"]
    assert output["words"] == WORDS
    assert counts(lab, job_bed, output["counts"]) == {"one": 1, "two": 2, "three": 3, "four": 1}
    # Its children: what `kubectl get bxjob -l batchx.io/parent=count-all` lists.
    listed = cluster.kubectl("get", "bxjob", "-n", lab.name, "-l", "batchx.io/parent=count-all")
    kids = children(lab, parent)
    assert sorted(k["metadata"]["name"] for k in kids) == sorted(output["children"])
    assert all(k["metadata"]["name"] in listed.stdout for k in kids)
    parent_uid = lab.job(parent)["metadata"]["uid"]
    for kid in kids:
        assert kid["status"]["state"] == "SUCCEEDED", kid["status"].get("conditions")
        assert [o["uid"] for o in kid["metadata"]["ownerReferences"]] == [parent_uid]
        # Billed like any job: charged per second run (a sub-second child may cost 0); the
        # ledger check below adds them up. (status.credits.reserved keeps the admission's
        # figure after the end: the test bed showed 0.995045 on a finished child.)
        assert kid["status"]["credits"]["charged"] >= 0
    images = sorted(k["status"]["image"]["coordinates"] for k in kids)
    assert images == [f"{lab.name}@examples/merge-counts:1.0.0"] + [
        f"{lab.name}@examples/wordcount:1.0.0"
    ] * len(TEXTS)
    # The pipeline read none of its files itself: no stage-in, the bx:// paths as written.
    pod = lab.pod(parent)
    assert pod is not None
    assert "stage-in" not in [c.name for c in pod.spec.init_containers or []]
    # Its identity is revoked at its end: the ServiceAccount is gone.
    with pytest.raises(ApiException) as gone:
        lab.bx.core.read_namespaced_service_account(f"bx-pipeline-{parent}", lab.name)
    assert gone.value.status == 404
    # The ledger: spent is the sum of every charge, the pipeline's own and its children's.
    jobs = [parent, *(k["metadata"]["name"] for k in kids)]

    def spent_is_the_sum() -> bool:
        charged = sum(Decimal(str(lab.job(j)["status"]["credits"]["charged"])) for j in jobs)
        everything = sum(
            Decimal(str(((j.get("status") or {}).get("credits") or {}).get("charged") or 0))
            for j in lab.bx.jobs(lab.name)
        )
        spent = Decimal(str(lab.bx.environment(lab.name)["status"]["credits"]["spent"]))
        return charged > 0 and abs(spent - everything) < Decimal("0.00001")

    eventually(spent_is_the_sum, timeout=60, what="spent = the sum of every charge")

    # Re-run, identical: the children are served from the cache; the pipeline runs (always).
    again = lab.submit("count-all-again", "examples/count-all", {"texts": inputs}, cache=True)
    repeat = succeeded(lab, again)
    assert repeat["output"]["words"] == WORDS
    assert not repeat.get("cached")
    served = children(lab, again)
    assert len(served) == len(TEXTS) + 1
    assert all(k["status"].get("cached") for k in served), [k["status"] for k in served]
    assert all(k["status"]["credits"]["charged"] == 0 for k in served)


def test_a_child_outside_the_steps_is_refused_and_the_identity_can_do_little(
    lab: Lab, job_bed: JobBed
) -> None:
    name = lab.submit("rogue", "examples/rogue-pipeline", {})
    output = succeeded(lab, name)["output"]
    assert (output["state"], output["reason"]) == ("FAILED", "StepNotAllowed")
    step = lab.job(output["step"])
    cond = condition(step, "Succeeded")
    assert cond is not None
    assert cond["reason"] == "StepNotAllowed"
    assert "is not one of the steps of parent job rogue" in cond["message"]
    assert "PodCreated" not in [r for _, r in lab.bx.event_reasons(lab.name, output["step"])]
    # The API server's policy refused the Job that did not name its parent; RBAC the Secrets.
    assert output["orphan"].startswith("refused 403"), output["orphan"]
    assert "must have the label batchx.io/parent=rogue" in output["orphan"]
    assert output["secrets"] == "refused 403"


def test_the_identity_has_exactly_the_pipeline_rights(
    lab: Lab, job_bed: JobBed, cluster: Cluster
) -> None:
    user = f"system:serviceaccount:{lab.name}:bx-pipeline-count-rights"
    inputs = texts(lab, job_bed, unique=True)
    parent = lab.submit("count-rights", "examples/count-all", {"texts": inputs})
    account = eventually(
        lambda: _service_account(lab, f"bx-pipeline-{parent}"), timeout=60, what="the identity"
    )
    assert account.automount_service_account_token is False
    token = _token(lab, account.metadata.name)
    assert _authenticated(lab, token)
    # As its tokens authenticate: the user and the groups of a ServiceAccount.
    who = [
        f"--as={user}",
        "--as-group=system:serviceaccounts",
        f"--as-group=system:serviceaccounts:{lab.name}",
        "--as-group=system:authenticated",
    ]
    listing = cluster.kubectl("auth", "can-i", "--list", *who, "-n", lab.name).stdout
    rights = {line.split()[0]: line for line in listing.splitlines()[1:] if line.strip()}
    assert "jobs.batchx.io" in rights
    for verb in ("create", "get", "list", "watch", "patch"):
        assert verb in rights["jobs.batchx.io"]
    for verb, resource, namespace in [
        ("list", "secrets", lab.name),
        ("create", "pods", lab.name),
        ("get", "images.batchx.io", lab.name),
        ("delete", "jobs.batchx.io", lab.name),
        ("create", "jobs.batchx.io", "default"),
    ]:
        said = cluster.kubectl("auth", "can-i", verb, resource, *who, "-n", namespace)
        assert said.stdout.strip() == "no", (verb, resource, namespace, said.stdout)
    succeeded(lab, parent)
    # The credential stops working when the parent ends: its ServiceAccount is deleted.
    eventually(lambda: not _authenticated(lab, token), timeout=30, what="the token refused")


def test_cancelling_the_pipeline_cancels_its_children(
    module_bx: Bx,
    job_bed: JobBed,
    pipelines: dict[str, pipeline_images.PipelineExample],
) -> None:
    # quota.jobs 2 fits the pipeline and one child at a time: the others queue (and, not
    # cancelled, they would all run: the quota fits the parent and one child).
    small = make_lab(module_bx, job_bed, pipelines, quota={"jobs": 2}, credits=1000)
    parent = small.submit("count-slowly", "examples/count-all", {"texts": texts(small, job_bed)})

    def queued_child() -> bool:
        return any(
            (k.get("status") or {}).get("state") == "QUEUED" for k in children(small, parent)
        )

    eventually(queued_child, timeout=120, what="a child queued behind the quota")
    small.bx.custom.patch_namespaced_custom_object(
        GROUP, VERSION, small.name, "jobs", parent, {"spec": {"cancel": True}}
    )
    assert small.wait_done(parent)["status"]["state"] == "CANCELLED"

    def all_done() -> list[str] | None:
        states = [(k.get("status") or {}).get("state") for k in children(small, parent)]
        return states if all(s in ("CANCELLED", "SUCCEEDED") for s in states) else None

    states = eventually(all_done, timeout=120, what="every child finished")
    assert "CANCELLED" in states


def test_a_pipeline_whose_quota_fits_it_and_one_child_completes(
    module_bx: Bx,
    job_bed: JobBed,
    pipelines: dict[str, pipeline_images.PipelineExample],
) -> None:
    small = make_lab(module_bx, job_bed, pipelines, quota={"jobs": 2}, credits=1000)
    parent = small.submit("count-in-two", "examples/count-all", {"texts": texts(small, job_bed)})
    assert succeeded(small, parent, timeout=400)["output"]["words"] == WORDS
    assert len(children(small, parent)) == len(TEXTS) + 1


def _service_account(lab: Lab, name: str) -> client.V1ServiceAccount | None:
    try:
        return lab.bx.core.read_namespaced_service_account(name, lab.name)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def _token(lab: Lab, account: str) -> str:
    request = client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=600)
    )
    answer = lab.bx.core.create_namespaced_service_account_token(account, lab.name, request)
    return str(answer.status.token)


def _authenticated(lab: Lab, token: str) -> bool:
    review = client.V1TokenReview(spec=client.V1TokenReviewSpec(token=token))
    answer = client.AuthenticationV1Api(lab.bx.core.api_client).create_token_review(review)
    return bool(answer.status.authenticated)
