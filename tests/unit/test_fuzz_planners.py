"""Property-based fuzzing of the planners and the domain rules (issue 16: bad input).

Generated specs and documents go through what the operator runs on every object it reads: the
admission planner, the Pod planner, the status planner's report reader, the Image and
Environment planners, quantities, bx:// paths and schema validation. Each must answer with the
domain's own refusal (a `Refusal`, `Problem`s, `BxPathError`, `ManifestError`, a pydantic
``ValidationError`` for a spec the CRD schema refuses too) and never raise anything else; what
it plans must hold the invariants the design promises (limits == requests, no credential in
the user's container, every input file under /batchx/input, names that are DNS labels).
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from batchx.domain.manifest import ManifestError, check_manifest, compile_manifest
from batchx.domain.paths import BxPathError, parse_bx_path
from batchx.domain.quantity import MAX_QUANTITY_LENGTH, QUANTITY_PATTERN, parse_quantity
from batchx.domain.validation import FileMode, compile_schema, output_relative_path
from batchx.models import EnvironmentQuota, Job, JobState
from batchx.planning.environment import (
    EnvironmentObject,
    Observed,
    desired_role_bindings,
    plan_children,
    quota_hard,
)
from batchx.planning.image import ImageObject, plan_images
from batchx.planning.job_admission import Capacity, Refusal, Request, Usage, judge_job
from batchx.planning.job_pod import JobRef, plan_pod, staging_plan
from batchx.planning.job_protocol import (
    INPUT_DIR,
    JOB_CONTAINER,
    Outcome,
    RunnerReport,
    parse_report,
)
from batchx.planning.manifest import check_manifest as check_image_manifest
from batchx.planning.pod_status import StatusInputs, plan_status
from tests.builders import make_image
from tests.job_builders import FILE_INPUT_SCHEMA, FILE_OUTPUT_SCHEMA, POD_POLICY, POLICY, candidate

JSON = dict[str, Any]
NOW = datetime(2026, 1, 1, tzinfo=UTC)
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")

# Text with what users paste: unicode, control characters, slashes, dots, NULs.
nasty_text = st.lists(
    st.one_of(
        st.characters(codec="utf-8"),
        st.sampled_from(["/", ".", "..", "\x00", "\n", "\t", " ", "~", "%", "\\", "bx://"]),
    ),
    max_size=20,
).map("".join)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    nasty_text,
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(nasty_text, children, max_size=4)
    ),
    max_leaves=20,
)
bx_like = st.one_of(
    nasty_text.map(lambda s: "bx://" + s),
    st.sampled_from(
        [
            "bx://../etc/passwd",
            "bx:///etc/passwd",
            "bx://a/../../b",
            "bx://a//b",
            "bx://./a",
            "bx://a/\x00b",
            "bx://" + "a/" * 300,
            "bx://" + "x" * 2000,
            "/etc/passwd",
            "bx://café/ünï.txt",
            "bx://a/",
            "bx://",
        ]
    ),
)


# ------------------------------------------------------------------------------- quantities


@FUZZ
@given(st.from_regex(QUANTITY_PATTERN, fullmatch=True).filter(lambda s: len(s) <= 64))
def test_every_quantity_the_crd_admits_parses_to_a_finite_value_the_planners_use(text: str) -> None:
    value = parse_quantity(text)
    assert value.is_finite()
    assert value >= 0
    quota = EnvironmentQuota(cpu=text, memory=text, storage=text)
    capacity = Capacity.of(quota, running=Usage(), balance=Decimal(1), running_reserved=Decimal(0))
    assert capacity.memory_bytes is not None
    assert capacity.memory_bytes >= 0
    assert quota_hard(quota)["requests.cpu"] == text


@FUZZ
@given(st.one_of(nasty_text, st.integers(), st.booleans(), st.floats(), st.lists(st.integers())))
def test_the_model_admits_only_what_the_parser_reads(value: Any) -> None:
    """What the model admits (pydantic reads False as 0 and 1.0 as 1; the CRD refuses both)."""
    try:
        quota = EnvironmentQuota(cpu=value)
    except ValidationError:
        if isinstance(value, str):
            with pytest.raises(ValueError, match="quantit"):
                parse_quantity(value)
        return
    assert quota.cpu is not None
    assert parse_quantity(quota.cpu) >= 0


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1Ei", Decimal(2**60)),  # was ValueError in the admission planner ("E" read as e-notation)
        ("1E", Decimal(10**18)),
        ("2e3", Decimal(2000)),
        ("1e-3", Decimal("0.001")),
        (".5", Decimal("0.5")),
        ("1.", Decimal(1)),
        ("1e999", Decimal("1e999")),
    ],
)
def test_regression_quantities_the_crd_admitted_parse(text: str, value: Decimal) -> None:
    assert re.fullmatch(QUANTITY_PATTERN, text)
    assert parse_quantity(text) == value


@pytest.mark.parametrize(
    "text",
    # Admitted by the CRD's old pattern, then refused (or worse) by the admission planner: a
    # fractional exponent was a ValueError at every pass, 1e999999999 a billion-digit integer.
    ["1e1.5", "1e.5", "1e999999999", "1" * (MAX_QUANTITY_LENGTH + 1), "-1", "1 ", "\u0661"],
)
def test_regression_quantities_refused_by_crd_and_operator_alike(text: str) -> None:
    too_long = len(text) > MAX_QUANTITY_LENGTH
    assert too_long or not re.fullmatch(QUANTITY_PATTERN, text)
    with pytest.raises(ValueError, match="quantit"):
        parse_quantity(text)


# --------------------------------------------------------------------------- bx:// paths


@FUZZ
@given(bx_like, st.booleans())
@example("bx://a/../../b", True)
def test_bx_paths_are_refused_or_stay_inside_the_environment(value: str, allow_dir: bool) -> None:
    try:
        relative = parse_bx_path(value, allow_dir=allow_dir)
    except BxPathError as err:
        reason = err.reason
        assert reason
        return
    parts = relative.rstrip("/").split("/")
    assert not relative.startswith("/")
    assert ".." not in parts
    assert "." not in parts
    assert "" not in parts
    assert "\x00" not in relative


@FUZZ
@given(st.one_of(nasty_text, nasty_text.map(lambda s: "/batchx/output/" + s)))
@example("/batchx/output/../../etc/passwd")
@example("/batchx/output/a/../../x")
def test_container_output_paths_are_refused_or_under_batchx_output(value: str) -> None:
    try:
        relative = output_relative_path(value)
    except ValueError as err:
        message = str(err)
        assert message
        return
    assert not relative.startswith("/")
    assert ".." not in relative.split("/")


# ------------------------------------------------------------------------ schema validation


@FUZZ
@given(json_values, json_values)
def test_any_schema_and_document_give_problems_never_an_exception(
    schema: Any, document: Any
) -> None:
    compiled = compile_schema(schema)
    for mode in FileMode:
        result = compiled.validate(document, mode)
        assert all(p.path.startswith("$") for p in result.problems)
        for ref in result.files:
            assert ref.path.startswith("$")


@FUZZ
@given(st.dictionaries(nasty_text, json_values, max_size=4), json_values)
def test_any_input_against_a_file_schema_keeps_file_targets_inside(extra: JSON, reads: Any) -> None:
    result = compile_schema(FILE_INPUT_SCHEMA).validate({**extra, "reads": reads}, FileMode.BX)
    for ref in result.files:
        assert ".." not in ref.target.split("/")
        assert not ref.target.startswith("/")


@FUZZ
@given(
    st.one_of(
        json_values,
        st.builds(
            lambda m: {**_manifest(), **m},
            st.dictionaries(
                st.sampled_from(
                    [
                        "name",
                        "version",
                        "schema",
                        "runtime",
                        "errorCodes",
                        "warningCodes",
                        "title",
                        "pipeline",
                    ]
                ),
                json_values,
                max_size=3,
            ),
        ),
    )
)
def test_any_manifest_is_checked_into_problems_or_compiled(document: Any) -> None:
    problems = check_manifest(document)
    assert all(p.path.startswith("$") for p in problems)
    try:
        compile_manifest(document)
    except ManifestError as err:
        found = err.problems
        assert found
    else:
        assert not problems


def _manifest() -> JSON:
    return candidate().manifest  # type: ignore[return-value]


# ------------------------------------------------------------------------- job admission

job_specs = st.fixed_dictionaries(
    {
        "image": st.one_of(
            nasty_text,
            st.sampled_from(
                ["tutorial/hello", "tutorial/hello:^1.0", "other@tutorial/hello:1.0.0", "a:1.x"]
            ),
        )
    },
    optional={
        "input": st.dictionaries(
            st.sampled_from(["reads", "more", "threads", "x"]),
            st.one_of(json_values, bx_like, st.lists(bx_like, max_size=3)),
            max_size=4,
        ),
        "vcpus": st.integers(min_value=1, max_value=1024),
        "memory": st.integers(min_value=1, max_value=16 * 1024 * 1024),
        "gpus": st.integers(min_value=0, max_value=64),
        "gpuType": st.from_regex(
            r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,20}[A-Za-z0-9])?$", fullmatch=True
        ),
        "timeout": st.integers(min_value=1, max_value=30 * 24 * 3600),
        "cache": st.booleans(),
        "cancel": st.booleans(),
    },
)
images = st.lists(
    st.builds(
        lambda gpus, min_mem, vcpus: candidate(
            schema={"input": FILE_INPUT_SCHEMA, "output": {"type": "object"}},
            runtime={"minMem": min_mem, "defaultVcpus": vcpus, **({"gpus": gpus} if gpus else {})},
        ),
        st.sampled_from([None, "supported", "required"]),
        st.integers(min_value=1, max_value=1 << 20),
        st.integers(min_value=1, max_value=64),
    ),
    max_size=2,
)
job_names = st.from_regex(r"^[a-z0-9]([-a-z0-9]{0,251}[a-z0-9])?$", fullmatch=True)


@FUZZ
@given(job_specs, images, job_names)
def test_admission_refuses_or_plans_a_pod_that_keeps_every_promise(
    spec: JSON, candidates: list[Any], name: str
) -> None:
    try:
        job = Job.model_validate({"spec": spec})
    except ValidationError:
        return  # the CRD schema refuses it as well (same limits, generated from this model)
    verdict = judge_job(
        job,
        name=name,
        namespace="lab",
        created="2026-01-01T00:00:00Z",
        images=candidates,
        policy=POLICY,
    )
    if isinstance(verdict, Refusal):
        assert verdict.path.startswith("$.spec")
        assert verdict.message
        return
    assert isinstance(verdict, Request)
    assert verdict.reservation >= 0
    assert verdict.rate >= 0
    ref = JobRef(name, "lab", "uid-1", generation=1)
    pod = plan_pod(ref, verdict, POD_POLICY)
    assert DNS_LABEL.match(pod["metadata"]["name"])
    assert len(pod["metadata"]["name"]) <= 63
    pod_spec = pod["spec"]
    assert pod_spec["automountServiceAccountToken"] is False
    assert pod_spec["activeDeadlineSeconds"] > verdict.resources.timeout
    user = next(c for c in pod_spec["containers"] if c["name"] == JOB_CONTAINER)
    assert user["resources"]["limits"] == user["resources"]["requests"]
    assert "envFrom" not in user
    assert all("valueFrom" not in e for e in user["env"])
    assert not any(re.search("AWS|SECRET|TOKEN|KEY|STORE", e["name"]) for e in user["env"])
    assert all(m["mountPath"].startswith("/batchx/") for m in user["volumeMounts"])
    plan = staging_plan(ref, verdict, job.spec.input)
    json.dumps(plan, allow_nan=False)  # the plan ConfigMap is JSON
    for file in plan["files"]:
        assert file["local"].startswith(INPUT_DIR + "/")
        assert ".." not in file["local"].split("/")
        assert parse_bx_path(file["bx"], allow_dir=True)


# --------------------------------------------------------------------------- job status


@FUZZ
@given(
    st.one_of(
        nasty_text,
        json_values.map(json.dumps),
        st.dictionaries(
            st.sampled_from(
                ["v", "outcome", "message", "output", "result", "digest", "files", "bytes"]
            ),
            st.one_of(json_values, st.sampled_from(["uploaded", "invalid-output", "staged"])),
        ).map(json.dumps),
    )
)
@example('{"outcome": "uploaded", "files": "many"}')
@example('{"outcome": "uploaded", "bytes": [1]}')
@example('{"outcome": "uploaded", "files": 1e400}')
def test_any_termination_message_is_a_report_or_none(text: str) -> None:
    report = parse_report(text)
    if report is not None:
        assert report.files >= 0
        assert report.bytes >= 0
        assert report.output is None or isinstance(report.output, dict)


# ------------------------------------------------------------------------ image planner


@FUZZ
@given(
    st.lists(
        st.tuples(
            st.dictionaries(
                st.sampled_from(["name", "version", "schema", "runtime", "title"]),
                json_values,
                max_size=2,
            ),
            st.one_of(st.none(), json_values),
            st.booleans(),
        ),
        min_size=1,
        max_size=3,
    ),
    st.booleans(),
)
def test_the_image_planner_plans_any_images(
    images: list[tuple[JSON, Any, bool]], env_exists: bool
) -> None:
    objects = []
    for i, (fields, reference, public) in enumerate(images):
        builder = make_image(f"img-{i}").manifest(**fields)
        body = builder.body
        if reference is not None:
            body["spec"]["image"] = reference
        if public:
            body["spec"]["public"] = True
        objects.append(ImageObject.from_body(body))
    plans = plan_images(
        objects, check=check_image_manifest, allow_tags=False, env_exists=env_exists, now=NOW
    )
    assert [p.image.name for p in plans] == sorted(o.name for o in objects)
    owners = [p.status.coordinates for p in plans if p.status and p.status.coordinates]
    assert len(owners) == len(set(owners)), "two Images hold the same coordinates"
    for plan in plans:
        for value in (plan.labels or {}).values():
            assert value is None or len(value) <= 63


# ------------------------------------------------------------------- environment planner

quantities = st.one_of(
    st.integers(min_value=0, max_value=2**62),
    st.from_regex(QUANTITY_PATTERN, fullmatch=True).filter(lambda s: len(s) <= 64),
)
env_specs = st.fixed_dictionaries(
    {},
    optional={
        "quota": st.fixed_dictionaries(
            {},
            optional={
                "cpu": quantities,
                "memory": quantities,
                "storage": quantities,
                "gpus": st.integers(0, 4096),
                "jobs": st.integers(0, 100_000),
            },
        ),
        "credits": st.floats(min_value=0, max_value=1e12),
        "members": st.lists(
            st.fixed_dictionaries(
                {
                    "name": nasty_text.filter(lambda s: 0 < len(s) <= 253),
                    "role": st.sampled_from(["admin", "member", "viewer"]),
                },
                optional={"kind": st.sampled_from(["User", "Group", "ServiceAccount"])},
            ),
            max_size=3,
        ),
    },
)


@FUZZ
@given(env_specs)
def test_the_environment_planner_plans_any_admitted_spec(spec: JSON) -> None:
    body = {"metadata": {"name": "lab", "uid": "uid-lab", "generation": 1}, "spec": spec}
    try:
        env = EnvironmentObject.from_body(body)
    except ValidationError:
        return  # refused by the CRD schema as well
    actions = plan_children(env, Observed(namespace=None), "restricted")
    assert actions
    for binding in desired_role_bindings(env):
        assert (
            DNS_LABEL.match(binding["metadata"]["name"]) or len(binding["metadata"]["name"]) <= 253
        )
    for value in quota_hard(env.model.spec.quota).values():
        assert value
        assert not math.isnan(float(parse_quantity(value)))


# ---------------------------------------------------------------- job status from its Pod

STATUS_JOB = Job.model_validate({"spec": {"image": "tutorial/hello", "timeout": 600}})
STATUS_IMAGE = candidate(
    schema={"input": {"type": "object"}, "output": FILE_OUTPUT_SCHEMA},
    errorCodes={"2": "bad reference"},
    warningCodes={"3": "some reads skipped"},
)
STATUS_REQUEST = judge_job(
    STATUS_JOB, name="job-1", namespace="lab", created="", images=[STATUS_IMAGE], policy=POLICY
)
times = st.one_of(
    st.datetimes(
        min_value=datetime(2025, 12, 31), max_value=datetime(2026, 1, 2), timezones=st.just(UTC)
    ).map(lambda t: t.isoformat(timespec="seconds").replace("+00:00", "Z")),
    st.none(),
)  # metav1.Time: the API server holds nothing else in a Pod's status
reports = st.one_of(
    nasty_text,
    st.builds(
        lambda outcome, output, message: RunnerReport(outcome, message, output).to_json(),
        st.sampled_from(list(Outcome)),
        st.one_of(st.none(), st.dictionaries(nasty_text, json_values, max_size=3)),
        nasty_text,
    ),
)
container_states = st.one_of(
    st.fixed_dictionaries({"running": st.fixed_dictionaries({"startedAt": times})}),
    st.fixed_dictionaries(
        {"waiting": st.fixed_dictionaries({"reason": nasty_text, "message": nasty_text})}
    ),
    st.fixed_dictionaries(
        {
            "terminated": st.fixed_dictionaries(
                {
                    "exitCode": st.integers(-(2**31), 2**31 - 1),
                    "reason": st.one_of(
                        st.sampled_from(["Completed", "Error", "OOMKilled"]), nasty_text
                    ),
                    "startedAt": times,
                    "finishedAt": times,
                    "message": reports,
                }
            )
        }
    ),
)


@FUZZ
@given(
    st.sampled_from(["Pending", "Running", "Succeeded", "Failed", "Unknown", "Weird"]),
    st.dictionaries(st.sampled_from(["stage-in", "stage-out", JOB_CONTAINER]), container_states),
    st.one_of(st.none(), nasty_text),
    st.booleans(),
    st.datetimes(
        min_value=datetime(2026, 1, 1), max_value=datetime(2026, 1, 3), timezones=st.just(UTC)
    ),
)
def test_the_status_planner_reads_any_pod_status_into_a_status_the_api_can_hold(
    phase: str, containers: dict[str, JSON], reason: str | None, deleted: bool, now: datetime
) -> None:
    assert isinstance(STATUS_REQUEST, Request)
    ref = JobRef("job-1", "lab", "uid-1", generation=1)
    pod = plan_pod(ref, STATUS_REQUEST, POD_POLICY)
    statuses = [{"name": name, "state": state} for name, state in containers.items()]
    pod["status"] = {
        "phase": phase,
        "startTime": "2026-01-01T00:00:00Z",
        "initContainerStatuses": [s for s in statuses if s["name"] != JOB_CONTAINER],
        "containerStatuses": [s for s in statuses if s["name"] == JOB_CONTAINER],
        **({"reason": reason} if reason else {}),
    }
    if deleted:
        pod["metadata"]["deletionTimestamp"] = "2026-01-01T00:10:00Z"
    inputs = StatusInputs(
        resources=STATUS_REQUEST.resources,
        rate=STATUS_REQUEST.rate,
        manifest=STATUS_REQUEST.manifest,
        image=STATUS_REQUEST.image,
        now=now,
        reserved=STATUS_REQUEST.reservation,
    )
    status = plan_status(STATUS_JOB, ref, pod, inputs)
    json.dumps(status.to_json(), allow_nan=False)
    if status.state is not None and status.state.is_terminal and not status.state.is_success:
        assert status.message
    if status.credits is not None:
        assert status.credits.charged <= float(STATUS_REQUEST.reservation)


def test_regression_a_pod_the_kubelet_refused_for_a_resource_fails_the_job_saying_so() -> None:
    """Was a pydantic ValidationError at every pass: the Pod's reason became the condition's."""
    assert isinstance(STATUS_REQUEST, Request)
    ref = JobRef("job-1", "lab", "uid-1", generation=1)
    pod = plan_pod(ref, STATUS_REQUEST, POD_POLICY)
    pod["status"] = {"phase": "Failed", "reason": "OutOfnvidia.com/gpu"}
    inputs = StatusInputs(
        resources=STATUS_REQUEST.resources,
        rate=STATUS_REQUEST.rate,
        manifest=STATUS_REQUEST.manifest,
        image=STATUS_REQUEST.image,
        now=NOW,
        reserved=STATUS_REQUEST.reservation,
    )
    status = plan_status(STATUS_JOB, ref, pod, inputs)
    assert status.state is JobState.FAILED
    assert status.conditions[-1].reason == "PodFailed"
    assert status.message == "the pod failed (OutOfnvidia.com/gpu)"


@pytest.mark.parametrize("counts", [{"files": "many"}, {"bytes": [1]}, {"files": 1e400}])
def test_regression_a_report_with_unreadable_counts_is_read_with_zero_counts(counts: JSON) -> None:
    """Was a ValueError, TypeError or OverflowError in the status planner."""
    report = parse_report(json.dumps({"outcome": "uploaded", "output": {"a": 1}, **counts}))
    assert report == RunnerReport(Outcome.UPLOADED, output={"a": 1})
