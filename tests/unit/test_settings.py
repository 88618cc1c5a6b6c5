"""Operator settings: defaults, config file (Helm values style), environment overrides."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from batchx.settings import Settings


def test_defaults() -> None:
    settings = Settings.load({})
    assert settings.allow_tags is False
    assert settings.pod_security_level == "restricted"
    assert settings.prices.gpu_hour == 10.0


def test_file_then_environment(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "allowTags: true\nprices: {vcpuHour: 2, gpuHour: 7}\npodSecurityLevel: baseline\n"
    )
    settings = Settings.load(
        {
            "BATCHX_CONFIG": str(config),
            "BATCHX_PRICES__GPU_HOUR": "9.5",
            "BATCHX_STORE": "s3://bx",
            "BATCHX_SOMETHING_ELSE": "ignored",  # other components' variables are not ours
        }
    )
    assert settings.allow_tags is True
    assert (settings.prices.vcpu_hour, settings.prices.gpu_hour) == (2.0, 9.5)
    assert settings.pod_security_level == "baseline"
    assert settings.store == "s3://bx"


@pytest.mark.parametrize(
    "environ",
    [
        {"BATCHX_POD_SECURITY_LEVEL": "lenient"},
        {"BATCHX_PRICES__VCPU_HOUR": "-1"},
        {"BATCHX_ALLOW_TAGS": "maybe"},
    ],
)
def test_invalid_values_refused(environ: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        Settings.load(environ)


def test_unknown_key_in_file_refused(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("alowTags: true\n")
    with pytest.raises(ValidationError):
        Settings.load({"BATCHX_CONFIG": str(config)})


@pytest.mark.parametrize(
    ("store", "url"),
    [
        ("s3://bx/pre?endpoint=http://minio:9000", "s3://bx/pre?endpoint=http://minio:9000"),
        ("", None),
        ({"backend": "s3", "bucket": "batchx", "endpoint": "", "region": ""}, "s3://batchx"),
        (
            {"backend": "s3", "bucket": "bx", "prefix": "/p/", "endpoint": "http://m:9000"},
            "s3://bx/p?endpoint=http%3A%2F%2Fm%3A9000",
        ),
        ({"backend": "local", "root": "/data"}, "file:///data"),
    ],
)
def test_store_url_or_chart_form(store: object, url: str | None) -> None:
    assert Settings.model_validate({"store": store}).store == url


def test_store_chart_form_needs_a_bucket() -> None:
    with pytest.raises(ValidationError):
        Settings.model_validate({"store": {"backend": "s3"}})


def test_gpu_types_from_a_file_list_or_a_comma_separated_variable(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("gpuTypes: [A100]\n")
    assert Settings.load({"BATCHX_CONFIG": str(config)}).gpu_types == ("A100",)
    assert Settings.load({"BATCHX_GPU_TYPES": "A100, L4"}).gpu_types == ("A100", "L4")
    assert Settings.load({}).gpu_types == ()


def test_jobs_unavailable_names_each_missing_setting() -> None:
    bare = Settings.load({})
    reason = bare.jobs_unavailable()
    assert reason is not None
    assert "runnerImage" in reason
    assert "store" in reason
    runner_only = Settings.load({"BATCHX_RUNNER_IMAGE": "r@sha256:" + "0" * 64})
    assert "runnerImage" not in (runner_only.jobs_unavailable() or "")
    assert "store" in (runner_only.jobs_unavailable() or "")
    both = Settings.load({"BATCHX_RUNNER_IMAGE": "r:1", "BATCHX_STORE": "s3://bx"})
    assert both.jobs_unavailable() is None


def test_the_charts_empty_runner_image_means_unset(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("runnerImage: ''\n")
    assert Settings.load({"BATCHX_CONFIG": str(path)}).runner_image is None


def test_job_placement_from_a_file_or_json_variables(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "jobTolerations: [{key: pool, operator: Exists, effect: NoSchedule}]\n"
        "jobNodeSelector: {pool: batch}\n"
    )
    from_file = Settings.load({"BATCHX_CONFIG": str(config)})
    assert from_file.job_tolerations == (
        {"key": "pool", "operator": "Exists", "effect": "NoSchedule"},
    )
    assert from_file.job_node_selector == {"pool": "batch"}
    from_env = Settings.load(
        {
            "BATCHX_JOB_TOLERATIONS": '[{"key": "pool", "operator": "Exists"}]',
            "BATCHX_JOB_NODE_SELECTOR": '{"pool": "batch"}',
        }
    )
    assert from_env.job_tolerations == ({"key": "pool", "operator": "Exists"},)
    assert from_env.job_node_selector == {"pool": "batch"}
    unset = Settings.load({"BATCHX_JOB_TOLERATIONS": "", "BATCHX_JOB_NODE_SELECTOR": ""})
    assert (unset.job_tolerations, unset.job_node_selector) == ((), {})


@pytest.mark.parametrize(
    ("variable", "value", "said"),
    [
        ("BATCHX_JOB_TOLERATIONS", "[{key: pool}]", "not JSON"),
        ("BATCHX_JOB_TOLERATIONS", '[{"key": "a", "tolerationSeconds": "1"}]', "unknown keys"),
        ("BATCHX_JOB_TOLERATIONS", '[{"key": "a", "operator": "In"}]', "[0].operator"),
        ("BATCHX_JOB_NODE_SELECTOR", '["pool"]', "jobNodeSelector"),
    ],
)
def test_bad_job_placement_refused_with_the_place(variable: str, value: str, said: str) -> None:
    with pytest.raises(ValidationError) as err:
        Settings.load({variable: value})
    assert said in str(err.value)
