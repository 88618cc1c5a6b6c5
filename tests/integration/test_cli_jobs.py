"""`bx` against the real test bed, as a user runs it: a subprocess with only a kubeconfig.

One operator and one Environment serve the module. The images are imported with `bx import`:
wordcount and exit-error from the test bed's registry (where the job fixtures pushed the example
images, each carrying its manifest), sleeper from an OCI archive of the same image (the same
bytes, so the same digest). Each test states what a user sees: exit code, stdout (JSON a script
parses), stderr.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kopf.testing import KopfRunner
from kubernetes import client

from batchx.client import Client, WaitTimeout
from testbed import example_images, registry
from tests.fixtures_jobs import JobBed
from tests.helpers import eventually
from tests.integration.bx import GROUP, VERSION, Bx, condition

pytestmark = pytest.mark.cluster

BX = str(Path(sys.executable).parent / "bx")
TEXT = b"the cat saw the dog\nthe end\n"
FROM_REGISTRY = ("wordcount", "exit-error")
FROM_ARCHIVE = ("sleeper",)
IMPORTED = FROM_REGISTRY + FROM_ARCHIVE


@dataclass
class Lab:
    bx: Bx
    name: str
    kubeconfig: str
    archives: dict[str, Path]

    def run(
        self,
        *args: str,
        input: str | None = None,
        timeout: float = 300,
        extra_env: dict[str, str] | None = None,
    ) -> Any:
        """`bx ARGS -e <lab>` with nothing but a kubeconfig (no store or AWS variables, unless
        `extra_env` gives them)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "BATCHX_"))}
        env.update(extra_env or {})
        env["KUBECONFIG"] = self.kubeconfig
        env["BATCHX_REGISTRY_URL"] = registry.url()  # where batchx.local is served
        return subprocess.run(
            [BX, *args, "-e", self.name],
            input=input,
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            check=False,
        )

    def start(self, *args: str) -> subprocess.Popen[str]:
        """`bx ARGS -e <lab>` in the background, stdout and stderr piped."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "BATCHX_"))}
        env["KUBECONFIG"] = self.kubeconfig
        return subprocess.Popen(
            [BX, *args, "-e", self.name],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )

    def job_names(self) -> list[str]:
        return sorted(j["metadata"]["name"] for j in self.bx.jobs(self.name))

    def job(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self.bx.custom.get_namespaced_custom_object(
            GROUP, VERSION, self.name, "jobs", name
        )
        return result

    def wait_state(self, name: str, *states: str, timeout: float = 180) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            job = self.job(name)
            return job if (job.get("status") or {}).get("state") in states else None

        return eventually(probe, timeout=timeout, what=f"job {name} in {states}")


def submitted(stderr: str) -> str:
    """The job name from `bx run`'s "job <name> submitted to environment <env>" line."""
    line = next(ln for ln in stderr.splitlines() if ln.startswith("job ") and " submitted" in ln)
    return line.split()[1]


@pytest.fixture(scope="module")
def lab(
    jobs_operator: KopfRunner,
    module_bx: Bx,
    job_bed: JobBed,
    kubeconfig: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Lab:
    """An Environment with wordcount and exit-error imported by `bx import` from the registry,
    and sleeper from an archive."""
    name = module_bx.create_environment(
        f"cli-{uuid.uuid4().hex[:6]}", quota={"cpu": "2", "jobs": 4}, credits=1000
    )
    module_bx.wait_ready(name)
    folder = tmp_path_factory.mktemp("archives")
    archives = {}
    for example in FROM_ARCHIVE:
        archives[example] = folder / f"{example}.tar"
        example_images.write_example_archive(example, archives[example])
    lab = Lab(module_bx, name, kubeconfig, archives)
    for source in [
        *(job_bed.examples[e].image.ref for e in FROM_REGISTRY),  # batchx.local/examples/x:1.0.0
        *(f"oci-archive:{archives[e]}" for e in FROM_ARCHIVE),
    ]:
        done = lab.run("import", source)
        assert done.returncode == 0, done.stderr
    with job_bed.store() as store:
        store.env(name).put_bytes("texts/a.txt", TEXT)
    return lab


def test_import_pins_the_digest_and_images_lists_it(lab: Lab, job_bed: JobBed) -> None:
    for example in IMPORTED:
        image = lab.bx.image(lab.name, f"examples-{example}-1-0-0")
        assert image["spec"]["image"] == job_bed.examples[example].image.pinned
        assert image["spec"]["manifest"] == example_images.manifest(example)
    listed = lab.run("images", "-o", "json")
    assert listed.returncode == 0, listed.stderr
    coordinates = {i["coordinates"]: i for i in json.loads(listed.stdout)}
    assert set(coordinates) == {f"{lab.name}@examples/{e}:1.0.0" for e in IMPORTED}
    assert coordinates[f"{lab.name}@examples/wordcount:1.0.0"]["ready"] == "True"
    again = lab.run("import", f"oci-archive:{lab.archives['sleeper']}")
    assert (again.returncode, again.stdout.split()[:2]) == (0, ["already", "imported"])


def test_run_wordcount_prints_the_output_json_and_exits_0(lab: Lab) -> None:
    done = lab.run(
        "run", "--no-cache", "-m", "64", "examples/wordcount", '{"text": "bx://texts/a.txt"}'
    )
    assert done.returncode == 0, done.stderr
    name = submitted(done.stderr)
    assert name.startswith("wordcount-")
    assert json.loads(done.stdout) == {
        "counts": f"bx://jobs/{name}/output/counts.txt",
        "lines": 2,
        "words": 7,
    }
    assert f"{name} SUCCEEDED" in done.stderr
    logs = lab.run("logs", name)
    assert (logs.returncode, logs.stdout.strip()) == (0, "wordcount: 2 lines, 7 words")


def test_run_of_an_identical_job_is_cached_free_and_logs_the_first(
    lab: Lab, job_bed: JobBed
) -> None:
    with job_bed.store() as store:
        store.env(lab.name).put_bytes("texts/cached.txt", b"said once\n")
    document = '{"text": "bx://texts/cached.txt"}'
    first = lab.run("run", "examples/wordcount", document)
    assert first.returncode == 0, first.stderr
    again = lab.run("run", "examples/wordcount", document)
    assert again.returncode == 0, again.stderr
    one, two = submitted(first.stderr), submitted(again.stderr)
    assert f"{two} SUCCEEDED <cached> from {one}; 0 credits charged" in again.stderr
    assert json.loads(again.stdout)["counts"] == f"bx://jobs/{two}/output/counts.txt"
    logs = lab.run("logs", two)  # a served job never ran: the log is its original's
    assert (logs.returncode, logs.stdout.strip()) == (0, "wordcount: 1 lines, 2 words")


def test_run_upload_stores_a_local_input_file_once(
    lab: Lab, job_bed: JobBed, tmp_path: Path
) -> None:
    text = tmp_path / "notes.txt"
    text.write_bytes(TEXT)
    store = {**job_bed.credentials(), "BATCHX_STORE": job_bed.store_url}
    document = json.dumps({"text": str(text)})
    flags = ["--no-cache", "--upload", "--logs"]  # it runs: its log is streamed
    done = lab.run("run", *flags, "examples/wordcount", document, extra_env=store)
    assert done.returncode == 0, done.stderr
    assert (json.loads(done.stdout)["lines"], json.loads(done.stdout)["words"]) == (2, 7)
    assert "wordcount: 2 lines, 7 words" in done.stderr  # --logs streamed the job's log
    uploaded = done.stderr.split(f"{text} -> ", 1)[1].split()[0]
    assert uploaded.startswith("bx://uploads/")
    assert uploaded.endswith("/notes.txt")
    name = submitted(done.stderr)
    assert lab.job(name)["spec"]["input"] == {"text": uploaded}
    with job_bed.store() as files:
        assert files.env(lab.name).read_bytes(uploaded.removeprefix("bx://")) == TEXT
    again = lab.run("submit", "--upload", "examples/wordcount", document, extra_env=store)
    assert again.returncode == 0, again.stderr
    assert lab.job(again.stdout.strip())["spec"]["input"] == {"text": uploaded}


def test_run_of_the_error_code_example_exits_1_with_its_message(lab: Lab) -> None:
    done = lab.run("run", "examples/exit-error", "{}")
    assert done.returncode == 1
    assert done.stdout == ""
    assert "ended FAILED (ExitCode), exit code 2: the reference genome is not indexed" in (
        done.stderr
    )


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["examples/wordcount", '{"text": 5}'], "$.spec.input.text: "),
        (["examples/wordcount", "{}"], "$.spec.input.text: is required but missing"),
        (["examples/nope", "{}"], "$.spec.image: no image "),
        (
            ["-m", "8", "examples/wordcount", '{"text": "bx://texts/a.txt"}'],
            "$.spec.memory: memory 8 MB is below the image's minimum runtime.minMem 32 MB",
        ),
        (
            ["-g", "1", "examples/wordcount", '{"text": "bx://texts/a.txt"}'],
            "$.spec.gpus: 1 GPUs requested, but image examples/wordcount:1.0.0 declares no GPU",
        ),
    ],
)
def test_bad_input_exits_2_with_the_json_path_and_creates_no_job(
    lab: Lab, args: list[str], expected: str
) -> None:
    before = lab.job_names()
    for verb in ("run", "submit"):
        done = lab.run(verb, *args)
        assert done.returncode == 2, done.stderr
        assert expected in done.stderr
        assert "nothing was created" in done.stderr
    assert lab.job_names() == before


def test_the_refusal_is_word_for_word_the_operators(lab: Lab) -> None:
    done = lab.run("submit", "examples/wordcount", '{"text": 5}')
    said = done.stderr.split("error: ", 1)[1].split("  [InvalidInput", 1)[0]
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Job",
        "metadata": {"name": "typo-by-kubectl"},
        "spec": {"image": "examples/wordcount", "input": {"text": 5}},
    }
    lab.bx.custom.create_namespaced_custom_object(GROUP, VERSION, lab.name, "jobs", body)
    job = lab.wait_state("typo-by-kubectl", "FAILED", timeout=60)
    cond = condition(job, "Succeeded")
    assert cond is not None
    assert (cond["reason"], cond["message"]) == ("InvalidInput", said.strip())


def test_submit_jobs_logs_cancel(lab: Lab) -> None:
    submitted = lab.run("submit", "--no-cache", "--timeout", "600", "examples/sleeper", "{}")
    assert submitted.returncode == 0, submitted.stderr
    name = submitted.stdout.strip()
    assert name.startswith("sleeper-")
    listed = json.loads(lab.run("jobs", "-o", "json").stdout)
    assert name in [j["name"] for j in listed]
    lab.wait_state(name, "RUNNING")
    running = json.loads(lab.run("jobs", "--state", "RUNNING", "-o", "json").stdout)
    assert [j["name"] for j in running if j["name"] == name] == [name]
    logs = lab.run("logs", name)
    assert (logs.returncode, logs.stdout) == (0, "")  # sleep prints nothing
    with Client(env=lab.name, kubeconfig=lab.kubeconfig) as bx, pytest.raises(WaitTimeout):
        bx.wait(name, timeout=2)  # a watch that ends at the deadline, the job still running
    cancelled = lab.run("cancel", name)
    assert cancelled.returncode == 0, cancelled.stderr
    assert f"cancelling job {name} (was RUNNING)" in cancelled.stderr
    with Client(env=lab.name, kubeconfig=lab.kubeconfig) as bx:
        result = bx.wait(name, timeout=120)
    assert (result.state, result.ok) == ("CANCELLED", False)
    again = lab.run("cancel", name)
    assert (again.returncode, "already ended CANCELLED" in again.stderr) == (0, True)


def test_logs_follow_streams_a_job_from_before_it_starts(lab: Lab) -> None:
    submitted = lab.run(
        "submit", "--no-cache", "examples/wordcount", '{"text": "bx://texts/a.txt"}'
    )
    name = submitted.stdout.strip()
    followed = lab.run("logs", "-f", name)  # returns once the container's log ends
    assert (followed.returncode, followed.stdout.strip()) == (
        0,
        "wordcount: 2 lines, 7 words",
    ), followed.stderr


def test_env_shows_credits_and_quota(lab: Lab) -> None:
    done = lab.run("env", "-o", "json")
    assert done.returncode == 0, done.stderr
    mine = next(e for e in json.loads(done.stdout) if e["name"] == lab.name)
    assert mine["quota"] == {"cpu": "2", "jobs": 4}
    assert mine["credits"]["granted"] == 1000


def test_an_image_ref_that_is_not_in_the_registry_exits_2_and_creates_nothing(lab: Lab) -> None:
    before = lab.bx.images(lab.name)
    done = lab.run("import", f"{registry.NAME}/examples/no-such-image:1.0.0")
    assert done.returncode == 2
    assert "examples/no-such-image/manifests/1.0.0: not found (404)" in done.stderr
    assert len(lab.bx.images(lab.name)) == len(before)


def _kubeconfig_of_service_account(lab: Lab, account: str, path: Path) -> Path:
    """A kubeconfig that authenticates as `account` in the lab's namespace (a bound token)."""
    core = lab.bx.core
    core.create_namespaced_service_account(
        lab.name, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=account))
    )
    token = core.create_namespaced_service_account_token(
        account,
        lab.name,
        client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=3600)
        ),
    ).status.token
    admin = yaml.safe_load(Path(lab.kubeconfig).read_text())
    cluster = admin["clusters"][0]
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [cluster],
                "users": [{"name": account, "user": {"token": token}}],
                "contexts": [
                    {
                        "name": account,
                        "context": {
                            "cluster": cluster["name"],
                            "user": account,
                            "namespace": lab.name,
                        },
                    }
                ],
                "current-context": account,
            }
        )
    )
    return path


def test_a_viewer_reads_but_is_told_which_permission_submitting_needs(
    lab: Lab, tmp_path: Path
) -> None:
    user = f"system:serviceaccount:{lab.name}:reader"
    members = [{"kind": "User", "name": user, "role": "viewer"}]
    lab.bx.patch_environment(lab.name, {"members": members})
    eventually(
        lambda: lab.bx.can(user, "list", "jobs", lab.name), timeout=60, what="viewer binding"
    )
    viewer = Lab(
        lab.bx,
        lab.name,
        str(_kubeconfig_of_service_account(lab, "reader", tmp_path / "reader.kubeconfig")),
        lab.archives,
    )
    listed = viewer.run("images", "-o", "json")
    assert listed.returncode == 0, listed.stderr
    # A member reads their own Environment (it is cluster-scoped: a per-environment reader role)
    shown = eventually(
        lambda: (done := viewer.run("env", "-o", "json")).returncode == 0 and done,
        timeout=30,
        what="bx env as a viewer",
    )
    assert [e["name"] for e in json.loads(shown.stdout)] == [lab.name]
    assert json.loads(shown.stdout)[0]["credits"]["granted"] == 1000
    before = lab.job_names()
    refused = viewer.run("submit", "examples/wordcount", '{"text": "bx://texts/a.txt"}')
    assert refused.returncode == 3, refused.stderr
    assert f"not allowed to create jobs.batchx.io in namespace {lab.name}" in refused.stderr
    assert f'User "{user}" cannot create resource "jobs"' in refused.stderr
    assert lab.job_names() == before


@pytest.mark.parametrize("cancel", [False, True])
def test_ctrl_c_leaves_the_job_running_and_says_how_to_follow_it(lab: Lab, cancel: bool) -> None:
    flags = ["--cancel-on-interrupt"] if cancel else []
    proc = lab.start("run", "--no-cache", *flags, "--timeout", "600", "examples/sleeper", "{}")
    assert proc.stderr is not None
    first = proc.stderr.readline()  # "job <name> submitted to environment <env>"
    name = submitted(first)
    lab.wait_state(name, "RUNNING")
    proc.send_signal(signal.SIGINT)
    _, rest = proc.communicate(timeout=60)
    assert proc.returncode == 130
    if cancel:
        assert f"cancelled job {name}" in rest
        lab.wait_state(name, "CANCELLED", timeout=60)
    else:
        assert f"job {name} keeps running. Follow it: bx logs -f -e {lab.name} {name}" in rest
        assert f"cancel it: bx cancel -e {lab.name} {name}" in rest
        assert lab.job(name)["status"]["state"] == "RUNNING"
        assert lab.run("cancel", name).returncode == 0


def test_jobs_watch_prints_each_change_until_interrupted(lab: Lab) -> None:
    proc = lab.start("jobs", "--watch", "-o", "json")
    assert proc.stdout is not None
    job = lab.run("submit", "examples/exit-error", "{}").stdout.strip()
    states = []
    for line in proc.stdout:  # one JSON document per line, for every job of the environment
        seen = json.loads(line)
        if seen["name"] == job:
            states.append(seen["state"])
            if seen["state"] == "FAILED":
                break
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert states[-1] == "FAILED"
    assert len(states) >= 2  # created, then at least its end


PIPELINE_SCRIPT = """
import json
from batchx.client import Client
with Client() as bx:  # in-cluster: the pod's service account, the pod's namespace
    result = bx.run("examples/exit-error", {})
    print(json.dumps({"env": bx.env, "state": result.state, "exit": result.exit_code}))
"""


def test_the_client_runs_jobs_from_inside_a_pod_with_its_service_account(
    lab: Lab, job_bed: JobBed
) -> None:
    account = "pipeline"
    user = f"system:serviceaccount:{lab.name}:{account}"
    lab.bx.patch_environment(lab.name, {"members": [{"name": user, "role": "member"}]})
    eventually(lambda: lab.bx.can(user, "create", "jobs", lab.name), timeout=60, what="binding")
    lab.bx.core.create_namespaced_service_account(
        lab.name, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=account))
    )
    restricted = {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "pipeline"},
        "spec": {
            "serviceAccountName": account,
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "main",
                    "image": job_bed.runner.pinned,  # Python with the batchx package
                    "command": ["python3", "-c", PIPELINE_SCRIPT],
                    "securityContext": restricted,
                    "resources": {
                        "requests": {"cpu": "100m", "memory": "128Mi"},
                        "limits": {"cpu": "1", "memory": "256Mi"},
                    },
                }
            ],
        },
    }
    lab.bx.core.create_namespaced_pod(lab.name, pod)

    def finished() -> str | None:
        phase = lab.bx.core.read_namespaced_pod("pipeline", lab.name).status.phase
        return phase if phase in ("Succeeded", "Failed") else None

    phase = eventually(finished, timeout=240, what="the pipeline pod finished")
    # Raw bytes: the generated client would turn a JSON log line into a Python repr.
    response = lab.bx.core.read_namespaced_pod_log("pipeline", lab.name, _preload_content=False)
    logs = response.data.decode()
    assert phase == "Succeeded", logs
    assert json.loads(logs.strip().splitlines()[-1]) == {
        "env": lab.name,
        "state": "FAILED",
        "exit": 2,
    }
