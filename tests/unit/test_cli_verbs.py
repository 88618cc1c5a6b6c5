"""The `bx` cluster verbs' behaviour that needs no cluster: start-up cost, input parsing, and
refusals made before the API is contacted (exit 2, nothing created)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from testbed.images import Entry, ImageSpec, write_archive
from typer.testing import CliRunner

from batchx.cli.app import app
from batchx.cli.common import EXIT_REFUSED

runner = CliRunner()
STABLE_VERBS = [
    "cp",
    "ls",
    "rm",
    "images",
    "import",
    "run",
    "submit",
    "jobs",
    "logs",
    "cancel",
    "env",
    "manifest",
]
# A kubeconfig whose server nothing listens on: a test that gets past the client's own checks
# would fail with exit 3 (unreachable), not 2.
KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:9"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
"""


@pytest.fixture
def kubeconfig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG)
    monkeypatch.setenv("KUBECONFIG", str(path))
    monkeypatch.delenv("BATCHX_ENV", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    return path


def test_importing_the_cli_loads_no_heavy_library() -> None:
    code = (
        "import sys, batchx.cli.app; "
        "print([m for m in ('kubernetes', 'rich', 'pydantic', 'yaml', 'boto3', 'jsonschema') "
        "if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_help_lists_every_stable_verb() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    listed = {line.split()[1] for line in result.output.splitlines() if line.startswith("│ ")}
    assert set(STABLE_VERBS) <= listed


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("{nope", "the input is not valid JSON: line 1 column 2"),
        ("[1, 2]", "the input must be a JSON object, got list"),
        ("@/no/such/input.json", "cannot read /no/such/input.json"),
    ],
)
@pytest.mark.parametrize("verb", ["run", "submit"])
def test_bad_input_exits_2_before_contacting_the_cluster(
    verb: str, given: str, message: str, kubeconfig: Path
) -> None:
    result = runner.invoke(app, [verb, "-e", "lab", "examples/wordcount", given])
    assert result.exit_code == EXIT_REFUSED
    assert message in result.stderr


def test_input_from_stdin_is_parsed(kubeconfig: Path) -> None:
    result = runner.invoke(app, ["submit", "-e", "lab", "x", "-"], input="[]")
    assert (result.exit_code, "stdin must be a JSON object" in result.stderr) == (2, True)


def test_no_environment_anywhere_exits_2_and_says_where_to_set_it(kubeconfig: Path) -> None:
    result = runner.invoke(app, ["jobs"])
    assert result.exit_code == EXIT_REFUSED
    assert "no environment: pass -e/--env, set BATCHX_ENV" in result.stderr


def test_an_unreachable_cluster_exits_3(kubeconfig: Path) -> None:
    result = runner.invoke(app, ["jobs", "-e", "lab"])
    assert result.exit_code == 3
    assert "cannot reach the Kubernetes API at https://127.0.0.1:9" in result.stderr


def test_import_of_an_image_without_a_manifest_exits_2(kubeconfig: Path, tmp_path: Path) -> None:
    archive = tmp_path / "plain.tar"
    write_archive(ImageSpec("plain", "1", [Entry("bin/tool", data=b"x")]), archive)
    result = runner.invoke(app, ["import", "-e", "lab", f"oci-archive:{archive}"])
    assert result.exit_code == EXIT_REFUSED
    assert "the image has no /batchx/manifest/manifest.json; pass --manifest FILE" in (
        result.stderr
    )


def test_import_lists_manifest_problems_as_manifest_check_does(
    kubeconfig: Path, tmp_path: Path
) -> None:
    bad = {"name": "Bad Name", "version": "01.0.0"}
    manifest_file = tmp_path / "bad.json"
    manifest_file.write_text(json.dumps(bad))
    checked = runner.invoke(app, ["manifest", "check", str(manifest_file)])
    problems = [line.split(": ", 1)[1] for line in checked.stdout.splitlines()]
    archive = tmp_path / "bad.tar"
    entries = [Entry("batchx/manifest/manifest.json", data=json.dumps(bad).encode())]
    write_archive(ImageSpec("bad", "1", entries, labels={"io.batchx.manifest": "10"}), archive)
    result = runner.invoke(app, ["import", "-e", "lab", f"oci-archive:{archive}"])
    assert result.exit_code == EXIT_REFUSED
    lines = [line for line in result.stderr.splitlines() if ":/batchx/manifest/" in line]
    assert [line.split(".json: ", 1)[1] for line in lines] == problems
    assert len(problems) >= 2


def test_import_of_another_manifest_version_exits_2(kubeconfig: Path, tmp_path: Path) -> None:
    archive = tmp_path / "v9.tar"
    entries = [Entry("batchx/manifest/manifest.json", data=b"{}")]
    write_archive(ImageSpec("v9", "1", entries, labels={"io.batchx.manifest": "9"}), archive)
    result = runner.invoke(app, ["import", "-e", "lab", str(archive)])
    assert result.exit_code == EXIT_REFUSED
    assert "label io.batchx.manifest=9: only manifest version 10 is supported" in result.stderr
