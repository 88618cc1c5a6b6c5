"""The corpus of malformed custom resources of test_bad_resources.py (issue 16: bad input).

One row per object: its kind, what is sent (a spec, a whole body, or raw bytes), which door
refuses it and what the refusal says. Doors, in order:

- ``API``: the API server (OpenAPI schema, CEL rules, name validation, its decoders); ``says``
  must be in its answer and name the field.
- ``OPERATOR``: admitted, then refused by the operator: a Job FAILED with the JSON path in
  ``status.message`` and no Pod, nothing reserved; an Image or Environment ``Ready=False`` with
  the path in the condition's message.
- ``ACCEPTED``: a valid object (at a limit, odd but legal); ``says`` is in its state or message
  (for a Job: the state it reaches, e.g. QUEUED on credits, SUCCEEDED).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

JSON = dict[str, Any]


class Door(StrEnum):
    API = "refused by the API server"
    OPERATOR = "refused by the operator"
    ACCEPTED = "accepted"


@dataclass(frozen=True)
class Bad:
    id: str
    kind: str  # Environment | Image | Job
    door: Door
    says: str
    spec: Any = None  # the spec sent (JSON), unless `raw` is set
    raw: bytes | None = None  # the whole body, sent as is (Content-Type from `content_type`)
    content_type: str = "application/json"
    name: str | None = None  # metadata.name (default: derived from the id)
    query: str = ""  # e.g. fieldValidation=Strict
    extra: JSON = field(default_factory=dict)  # more checks, by kind (see the test)


def nested(depth: int) -> JSON:
    doc: JSON = {"leaf": 1}
    for _ in range(depth):
        doc = {"a": doc}
    return doc


def deep_schema(depth: int) -> JSON:
    schema: JSON = {"type": "integer"}
    for _ in range(depth):
        schema = {"type": "object", "properties": {"x": schema}}
    return schema


def manifest(**fields: Any) -> JSON:
    base: JSON = {
        "name": "corpus/tool",
        "version": "1.0.0",
        "title": "corpus",
        "author": "corpus",
        "changeLog": "first",
        "schema": {"input": {"type": "object"}, "output": {"type": "object"}},
        "runtime": {"minMem": 32},
    }
    return {**base, **fields}


PINNED = "registry.example/corpus/tool@sha256:" + "ab" * 32


def image(**manifest_fields: Any) -> JSON:
    return {"image": PINNED, "manifest": manifest(**manifest_fields)}


def raw(kind: str, text: str) -> bytes:
    """A body with `text` as its spec, written by hand (duplicate keys survive)."""
    head = f'{{"apiVersion": "batchx.io/v1alpha1", "kind": "{kind}", "metadata": {{"name": "NAME"}}'
    return (head + f', "spec": {text}}}').encode()


ENV, IMG, JOB = "Environment", "Image", "Job"
NAPPER = "examples/napper"
WORDS = "examples/wordcount"

CORPUS: list[Bad] = [
    # ---------------------------------------------------------------- Environment: names
    Bad("env-uppercase-name", ENV, Door.API, "metadata.name", {}, name="Bad-Env"),
    Bad("env-unicode-name", ENV, Door.API, "metadata.name", {}, name="ünï-env"),
    Bad(
        "env-dotted-name", ENV, Door.API, "metadata.name is also the namespace name", {}, name="a.b"
    ),
    Bad(
        "env-64-char-name",
        ENV,
        Door.API,
        "metadata.name is also the namespace name",
        {},
        name="e" * 64,
    ),
    Bad("env-control-char-name", ENV, Door.API, "metadata.name", {}, name="a\x07b"),
    # ------------------------------------------------------------- Environment: numbers
    Bad("env-negative-credits", ENV, Door.API, "spec.credits", {"credits": -1}),
    Bad("env-credits-past-1e12", ENV, Door.API, "spec.credits", {"credits": 1e13}),
    Bad("env-credits-string", ENV, Door.API, "spec.credits", {"credits": "100"}),
    Bad("env-negative-cpu", ENV, Door.API, "spec.quota.cpu", {"quota": {"cpu": -1}}),
    Bad("env-fractional-exponent", ENV, Door.API, "spec.quota.cpu", {"quota": {"cpu": "1e1.5"}}),
    Bad(
        "env-4-digit-exponent", ENV, Door.API, "spec.quota.memory", {"quota": {"memory": "1e9999"}}
    ),
    Bad("env-memory-4GB", ENV, Door.API, "spec.quota.memory", {"quota": {"memory": "4GB"}}),
    Bad(
        "env-65-char-quantity",
        ENV,
        Door.API,
        "spec.quota.storage",
        {"quota": {"storage": "1" * 65}},
    ),
    Bad("env-gpus-past-4096", ENV, Door.API, "spec.quota.gpus", {"quota": {"gpus": 4097}}),
    Bad("env-negative-jobs", ENV, Door.API, "spec.quota.jobs", {"quota": {"jobs": -1}}),
    Bad("env-quota-list", ENV, Door.API, "spec.quota", {"quota": [1]}),
    Bad("env-spec-list", ENV, Door.API, "spec", [1, 2]),
    # ------------------------------------------------------------- Environment: members
    Bad(
        "env-unknown-role",
        ENV,
        Door.API,
        "spec.members[0].role",
        {"members": [{"name": "ann", "role": "owner"}]},
    ),
    Bad(
        "env-member-without-name",
        ENV,
        Door.API,
        "spec.members[0].name",
        {"members": [{"role": "admin"}]},
    ),
    Bad(
        "env-duplicate-member",
        ENV,
        Door.API,
        "spec.members[1]",
        {"members": [{"name": "ann", "role": "admin"}, {"name": "ann", "role": "viewer"}]},
    ),
    Bad(
        "env-257-members",
        ENV,
        Door.API,
        "spec.members",
        {"members": [{"name": f"u{i}", "role": "viewer"} for i in range(257)]},
    ),
    Bad(
        "env-serviceaccount-member",
        ENV,
        Door.API,
        "spec.members[0].kind",
        {"members": [{"kind": "ServiceAccount", "name": "default", "role": "admin"}]},
    ),
    Bad(
        "env-254-char-member",
        ENV,
        Door.API,
        "spec.members[0].name",
        {"members": [{"name": "m" * 254, "role": "viewer"}]},
    ),
    # --------------------------------------------------- Environment: legal but strange
    Bad("env-quota-1Ei", ENV, Door.ACCEPTED, "Ready", {"quota": {"memory": "1Ei", "cpu": "1e3"}}),
    Bad("env-quota-1e999", ENV, Door.ACCEPTED, "Ready", {"quota": {"cpu": "1e999"}}),
    Bad(
        "env-unicode-member",
        ENV,
        Door.ACCEPTED,
        "Ready",
        {"members": [{"name": "ünï\ncode\u202e", "role": "viewer"}]},
    ),
    Bad("env-unknown-field", ENV, Door.ACCEPTED, "Ready", {"credits": 1, "creditz": 5}),
    # ---------------------------------------------------------------------- Image: schema
    Bad("img-no-manifest", IMG, Door.API, "spec.manifest", {"image": PINNED}),
    Bad("img-no-image", IMG, Door.API, "spec.image", {"manifest": manifest()}),
    Bad("img-empty-image", IMG, Door.API, "spec.image", {**image(), "image": ""}),
    Bad("img-dot-dot-image", IMG, Door.API, "spec.image", {**image(), "image": "../../etc/passwd"}),
    Bad("img-absolute-image", IMG, Door.API, "spec.image", {**image(), "image": "/etc/passwd"}),
    Bad("img-unicode-image", IMG, Door.API, "spec.image", {**image(), "image": "registry/ünï:1"}),
    Bad("img-513-char-image", IMG, Door.API, "spec.image", {**image(), "image": "a" * 513}),
    Bad("img-version-1.0", IMG, Door.API, "spec.manifest.version", image(version="1.0")),
    Bad("img-version-beta", IMG, Door.API, "spec.manifest.version", image(version="1.0.0-beta")),
    Bad("img-61-char-name", IMG, Door.API, "spec.manifest.name", image(name="n" * 61)),
    Bad(
        "img-65-manifest-keys",
        IMG,
        Door.API,
        "spec.manifest",
        image(**{f"x{i}": i for i in range(60)}),
    ),
    Bad(
        "img-minmem-string",
        IMG,
        Door.API,
        "spec.manifest.runtime.minMem",
        image(runtime={"minMem": "64"}),
    ),
    Bad(
        "img-gpus-maybe",
        IMG,
        Door.API,
        "spec.manifest.runtime.gpus",
        image(runtime={"minMem": 32, "gpus": "maybe"}),
    ),
    Bad(
        "img-no-schema",
        IMG,
        Door.API,
        "spec.manifest.schema",
        {k: v for k, v in image().items()}
        | {"manifest": {k: v for k, v in manifest().items() if k != "schema"}},
    ),
    Bad(
        "img-steps-not-strings",
        IMG,
        Door.API,
        "spec.manifest.pipeline.steps[0]",
        image(pipeline={"steps": [1]}),
    ),
    Bad("img-public-string", IMG, Door.API, "spec.public", {**image(), "public": "yes"}),
    # --------------------------------------------------------------------- Image: operator
    Bad("img-dot-dot-name", IMG, Door.OPERATOR, "$.spec.manifest.name", image(name="../escape")),
    Bad("img-unicode-name", IMG, Door.OPERATOR, "$.spec.manifest.name", image(name="tütorial/x")),
    Bad(
        "img-array-input",
        IMG,
        Door.OPERATOR,
        "$.spec.manifest.schema.input",
        image(schema={"input": {"type": "array"}, "output": {"type": "object"}}),
    ),
    Bad(
        "img-remote-ref",
        IMG,
        Door.OPERATOR,
        "$.spec.manifest.schema.input",
        image(
            schema={
                "input": {
                    "type": "object",
                    "properties": {"x": {"$ref": "http://evil.example/schema.json"}},
                },
                "output": {"type": "object"},
            }
        ),
    ),
    Bad(
        "img-deep-schema",
        IMG,
        Door.OPERATOR,
        "$.spec.manifest.schema.input",
        image(schema={"input": deep_schema(40), "output": {"type": "object"}}),
    ),
    Bad(
        "img-error-code-word",
        IMG,
        Door.OPERATOR,
        "$.spec.manifest.errorCodes",
        image(errorCodes={"abc": "not a code"}),
    ),
    Bad(
        "img-zero-minmem",
        IMG,
        Door.OPERATOR,
        "$.spec.manifest.runtime.minMem",
        image(runtime={"minMem": 0}),
    ),
    Bad(
        "img-negative-vcpus",
        IMG,
        Door.OPERATOR,
        "$.spec.manifest.runtime.defaultVcpus",
        image(runtime={"minMem": 32, "defaultVcpus": -2}),
    ),
    Bad(
        "img-tag-not-pinned",
        IMG,
        Door.OPERATOR,
        "$.spec.image",
        {**image(), "image": "registry.example/corpus/tool:1.0"},
    ),
    # ------------------------------------------------------------------------ Job: schema
    Bad("job-no-image", JOB, Door.API, "spec.image", {"input": {}}),
    Bad("job-empty-image", JOB, Door.API, "spec.image", {"image": ""}),
    Bad("job-161-char-image", JOB, Door.API, "spec.image", {"image": "i" * 161}),
    Bad("job-0-vcpus", JOB, Door.API, "spec.vcpus", {"image": NAPPER, "vcpus": 0}),
    Bad("job-1025-vcpus", JOB, Door.API, "spec.vcpus", {"image": NAPPER, "vcpus": 1025}),
    Bad("job-vcpus-string", JOB, Door.API, "spec.vcpus", {"image": NAPPER, "vcpus": "2"}),
    Bad("job-vcpus-1.5", JOB, Door.API, "spec.vcpus", {"image": NAPPER, "vcpus": 1.5}),
    Bad("job-0-memory", JOB, Door.API, "spec.memory", {"image": NAPPER, "memory": 0}),
    Bad(
        "job-memory-past-16TiB",
        JOB,
        Door.API,
        "spec.memory",
        {"image": NAPPER, "memory": 16 * 1024 * 1024 + 1},
    ),
    Bad("job-memory-2^63", JOB, Door.API, "spec.memory", {"image": NAPPER, "memory": 2**63}),
    Bad("job-negative-gpus", JOB, Door.API, "spec.gpus", {"image": NAPPER, "gpus": -1}),
    Bad("job-65-gpus", JOB, Door.API, "spec.gpus", {"image": NAPPER, "gpus": 65}),
    Bad("job-0-timeout", JOB, Door.API, "spec.timeout", {"image": NAPPER, "timeout": 0}),
    Bad(
        "job-timeout-past-30-days",
        JOB,
        Door.API,
        "spec.timeout",
        {"image": NAPPER, "timeout": 30 * 24 * 3600 + 1},
    ),
    Bad(
        "job-gpu-type-space",
        JOB,
        Door.API,
        "spec.gpuType",
        {"image": NAPPER, "gpus": 1, "gpuType": "Tesla T4"},
    ),
    Bad(
        "job-gpu-type-64",
        JOB,
        Door.API,
        "spec.gpuType",
        {"image": NAPPER, "gpus": 1, "gpuType": "g" * 64},
    ),
    Bad("job-input-list", JOB, Door.API, "spec.input", {"image": NAPPER, "input": [1]}),
    Bad(
        "job-1025-input-keys",
        JOB,
        Door.API,
        "spec.input",
        {"image": NAPPER, "input": {f"k{i}": i for i in range(1025)}},
    ),
    Bad("job-cancel-yes", JOB, Door.API, "spec.cancel", {"image": NAPPER, "cancel": "yes"}),
    Bad("job-unicode-name", JOB, Door.API, "metadata.name", {"image": NAPPER}, name="jöb"),
    Bad("job-254-char-name", JOB, Door.API, "metadata.name", {"image": NAPPER}, name="j" * 254),
    Bad(
        "job-4MiB-input",
        JOB,
        Door.API,
        "Request entity too large",
        {"image": NAPPER, "input": {"s": "x" * (4 * 1024 * 1024)}},
    ),
    # ---------------------------------------------------------------------- Job: operator
    Bad(
        "job-input-missing-required",
        JOB,
        Door.OPERATOR,
        "$.spec.input.seconds",
        {"image": NAPPER, "input": {}},
    ),
    Bad(
        "job-input-wrong-type",
        JOB,
        Door.OPERATOR,
        "$.spec.input.seconds",
        {"image": NAPPER, "input": {"seconds": "ten"}},
    ),
    Bad(
        "job-input-below-minimum",
        JOB,
        Door.OPERATOR,
        "$.spec.input.seconds",
        {"image": NAPPER, "input": {"seconds": -1}},
    ),
    Bad(
        "job-input-past-maximum",
        JOB,
        Door.OPERATOR,
        "$.spec.input.seconds",
        {"image": NAPPER, "input": {"seconds": 3601}},
    ),
    Bad(
        "job-input-1e30",
        JOB,
        Door.OPERATOR,
        "$.spec.input.seconds",
        {"image": NAPPER, "input": {"seconds": 1e30}},
    ),
    Bad(
        "job-bx-dot-dot",
        JOB,
        Door.OPERATOR,
        "$.spec.input.text",
        {"image": WORDS, "input": {"text": "bx://../etc/passwd"}},
    ),
    Bad(
        "job-bx-absolute",
        JOB,
        Door.OPERATOR,
        "$.spec.input.text",
        {"image": WORDS, "input": {"text": "bx:///etc/passwd"}},
    ),
    Bad(
        "job-plain-absolute",
        JOB,
        Door.OPERATOR,
        "$.spec.input.text",
        {"image": WORDS, "input": {"text": "/etc/passwd"}},
    ),
    Bad(
        "job-bx-nul",
        JOB,
        Door.OPERATOR,
        "$.spec.input.text",
        {"image": WORDS, "input": {"text": "bx://texts/a\x00b.txt"}},
    ),
    Bad(
        "job-bx-inner-dot-dot",
        JOB,
        Door.OPERATOR,
        "$.spec.input.text",
        {"image": WORDS, "input": {"text": "bx://texts/../../other-env/secret"}},
    ),
    Bad(
        "job-bx-unicode-missing",
        JOB,
        Door.OPERATOR,
        "$.spec.input.text",
        {"image": WORDS, "input": {"text": "bx://texts/ünï côdé.txt"}},
    ),
    Bad(
        "job-bx-300-levels",
        JOB,
        Door.OPERATOR,
        "$.spec.input.text",
        {"image": WORDS, "input": {"text": "bx://" + "a/" * 300 + "f"}},
    ),
    Bad(
        "job-bx-5000-chars",
        JOB,
        Door.OPERATOR,
        "$.spec.input.text",
        {"image": WORDS, "input": {"text": "bx://" + "x" * 5000}},
    ),
    Bad(
        "job-input-100-levels",
        JOB,
        Door.OPERATOR,
        "$.spec.input",
        {"image": NAPPER, "input": {"seconds": 0, "deep": nested(100)}},
    ),
    Bad(
        "job-input-300KiB",
        JOB,
        Door.OPERATOR,
        "$.spec.input",
        {"image": NAPPER, "input": {"seconds": 0, "s": "x" * 300 * 1024}},
    ),
    Bad("job-unknown-image", JOB, Door.OPERATOR, "$.spec.image", {"image": "nobody/nothing"}),
    Bad("job-unknown-version", JOB, Door.OPERATOR, "$.spec.image", {"image": NAPPER + ":9.9.9"}),
    Bad("job-bad-selector", JOB, Door.OPERATOR, "$.spec.image", {"image": NAPPER + ":^x"}),
    Bad("job-dot-dot-image", JOB, Door.OPERATOR, "$.spec.image", {"image": "../../napper"}),
    Bad(
        "job-other-env-image",
        JOB,
        Door.OPERATOR,
        "$.spec.image",
        {"image": "elsewhere@" + NAPPER, "input": {"seconds": 0}},
    ),
    Bad("job-newline-image", JOB, Door.OPERATOR, "$.spec.image", {"image": NAPPER + ":1.0.0\n"}),
    Bad(
        "job-below-min-mem",
        JOB,
        Door.OPERATOR,
        "$.spec.memory",
        {"image": NAPPER, "input": {"seconds": 0}, "memory": 31},
    ),
    Bad(
        "job-gpus-no-support",
        JOB,
        Door.OPERATOR,
        "$.spec.gpus",
        {"image": NAPPER, "input": {"seconds": 0}, "gpus": 1},
    ),
    Bad(
        "job-gpu-type-no-gpus",
        JOB,
        Door.OPERATOR,
        "$.spec.gpuType",
        {"image": NAPPER, "input": {"seconds": 0}, "gpuType": "T4"},
    ),
    Bad(
        "job-timeout-30-days",
        JOB,
        Door.OPERATOR,
        "$.spec.timeout",
        {"image": NAPPER, "input": {"seconds": 0}, "timeout": 30 * 24 * 3600},
    ),
    # ------------------------------------------------------------ Job: legal at the limits
    Bad(
        "job-memory-16TiB",
        JOB,
        Door.ACCEPTED,
        "QUEUED",
        {"image": NAPPER, "input": {"seconds": 0}, "memory": 16 * 1024 * 1024},
    ),
    Bad(
        "job-1024-vcpus",
        JOB,
        Door.ACCEPTED,
        "QUEUED",
        {"image": NAPPER, "input": {"seconds": 0}, "vcpus": 1024},
    ),
    Bad(
        "job-unicode-input",
        JOB,
        Door.ACCEPTED,
        "SUCCEEDED",
        {"image": NAPPER, "input": {"seconds": 0, "note": "ünï\u202e\x07 \U0001f600"}},
    ),
    Bad(
        "job-unknown-field",
        JOB,
        Door.ACCEPTED,
        "SUCCEEDED",
        {"image": NAPPER, "input": {"seconds": 0}, "vcpu": 64},
    ),
    # ------------------------------------------------------------- raw bytes: the decoders
    Bad("job-not-json", JOB, Door.API, "", raw=b'{"apiVersion": "batchx.io/v1alpha1", "kind":'),
    Bad(
        "job-nan",
        JOB,
        Door.API,
        "",
        raw=raw(JOB, '{"image": "examples/napper", "input": {"s": NaN}}'),
    ),
    Bad(
        "job-1e400",
        JOB,
        Door.API,
        "",
        raw=raw(JOB, '{"image": "examples/napper", "input": {"seconds": 1e400}}'),
    ),
    Bad(
        "job-duplicate-key-strict",
        JOB,
        Door.API,
        'duplicate field \\"spec.vcpus\\"',
        raw=raw(JOB, '{"image": "examples/napper", "vcpus": 1, "vcpus": 2000}'),
        query="fieldValidation=Strict",
    ),
    Bad(
        "job-duplicate-key-yaml-strict",
        JOB,
        Door.API,
        "already set in map",
        raw=b"apiVersion: batchx.io/v1alpha1\nkind: Job\nmetadata: {name: NAME}\n"
        b"spec: {image: examples/napper, image: nobody/nothing}\n",
        content_type="application/yaml",
        query="fieldValidation=Strict",
    ),
    # Without Strict the API server keeps the last value and says so in a Warning header.
    Bad(
        "job-duplicate-key-last-wins",
        JOB,
        Door.API,
        "spec.vcpus",
        raw=raw(JOB, '{"image": "examples/napper", "vcpus": 1, "vcpus": 2000}'),
    ),
    Bad(
        "job-duplicate-input-key",
        JOB,
        Door.OPERATOR,
        "$.spec.input.seconds",
        raw=raw(JOB, '{"image": "examples/napper", "input": {"seconds": 0, "seconds": "x"}}'),
        extra={"warning": "duplicate field"},
    ),
    Bad(
        "env-duplicate-key",
        ENV,
        Door.API,
        "spec.credits",
        raw=raw(ENV, '{"credits": 1, "credits": -5}'),
    ),
]


def body_of(case: Bad, name: str) -> bytes:
    """What is sent for `case`, named `name`."""
    if case.raw is not None:
        return case.raw.replace(b"NAME", name.encode())
    body = {
        "apiVersion": "batchx.io/v1alpha1",
        "kind": case.kind,
        "metadata": {"name": name},
        "spec": case.spec,
    }
    return json.dumps(body).encode()
