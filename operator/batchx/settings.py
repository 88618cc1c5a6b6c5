"""Operator configuration: one pydantic model, read from a config file and environment variables.

Sources, later ones win:

1. defaults below;
2. a YAML or JSON file named by ``BATCHX_CONFIG`` (the Helm chart mounts its values here), using
   the camelCase keys of the chart (``allowTags``, ``prices.vcpuHour``, ...);
3. environment variables ``BATCHX_<FIELD>`` in upper snake case, nested fields joined with ``__``
   (``BATCHX_ALLOW_TAGS=true``, ``BATCHX_PRICES__GPU_HOUR=12.5``, ``BATCHX_STORE=s3://bx``).

Pod security: every Environment namespace gets the Pod Security Admission labels
``pod-security.kubernetes.io/{enforce,audit,warn}=<podSecurityLevel>`` (default ``restricted``,
the level BatchX's container contract is designed for; ``baseline`` or ``privileged`` for
clusters whose tool images need more), with ``enforce-version=latest``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlencode

import yaml
from pydantic import (
    AliasGenerator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)
from pydantic.alias_generators import to_camel

ENV_PREFIX = "BATCHX_"
CONFIG_FILE_VARIABLE = "BATCHX_CONFIG"

# The store credentials the operator hands to job Pods (boto3's standard variables).
_AWS_VARIABLES = frozenset(
    {
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_DEFAULT_REGION",
        "AWS_REGION",
        "AWS_CA_BUNDLE",
    }
)

PodSecurityLevel = Literal["privileged", "baseline", "restricted"]


class _Model(BaseModel):
    # camelCase in files (Helm values style), snake_case in Python; unknown keys are a typo: refuse.
    model_config = ConfigDict(
        alias_generator=AliasGenerator(validation_alias=to_camel),
        populate_by_name=True,
        extra="forbid",
        frozen=True,
    )


class Prices(_Model):
    """Credits charged per hour of each resource (BRIEF section 4)."""

    vcpu_hour: float = Field(1.0, ge=0, description="vcpuHour: credits per vCPU-hour")
    gb_hour: float = Field(0.1, ge=0, description="gbHour: credits per GB-hour of memory")
    gpu_hour: float = Field(10.0, ge=0, description="gpuHour: credits per GPU-hour")


class Settings(_Model):
    """Everything an operator administrator can tune."""

    prices: Prices = Prices()
    allow_tags: bool = Field(
        False, description="allowTags: accept Image container references by tag, not only digest"
    )
    pod_security_level: PodSecurityLevel = "restricted"
    store: str | None = Field(
        None,
        description="store: URL of the content store, s3://BUCKET[/PREFIX][?endpoint=URL] or "
        "file:///DIR (batchx.store.config); None: storage usage is not reported",
    )
    # Runtime limits: explicit so that a burst of objects cannot exhaust the API server or us.
    # Objects, not API calls (those are bounded below): after a restart every object is listed
    # at once, and each holds a worker a moment after its event (Kopf's idle timeout): a job
    # submitted meanwhile waits for a worker behind them (1,100 jobs / 20 workers x 0.5 s).
    worker_limit: int = Field(
        200, ge=1, description="workerLimit: objects Kopf processes concurrently"
    )
    # The sustained rate protects the API server; the bucket holds one burst of new jobs: 20
    # jobs cost ~130 requests before the last one's Pod (get, SUBMITTED, STARTING, plan, Pod
    # each, and the pass's reads), so with 40 the last Pod waited 4-6 s for tokens
    # (bench_jobs, burst of 20: Job->Pod p99 6.5 s with 40, 2.4 s with 200).
    api_qps: float = Field(20.0, gt=0, description="apiQps: sustained API requests per second")
    api_burst: int = Field(200, ge=1, description="apiBurst: API requests allowed in a burst")
    api_concurrency: int = Field(10, ge=1, description="apiConcurrency: API requests in flight")
    resync_seconds: float = Field(
        60.0, gt=0, description="resyncSeconds: period of the level-triggered full reconcile"
    )
    # Loopback by default: a developer's operator serves nothing to the network. The chart sets
    # 0.0.0.0 in the pod, where the kubelet and Prometheus must reach these endpoints.
    liveness_endpoint: str | None = "http://127.0.0.1:8080/healthz"
    metrics_port: int | None = Field(
        None, ge=1, le=65535, description="metricsPort: serve Prometheus /metrics on this port"
    )
    metrics_address: str = Field(
        "127.0.0.1", description="metricsAddress: the address /metrics listens on"
    )
    # Readiness (the chart's readinessProbe): 503 with the reason until the operator can run jobs.
    readiness_endpoint: str | None = "http://127.0.0.1:8081/readyz"
    log_format: Literal["json", "text"] = "json"
    kubeconfig: str | None = Field(
        None, description="kubeconfig: file to log in with (None: in-cluster or $KUBECONFIG)"
    )
    # Job policy (batchx.planning.job_admission.JobPolicy and job_pod.PodPolicy).
    default_timeout: int = Field(
        3600, ge=1, description="defaultTimeout: seconds a job may run when spec.timeout is unset"
    )
    max_timeout: int = Field(
        7 * 24 * 3600, ge=1, description="maxTimeout: the largest spec.timeout accepted, seconds"
    )
    runner_image: str | None = Field(
        None,
        description="runnerImage: the project's runner image (stage-in/stage-out containers of "
        "every job Pod), pinned by digest in production; None: no job is admitted (they wait "
        "QUEUED, OperatorNotConfigured)",
    )
    gpu_types: tuple[str, ...] = Field(
        (),
        description="gpuTypes: GPU products jobs may ask for (spec.gpuType) besides those some "
        "node is labelled with (nvidia.com/gpu.product): node pools that scale up from zero; "
        "a list, or comma-separated in BATCHX_GPU_TYPES",
    )
    job_tolerations: tuple[dict[str, str], ...] = Field(
        (),
        description="jobTolerations: tolerations added to every job Pod (Kubernetes' "
        "{key, operator, value, effect}), for nodes kept for batch work by a taint; a list, or "
        "its JSON in BATCHX_JOB_TOLERATIONS",
    )
    job_node_selector: dict[str, str] = Field(
        default_factory=dict,
        description="jobNodeSelector: node labels every job Pod requires (merged with the GPU "
        "product label of a job with spec.gpuType); a mapping, or its JSON in "
        "BATCHX_JOB_NODE_SELECTOR",
    )
    upload_grace_seconds: int = Field(
        600,
        ge=1,
        description="uploadGraceSeconds: the Pod's terminationGracePeriodSeconds, the time "
        "stage-out has to upload outputs after the job's container exits",
    )
    run_as_user: int | None = Field(
        1000, ge=1, description="runAsUser: uid (and gid) of every container of a job Pod"
    )
    gc_interval_seconds: int = Field(
        86400,
        ge=0,
        description="gcIntervalSeconds: how often the operator collects the store's "
        "unreferenced blobs (batchx.reconcile.gc); 0: never",
    )
    gc_grace_seconds: int = Field(
        3600,
        ge=0,
        description="gcGraceSeconds: unreferenced blobs younger than this are kept, a second "
        "guard besides the leases for uploads about to be named (keep it above the longest "
        "pause a writer may have)",
    )
    files_api_address: str | None = Field(
        None,
        description="filesApiAddress: HOST:PORT the files API (files.batchx.io, an aggregated "
        "API) listens on over TLS; None: not served (the chart sets 0.0.0.0:8443)",
    )
    files_api_cert: str | None = Field(
        None, description="filesApiCert: the files API's serving certificate (PEM file)"
    )
    files_api_key: str | None = Field(
        None, description="filesApiKey: the files API's serving key (PEM file)"
    )
    direct_output: bool = Field(
        True,
        description="directOutput: a job whose output schema lists no file gets no stage-out "
        "container, the kubelet returns its output.json (at most 4095 bytes; larger ends "
        "INVALID_OUTPUT): batchx.planning.direct_output; false: every job gets the runner",
    )
    direct_output_except: tuple[str, ...] = Field(
        (),
        description="directOutputExcept: base names (env@name) of images whose jobs always get "
        "the stage-out runner (outputs of 4096 bytes or more with no file); a list, or "
        "comma-separated in BATCHX_DIRECT_OUTPUT_EXCEPT",
    )
    store_secret: str = Field(
        "batchx-store",
        min_length=1,
        max_length=253,
        description="storeSecret: the Secret, in each environment namespace, holding the store "
        "URL and credentials the runner containers read (written by the operator)",
    )

    @field_validator("gpu_types", "direct_output_except", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        """An environment variable holds a string: ``A100,L4``."""
        if isinstance(value, str):
            return tuple(t.strip() for t in value.split(",") if t.strip())
        return value

    @field_validator("job_tolerations", "job_node_selector", mode="before")
    @classmethod
    def _json_text(cls, value: Any, info: ValidationInfo) -> Any:
        """An environment variable holds JSON text: ``[{"key": "pool", "operator": "Exists"}]``;
        empty means "not set"."""
        if isinstance(value, str):
            if not value.strip():
                return [] if info.field_name == "job_tolerations" else {}
            try:
                return json.loads(value)
            except ValueError as err:
                raise ValueError(f"not JSON: {err}") from None
        return value

    @field_validator("job_tolerations", mode="after")
    @classmethod
    def _tolerations(cls, value: tuple[dict[str, str], ...]) -> tuple[dict[str, str], ...]:
        known = {"key", "operator", "value", "effect"}
        for i, toleration in enumerate(value):
            if unknown := sorted(set(toleration) - known):
                raise ValueError(f"[{i}]: unknown keys {unknown}; expected {sorted(known)}")
            if toleration.get("operator", "Equal") not in ("Equal", "Exists"):
                raise ValueError(f"[{i}].operator: expected Equal or Exists")
        return value

    @field_validator("runner_image", mode="before")
    @classmethod
    def _runner_image(cls, value: Any) -> Any:
        return value or None  # the chart's "" means "not set"

    def jobs_unavailable(self) -> str | None:
        """Why this operator cannot run any job (a setting every job needs is missing), or None.

        Every job Pod has runner containers, and every job's output goes through the store.
        """
        missing = []
        if not self.runner_image:
            missing.append(
                "runnerImage (the chart sets it from `registry` and `runner`; or "
                "BATCHX_RUNNER_IMAGE)"
            )
        if not self.store:
            missing.append("store (the chart's `config.store`; or BATCHX_STORE)")
        if not missing:
            return None
        return (
            "the operator cannot run jobs: its configuration lacks "
            + " and ".join(missing)
            + "; the job starts once an admin sets it"
        )

    @field_validator("store", mode="before")
    @classmethod
    def _store_url(cls, value: Any) -> Any:
        """Also accept the chart's structured form: {backend: s3, bucket, endpoint, region,
        prefix} or {backend: local, root}; empty strings mean "not set"."""
        if not isinstance(value, Mapping):
            return value or None
        known = {"backend", "bucket", "endpoint", "region", "prefix", "root"}
        if unknown := sorted(set(value) - known):
            raise ValueError(f"store: unknown keys {unknown}; expected {sorted(known)}")
        if value.get("backend", "s3") == "local":
            root = value.get("root") or ""
            return f"file://{root}" if root else None
        bucket = value.get("bucket") or ""
        if not bucket:
            raise ValueError("store: an s3 store needs a bucket")
        prefix = str(value.get("prefix") or "").strip("/")
        query = {k: value[k] for k in ("endpoint", "region") if value.get(k)}
        return (
            f"s3://{bucket}"
            + (f"/{prefix}" if prefix else "")
            + (f"?{urlencode(query)}" if query else "")
        )

    def store_credentials(self, environ: Mapping[str, str] | None = None) -> dict[str, str]:
        """What the runner containers need to reach the store: ``BATCHX_STORE`` and the
        operator's own ``AWS_*`` variables (empty when no store is configured)."""
        if not self.store:
            return {}
        env = os.environ if environ is None else environ
        data = {k: v for k, v in env.items() if k in _AWS_VARIABLES and v}
        return {"BATCHX_STORE": self.store, **data}

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read the config file (if any) and the environment; raise on anything invalid."""
        env = os.environ if environ is None else environ
        data: dict[str, Any] = {}
        path = env.get(CONFIG_FILE_VARIABLE)
        if path:
            data = _read_file(Path(path))
        _merge(data, _from_environment(env))
        return cls.model_validate(data)


def _read_file(path: Path) -> dict[str, Any]:
    text = path.read_text()
    loaded = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    return loaded


def _from_environment(env: Mapping[str, str]) -> dict[str, Any]:
    """``BATCHX_PRICES__GPU_HOUR=3`` -> ``{"prices": {"gpuHour": "3"}}`` (pydantic coerces)."""
    out: dict[str, Any] = {}
    for key, value in env.items():
        if not key.startswith(ENV_PREFIX) or key == CONFIG_FILE_VARIABLE:
            continue
        parts = [to_camel(p.lower()) for p in key[len(ENV_PREFIX) :].split("__")]
        if not all(parts) or parts[0] not in _TOP_LEVEL_KEYS:
            continue  # other BATCHX_* variables (the CLI's, the test bed's) are not ours
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> None:
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


_TOP_LEVEL_KEYS = frozenset(to_camel(name) for name in Settings.model_fields)
