"""Bad input through every door (issue 16): a corpus of malformed custom resources, applied to the
real API server while the operator (`python -m batchx`, a child process) runs the whole time.

Each row of `tests.integration.bad_resources.CORPUS` is sent as bytes (so duplicate keys and
non-JSON reach the API server as written) and ends at the door the table names: refused by the
API server with the field in its message; or admitted and refused by the operator with the JSON
path (a Job: FAILED, no Pod, nothing reserved; an Image: Ready=False); or accepted. After every
row the operator is still up and has logged no traceback. The last test prints the corpus size
and the outcome counts.
"""

from __future__ import annotations

import os
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.fixtures_jobs import JobBed
from tests.fixtures_operator import TEST_SETTINGS, OperatorProcess
from tests.helpers import eventually
from tests.integration.bad_resources import CORPUS, Bad, Door, body_of
from tests.integration.bx import GROUP, VERSION, Bx, condition
from tests.job_lab import Lab, make_env

pytestmark = pytest.mark.cluster

JSON = dict[str, Any]
PLURALS = {"Environment": "environments", "Image": "images", "Job": "jobs"}
SEEN: Counter[str] = Counter()


@pytest.fixture(scope="module")
def corpus_operator(
    job_bed: JobBed,
    kubeconfig: str,
    batchx_crds: list[str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorProcess]:
    env = {**os.environ, "KUBECONFIG": kubeconfig, **TEST_SETTINGS, **job_bed.operator_env()}
    log = tmp_path_factory.mktemp("corpus") / "operator.log"
    handle = OperatorProcess(env, log)
    handle.start()
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture(scope="module")
def lab(corpus_operator: OperatorProcess, module_bx: Bx, job_bed: JobBed) -> Lab:
    return make_env(module_bx, job_bed, credits=1000)


def _tracebacks(log: Path) -> int:
    return log.read_text(errors="replace").count("Traceback (most recent call last)")


def _send(api: client.ApiClient, path: str, case: Bad, body: bytes) -> tuple[int, str, str]:
    """POST `body` as is: (status, answer, Warning headers)."""
    headers = {"Content-Type": case.content_type, "Accept": "application/json"}
    api.update_params_for_auth(headers, [], ["BearerToken"])
    url = api.configuration.host + path + (f"?{case.query}" if case.query else "")
    answer = api.rest_client.pool_manager.request("POST", url, body=body, headers=headers)
    warnings = "; ".join(answer.headers.getlist("Warning"))
    return answer.status, answer.data.decode(errors="replace"), warnings


def _path(case: Bad, namespace: str) -> str:
    plural = PLURALS[case.kind]
    if case.kind == "Environment":
        return f"/apis/{GROUP}/{VERSION}/{plural}"
    return f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{plural}"


def _job_refused(lab: Lab, name: str, says: str) -> None:
    job = lab.wait_state(name, "FAILED", timeout=60)
    status = job["status"]
    cond = condition(job, "Succeeded")
    assert cond is not None
    assert cond["status"] == "False"
    assert says in status["message"], status["message"]
    assert lab.pod(name) is None
    assert (status.get("credits") or {}).get("reserved", 0) == 0


def _job_accepted(lab: Lab, name: str, state: str) -> None:
    job = lab.wait_state(name, state, timeout=180)
    if state == "QUEUED":  # more than the environment's 1000 credits: it waits, holding nothing
        cond = condition(job, "Succeeded")
        assert cond is not None
        assert cond["reason"] == "InsufficientCredits", cond
        assert (job["status"].get("credits") or {}).get("reserved", 0) == 0
        assert lab.pod(name) is None
    lab.bx.custom.delete_namespaced_custom_object(GROUP, VERSION, lab.name, "jobs", name)


def _image_refused(bx: Bx, namespace: str, name: str, says: str) -> None:
    def refused() -> JSON | None:
        cond = condition(bx.image(namespace, name), "Ready")
        return cond if cond is not None and cond["status"] == "False" else None

    cond = eventually(refused, timeout=60, what=f"Image {name} refused")
    assert says in cond["message"], cond


def _environment_accepted(bx: Bx, name: str) -> None:
    bx.wait_ready(name, timeout=90)
    # An admission pass runs with its quota: a job there is judged (and refused: no such image).
    bx.custom.create_namespaced_custom_object(
        GROUP,
        VERSION,
        name,
        "jobs",
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Job",
            "metadata": {"name": "probe"},
            "spec": {"image": "nobody/nothing"},
        },
    )
    lab = Lab(bx, name)
    job = lab.wait_state("probe", "FAILED", timeout=60)
    assert condition(job, "Succeeded")["reason"] == "ImageNotFound"  # type: ignore[index]


@pytest.mark.parametrize("case", CORPUS, ids=lambda c: c.id)
def test_a_bad_resource_is_refused_at_its_door_with_the_field(
    case: Bad, lab: Lab, module_bx: Bx, kube_api: client.ApiClient, corpus_operator: OperatorProcess
) -> None:
    before = _tracebacks(corpus_operator.log)
    prefix = "bad" if case.kind == "Environment" else "c"
    name = case.name or f"{prefix}-{uuid.uuid4().hex[:8]}"
    if case.kind == "Environment" and case.name is None:
        module_bx.created_envs.append(name)  # deleted after the module, if it was created
    status, answer, warnings = _send(kube_api, _path(case, lab.name), case, body_of(case, name))

    if case.door is Door.API:
        assert status in (400, 413, 422), (status, answer)
        assert case.says in answer, answer
    else:
        assert status == 201, (status, answer)
        if "warning" in case.extra:
            assert case.extra["warning"] in warnings, warnings
        if case.kind == "Job" and case.door is Door.OPERATOR:
            _job_refused(lab, name, case.says)
        elif case.kind == "Job":
            _job_accepted(lab, name, case.says)
        elif case.kind == "Image":
            assert case.door is Door.OPERATOR
            _image_refused(module_bx, lab.name, name, case.says)
        else:
            assert case.door is Door.ACCEPTED
            _environment_accepted(module_bx, name)
    SEEN[case.door.value] += 1

    assert corpus_operator.proc is not None
    assert corpus_operator.proc.poll() is None, "the operator exited"
    # Counted per row, so that one finding fails its own row only.
    assert _tracebacks(corpus_operator.log) == before, corpus_operator.log.read_text()[-4000:]


def test_the_corpus_size_and_outcomes(corpus_operator: OperatorProcess) -> None:
    """Printed for the issue's report (run with -s); every row was run, and the operator lived."""
    planned = Counter(c.door.value for c in CORPUS)
    print(f"\nbad-resource corpus: {len(CORPUS)} objects; {dict(planned)}; seen {dict(SEEN)}")
    assert len(CORPUS) >= 80
    assert corpus_operator.starts == 1
    assert corpus_operator.proc is not None
    assert corpus_operator.proc.poll() is None
