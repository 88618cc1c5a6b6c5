"""`bx manifest check`: exit codes, one-line summary, every problem with its JSON path."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from batchx.cli.app import app

DATA = Path(__file__).parent.parent / "data"
BWA = DATA / "manifests" / "bwa-mem.json"
BWA_INPUT = DATA / "inputs" / "bwa-mem.input.json"
runner = CliRunner()


def _run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["manifest", "check", *args])
    return result.exit_code, result.output


def _write(tmp_path: Path, name: str, document: Any) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(document) if name.endswith(".json") else yaml.safe_dump(document))
    return path


def test_valid_manifest_prints_one_line_summary() -> None:
    code, output = _run(str(BWA))
    assert code == 0
    assert output.strip().splitlines() == [
        "OK bioinformatics/bwa-mem:2.3.1: minMem 8000 MB, 4 vCPU(s), 3 input file field(s)"
    ]


def test_valid_manifest_and_input() -> None:
    code, output = _run(str(BWA), "--input", str(BWA_INPUT))
    assert code == 0
    assert "input valid (7 file reference(s))" in output


def test_every_problem_is_listed_with_its_path(tmp_path: Path) -> None:
    manifest = json.loads(BWA.read_text())
    manifest["version"] = "2.3"
    manifest["runtime"]["minMem"] = -1
    manifest["errorCodes"]["oops"] = "x"
    manifest["userFiles"] = ["$.minSeedLength"]
    code, output = _run(str(_write(tmp_path, "m.json", manifest)))
    assert code == 1
    lines = output.strip().splitlines()
    assert any("$.version:" in line for line in lines)
    assert any("$.runtime.minMem: must be a positive" in line for line in lines)
    assert any("$.errorCodes.oops:" in line for line in lines)
    assert any("$.userFiles[0]:" in line and "not a file field" in line for line in lines)
    assert lines[-1] == "4 problem(s) found"


def test_bad_input_is_reported_with_paths(tmp_path: Path) -> None:
    document = json.loads(BWA_INPUT.read_text())
    document["samples"][1]["reads"][0] = "bx://../secret"
    del document["reference"]
    code, output = _run(str(BWA), "--input", str(_write(tmp_path, "in.json", document)))
    assert code == 1
    assert "$.reference: is required but missing" in output
    assert "$.samples[1].reads[0]: file reference 'bx://../secret'" in output


@pytest.mark.parametrize("wrapper", ["manifest", "image"])
def test_wrapped_manifests(tmp_path: Path, wrapper: str) -> None:
    manifest = json.loads(BWA.read_text())
    if wrapper == "manifest":
        path = _write(tmp_path, "wrapped.json", {"manifest": manifest})
    else:
        image = {
            "apiVersion": "batchx.io/v1alpha1",
            "kind": "Image",
            "spec": {"manifest": manifest},
        }
        path = _write(tmp_path, "image.yaml", image)
    assert _run(str(path))[0] == 0
    manifest["runtime"]["minMem"] = 0
    broken = (
        {"manifest": manifest}
        if wrapper == "manifest"
        else {"kind": "Image", "spec": {"manifest": manifest}}
    )
    path = _write(tmp_path, path.name, broken)
    code, output = _run(str(path))
    assert code == 1
    prefix = "$.manifest" if wrapper == "manifest" else "$.spec.manifest"
    assert f"{prefix}.runtime.minMem" in output


def test_unreadable_files_exit_2(tmp_path: Path) -> None:
    assert _run(str(tmp_path / "missing.json"))[0] == 2
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    code, output = _run(str(bad))
    assert code == 2
    assert "not valid JSON: line 1" in output
