"""CRD generation: no drift, structural schemas, names, printer columns and CEL rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from batchx.crdgen import CRD_SPECS, main, render_crds

ROOT = Path(__file__).resolve().parents[2]


def _crds() -> dict[str, dict[str, Any]]:
    return {
        crd["spec"]["names"]["kind"]: crd
        for crd in (yaml.safe_load(text) for text in render_crds().values())
    }


def _walk(schema: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    nodes: list[tuple[str, dict[str, Any]]] = []
    if isinstance(schema, dict):
        nodes.append((path, schema))
        for name, sub in schema.get("properties", {}).items():
            nodes.extend(_walk(sub, f"{path}.{name}"))
        if isinstance(schema.get("items"), dict):
            nodes.extend(_walk(schema["items"], f"{path}[]"))
        if isinstance(schema.get("additionalProperties"), dict):
            nodes.extend(_walk(schema["additionalProperties"], f"{path}{{}}"))
    return nodes


@pytest.mark.parametrize("directory", ["crds", "helm/batchx-operator/crds"])
def test_generated_files_match_the_models(directory: str) -> None:
    target = ROOT / directory
    if not target.parent.is_dir():
        pytest.skip(f"{directory} has no parent here")
    for name, text in render_crds().items():
        assert (target / name).read_text() == text, (
            f"{directory}/{name} drifted: run python -m batchx.crdgen"
        )


def test_rendering_is_deterministic() -> None:
    assert render_crds() == render_crds()


def test_check_mode_reports_drift(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path)]) == 0
    assert main(["--check", str(tmp_path)]) == 0
    (tmp_path / "batchx.io_jobs.yaml").write_text("stale")
    assert main(["--check", str(tmp_path)]) == 1
    assert "batchx.io_jobs.yaml" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("kind", "plural", "short", "scope", "columns"),
    [
        (
            "Environment",
            "environments",
            "bxenv",
            "Cluster",
            ["Namespace", "Balance", "Storage", "Ready", "Age"],
        ),
        ("Image", "images", "bximg", "Namespaced", ["Coordinates", "Latest", "Ready", "Age"]),
        ("Job", "jobs", "bxjob", "Namespaced", ["Image", "State", "Credits", "Age"]),
    ],
)
def test_names_scope_columns(
    kind: str, plural: str, short: str, scope: str, columns: list[str]
) -> None:
    crd = _crds()[kind]
    assert crd["metadata"]["name"] == f"{plural}.batchx.io"
    spec = crd["spec"]
    assert spec["group"] == "batchx.io"
    assert spec["scope"] == scope
    assert spec["names"]["shortNames"] == [short]
    assert spec["names"]["categories"] == ["batchx"]
    (version,) = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {"status": {}}
    default_columns = [
        c["name"] for c in version["additionalPrinterColumns"] if "priority" not in c
    ]
    assert default_columns == columns


@pytest.mark.parametrize("kind", ["Environment", "Image", "Job"])
def test_schemas_are_structural_and_bounded(kind: str) -> None:
    schema = _crds()[kind]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in _walk(schema):
        text = yaml.safe_dump(node)
        assert "$ref" not in text, path
        assert "$defs" not in text, path
        assert node.get("additionalProperties") is not False, path
        assert "title" not in node, path
        if node.get("x-kubernetes-int-or-string"):
            continue
        assert "type" in node, f"{kind}{path} has no type"
        if node["type"] == "string" and path.split(".")[-1] not in ("apiVersion", "kind"):
            bounded = "maxLength" in node or "enum" in node or node.get("format") == "date-time"
            unbounded_ok = path.startswith(".spec.manifest")
            assert bounded or unbounded_ok, f"{kind}{path} string without maxLength"
        if node["type"] == "array" and not path.startswith(".spec.manifest"):
            assert "maxItems" in node, f"{kind}{path} array without maxItems"


def test_stable_field_names() -> None:
    crds = _crds()

    def props(kind: str, *path: str) -> set[str]:
        node = crds[kind]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        for part in path:
            node = node["properties"][part]
        return set(node["properties"])

    assert props("Environment", "spec") == {"quota", "credits", "members"}
    assert props("Environment", "spec", "quota") == {"cpu", "memory", "gpus", "jobs", "storage"}
    assert props("Environment", "status", "credits") == {"granted", "reserved", "spent", "balance"}
    assert props("Environment", "status", "storage") == {"usedBytes", "files"}
    assert {"namespace", "credits", "storage", "conditions"} <= props("Environment", "status")
    assert props("Image", "spec") == {"image", "manifest", "public"}
    assert {"coordinates", "baseName", "conditions"} <= props("Image", "status")
    assert props("Job", "spec") == {
        "image",
        "input",
        "vcpus",
        "memory",
        "gpus",
        "gpuType",
        "timeout",
        "cache",
        "cancel",
    }
    # Stable names (BRIEF section 3) plus the admission record (issue 12 item 7), the
    # store traffic of the job's files (issue 15 item 3) and a pipeline's children (issue 13).
    assert props("Job", "status") == {
        "state",
        "image",
        "admission",
        "output",
        "exitCode",
        "message",
        "cached",
        "cachedFrom",
        "credits",
        "transfer",
        "children",
        "startedAt",
        "finishedAt",
        "podName",
        "conditions",
        "observedGeneration",
    }
    assert props("Job", "status", "credits") == {"reserved", "charged"}
    assert props("Job", "status", "image") == {"coordinates", "container"}
    assert props("Job", "status", "admission") == {"resources", "rate", "cacheKey", "admittedAt"}
    assert props("Job", "status", "children") == {
        "total",
        "active",
        "succeeded",
        "failed",
        "cached",
        "credits",
    }


def test_cel_rules() -> None:
    crds = _crds()
    image_spec = crds["Image"]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"][
        "spec"
    ]
    assert [r["rule"] for r in image_spec["x-kubernetes-validations"]] == ["self == oldSelf"]
    job_spec = crds["Job"]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    rules = job_spec["x-kubernetes-validations"]
    guarded = {r["fieldPath"] for r in rules}
    assert guarded == {f".{f}" for f in job_spec["properties"]}
    cancel = next(r for r in rules if r["fieldPath"] == ".cancel")
    assert "oldSelf.cancel" in cancel["rule"]
    assert all(r["message"] for r in rules)


def test_free_form_objects_preserve_unknown_fields() -> None:
    crds = _crds()

    def node(kind: str, *path: str) -> dict[str, Any]:
        current = crds[kind]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        for part in path:
            current = current["properties"][part]
        return current

    assert node("Job", "spec", "input")["x-kubernetes-preserve-unknown-fields"] is True
    assert node("Job", "status", "output")["x-kubernetes-preserve-unknown-fields"] is True
    assert node("Image", "spec", "manifest")["x-kubernetes-preserve-unknown-fields"] is True
    assert node("Environment", "spec", "quota", "cpu")["x-kubernetes-int-or-string"] is True


def test_every_field_is_documented_with_its_json_name() -> None:
    for spec in CRD_SPECS:
        schema = _crds()[spec.kind]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        for path, node in _walk(schema):
            name = path.rsplit(".", 1)[-1]
            if (
                not path
                or name in ("apiVersion", "kind", "metadata")
                or path.startswith(".spec.manifest.")
            ):
                continue
            if "[]" in name or "{" in name:
                continue
            assert node.get("description", "").startswith(name), f"{spec.kind}{path}"
