"""The files API served for real: the in-process operator serves `files.batchx.io/v1alpha1` over
TLS, an APIService routes the kube-apiserver to it (a Service whose Endpoints name the bridge
address the operator listens on), and users call it with nothing but their Kubernetes
credentials: a member's service-account token, and an impersonated viewer. Bytes go to and from
MinIO with the presigned URLs the API hands out; the client holds no store credentials."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import socket
import subprocess
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException
from testbed.topology import GATEWAY
from typer.testing import CliRunner

from batchx.cli.app import app
from tests.fixtures_jobs import JobBed, run_jobs_operator
from tests.fixtures_operator import StartOperator
from tests.helpers import eventually
from tests.integration.bx import Bx
from tests.integration.test_caching import a_text, count, ran
from tests.integration.test_caching import served as cached
from tests.job_lab import Lab, make_env

pytestmark = [pytest.mark.cluster, pytest.mark.s3]

API = "/apis/files.batchx.io/v1alpha1"
APISERVICE = "v1alpha1.files.batchx.io"


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def _serving_cert(folder: Path, dns: str) -> tuple[Path, Path, bytes]:
    """A CA and a certificate for `dns` (what the aggregator checks the server against)."""
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    ca_key, ca, key, csr, crt = (
        folder / n for n in ("ca.key", "ca.crt", "tls.key", "tls.csr", "tls.crt")
    )
    _openssl(
        "req",
        "-x509",
        "-new",
        *ec,
        "-keyout",
        str(ca_key),
        "-out",
        str(ca),
        "-days",
        "2",
        "-subj",
        "/CN=files-api-ca",
    )
    _openssl("req", "-new", *ec, "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={dns}")
    ext = folder / "tls.ext"
    ext.write_text(f"subjectAltName=DNS:{dns}\nextendedKeyUsage=serverAuth\n")
    _openssl(
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        str(ca),
        "-CAkey",
        str(ca_key),
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        str(ext),
        "-out",
        str(crt),
    )
    return crt, key, ca.read_bytes()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((GATEWAY, 0))
        port: int = sock.getsockname()[1]
        return port


def _available(api: client.ApiClient) -> bool:
    found = client.ApiregistrationV1Api(api).read_api_service(APISERVICE)
    return any(
        c.type == "Available" and c.status == "True" for c in (found.status.conditions or [])
    )


def _grants_files(rbac: client.RbacAuthorizationV1Api, role: str) -> bool:
    rules = rbac.read_cluster_role(role).rules or []
    return any("files.batchx.io" in (rule.api_groups or []) for rule in rules)


def _bind(
    rbac: client.RbacAuthorizationV1Api, namespace: str, role: str, subject: dict[str, Any]
) -> None:
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": f"t-{role}-{uuid.uuid4().hex[:6]}"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": f"batchx-{role}",
            },
            "subjects": [subject],
        },
    )


class Caller:
    """Calls the files API through the kube-apiserver as one user."""

    def __init__(self, api: client.ApiClient) -> None:
        self.api = api

    def call(
        self, method: str, path: str, body: Any = None, query: list[tuple[str, str]] | None = None
    ) -> Any:
        return self.api.call_api(
            API + path,
            method,
            query_params=query or [],
            body=body,
            header_params={"Content-Type": "application/json", "Accept": "application/json"},
            auth_settings=["BearerToken"],
            response_types_map={200: "object", 201: "object"},
            _return_http_data_only=True,
        )

    def refusal(
        self, method: str, path: str, body: Any = None, query: list[tuple[str, str]] | None = None
    ) -> tuple[int, str]:
        with pytest.raises(ApiException) as caught:
            self.call(method, path, body, query)
        status: dict[str, Any] = json.loads(caught.value.body)  # a Kubernetes Status
        return caught.value.status, str(status.get("message"))


def _put(url: str, data: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=data, method="PUT", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        return err.code


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as response:
        data: bytes = response.read()
        return data


@contextlib.contextmanager
def registered(tmp_path: Path, kube_api: client.ApiClient) -> Iterator[tuple[str, dict[str, str]]]:
    """The APIService and the Service routing it to this machine, in a namespace of its own;
    yields that namespace and the settings the operator serves the files API with."""
    core = client.CoreV1Api(kube_api)
    home = f"bx-files-{uuid.uuid4().hex[:6]}"
    port = _free_port()
    crt, key, ca = _serving_cert(tmp_path, f"batchx-files.{home}.svc")
    core.create_namespace({"metadata": {"name": home}})
    core.create_namespaced_service(
        home,
        {
            "metadata": {"name": "batchx-files"},
            "spec": {"ports": [{"port": 443, "targetPort": port}]},
        },
    )
    core.create_namespaced_endpoints(
        home,
        {
            "metadata": {"name": "batchx-files"},
            "subsets": [{"addresses": [{"ip": GATEWAY}], "ports": [{"port": port}]}],
        },
    )
    # Both shapes of a Service's endpoints, whichever the aggregator's resolver reads.
    client.DiscoveryV1Api(kube_api).create_namespaced_endpoint_slice(
        home,
        {
            "metadata": {
                "name": "batchx-files-bed",
                "labels": {"kubernetes.io/service-name": "batchx-files"},
            },
            "addressType": "IPv4",
            "endpoints": [{"addresses": [GATEWAY], "conditions": {"ready": True}}],
            "ports": [{"port": port, "protocol": "TCP", "name": ""}],
        },
    )
    registration = client.ApiregistrationV1Api(kube_api)
    registration.create_api_service(
        {
            "metadata": {"name": APISERVICE},
            "spec": {
                "group": "files.batchx.io",
                "version": "v1alpha1",
                "service": {"namespace": home, "name": "batchx-files", "port": 443},
                "caBundle": base64.b64encode(ca).decode(),
                "groupPriorityMinimum": 1000,
                "versionPriority": 15,
            },
        }
    )
    try:
        yield (
            home,
            {
                "BATCHX_FILES_API_ADDRESS": f"{GATEWAY}:{port}",
                "BATCHX_FILES_API_CERT": str(crt),
                "BATCHX_FILES_API_KEY": str(key),
            },
        )
    finally:
        registration.delete_api_service(APISERVICE)
        core.delete_namespace(home)


def wait_serving(kube_api: client.ApiClient) -> None:
    """Until the roles aggregated the files rules and the APIService is Available."""
    rbac = client.RbacAuthorizationV1Api(kube_api)
    for role in ("viewer", "member", "admin"):  # the aggregated roles took the new rules
        eventually(
            lambda r=role: _grants_files(rbac, f"batchx-{r}"),
            timeout=30,
            what=f"batchx-{role} aggregating the files rules",
        )
    eventually(lambda: _available(kube_api), timeout=60, what=f"APIService {APISERVICE} Available")


@pytest.fixture
def served(
    tmp_path: Path,
    kube_api: client.ApiClient,
    kubeconfig: str,
    s3_store_url: str,
    start_operator: StartOperator,
) -> Iterator[tuple[str, str]]:
    """The files API served and registered; yields two environment namespaces (A, B)."""
    core = client.CoreV1Api(kube_api)
    with registered(tmp_path, kube_api) as (home, settings):
        a, b = f"{home}-a", f"{home}-b"
        for ns in (a, b):
            core.create_namespace({"metadata": {"name": ns}})
        try:
            with start_operator(BATCHX_STORE=s3_store_url, **settings):
                wait_serving(kube_api)
                yield a, b
        finally:
            for ns in (a, b):
                core.delete_namespace(ns)


def test_members_copy_with_their_token_and_others_are_refused(
    served: tuple[str, str], kube_api: client.ApiClient, kubeconfig: str
) -> None:
    a, b = served
    core, rbac = client.CoreV1Api(kube_api), client.RbacAuthorizationV1Api(kube_api)
    core.create_namespaced_service_account(a, {"metadata": {"name": "alice"}})
    _bind(rbac, a, "member", {"kind": "ServiceAccount", "name": "alice", "namespace": a})
    _bind(
        rbac,
        a,
        "viewer",
        {"kind": "User", "name": "t-vera", "apiGroup": "rbac.authorization.k8s.io"},
    )
    token = core.create_namespaced_service_account_token(
        "alice", a, {"spec": {"expirationSeconds": 3600}}
    ).status.token
    base = config.new_client_from_config(config_file=kubeconfig)
    member_config = client.Configuration()
    member_config.host = base.configuration.host
    member_config.ssl_ca_cert = base.configuration.ssl_ca_cert
    member_config.api_key = {"authorization": f"Bearer {token}"}
    member = Caller(client.ApiClient(member_config))
    viewer_api = config.new_client_from_config(config_file=kubeconfig)
    viewer_api.set_default_header("Impersonate-User", "t-vera")
    viewer = Caller(viewer_api)

    data = b"words for a word count\n" * 200
    item = {"path": "texts/in.txt", "digest": hashlib.sha256(data).hexdigest(), "size": len(data)}
    # Up: plan, send the bytes to S3 with the URL, commit.
    [plan] = member.call("POST", f"/namespaces/{a}/files", {"action": "plan", "files": [item]})[
        "files"
    ]
    assert plan["action"] == "upload"
    assert _put(plan["url"], data, plan["headers"]) == 200
    [done] = member.call("POST", f"/namespaces/{a}/files", {"action": "commit", "files": [item]})[
        "files"
    ]
    assert done == {"path": "texts/in.txt", "outcome": "created"}
    # The same file again: nothing to send.
    [again] = member.call("POST", f"/namespaces/{a}/files", {"action": "plan", "files": [item]})[
        "files"
    ]
    assert again["action"] == "unchanged"
    # ls and down.
    listed = member.call("GET", f"/namespaces/{a}/files", query=[("prefix", "texts/")])["files"]
    assert [f["path"] for f in listed] == ["texts/in.txt"]
    [down] = viewer.call(
        "GET", f"/namespaces/{a}/files", query=[("prefix", "texts/"), ("urls", "true")]
    )["files"]
    assert _get(down["url"]) == data
    # Not a member of B: refused, naming the permission.
    status, body = member.refusal("GET", f"/namespaces/{b}/files")
    assert status == 403
    assert 'cannot list resource "files" in API group "files.batchx.io"' in body
    status, body = member.refusal(
        "POST", f"/namespaces/{b}/files", {"action": "plan", "files": [item]}
    )
    assert status == 403
    # A viewer of A reads but cannot copy in or remove; a member cannot remove either.
    status, body = viewer.refusal(
        "POST", f"/namespaces/{a}/files", {"action": "plan", "files": [item]}
    )
    assert status == 403
    assert 'cannot create resource "files"' in body
    name = base64.urlsafe_b64encode(b"texts/in.txt").decode().rstrip("=")
    assert viewer.refusal("DELETE", f"/namespaces/{a}/files/{name}")[0] == 403
    assert member.refusal("DELETE", f"/namespaces/{a}/files/{name}")[0] == 403
    # Bad input: the JSON path of the bad field.
    status, body = member.refusal(
        "POST",
        f"/namespaces/{a}/files",
        {"action": "plan", "files": [{"path": "x", "digest": "nope", "size": 1}]},
    )
    assert status == 400
    assert "files[0].digest" in body
    member.api.close()
    viewer_api.close()
    base.close()


def test_a_namespace_deleted_while_the_files_api_is_served_goes(
    served: tuple[str, str], kube_api: client.ApiClient
) -> None:
    """The namespace controller deletes what discovery says it may; it must not hang on files."""
    core = client.CoreV1Api(kube_api)
    name = f"{served[0]}-gone"
    core.create_namespace({"metadata": {"name": name}})
    core.create_namespaced_config_map(name, {"metadata": {"name": "some"}, "data": {"a": "b"}})
    core.delete_namespace(name)

    def gone() -> bool:
        try:
            core.read_namespace(name)
        except ApiException as e:
            return e.status == 404
        return False

    eventually(gone, timeout=60, what=f"namespace {name} deleted (not stuck on files)")


def _token_kubeconfig(path: Path, base: client.Configuration, token: str, namespace: str) -> Path:
    ca = Path(base.ssl_ca_cert).read_bytes() if base.ssl_ca_cert else b""
    body = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "bed",
                "cluster": {
                    "server": base.host,
                    "certificate-authority-data": base64.b64encode(ca).decode(),
                },
            }
        ],
        "users": [{"name": "member", "user": {"token": token}}],
        "contexts": [
            {
                "name": "member",
                "context": {"cluster": "bed", "user": "member", "namespace": namespace},
            }
        ],
        "current-context": "member",
    }
    path.write_text(json.dumps(body))
    return path


def test_bx_cp_ls_rm_with_only_a_member_kubeconfig(
    served: tuple[str, str],
    kube_api: client.ApiClient,
    kubeconfig: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, b = served
    _as_member(monkeypatch, kube_api, kubeconfig, tmp_path, a)
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("alpha\n" * 1000)
    (src / "sub" / "b.txt").write_text("beta\n")
    runner = CliRunner()

    def bx(*args: str, code: int = 0) -> str:
        result = runner.invoke(app, list(args))
        assert result.exit_code == code, result.output
        return " ".join(result.output.split())  # rich wraps long lines

    assert "copied 2 file(s)" in bx("cp", str(src), "bx://data/")
    assert "2 skipped (already at the destination)" in bx("cp", str(src), "bx://data/")
    (tmp_path / "again").mkdir()
    (tmp_path / "again" / "a.txt").write_text("alpha\n" * 1000)
    assert "0 B transferred; 1 without transfer" in bx(
        "cp", str(tmp_path / "again" / "a.txt"), "bx://copy/a.txt"
    )
    assert "bx://data/sub/" in bx("ls", "bx://data/")
    assert "bx://data/sub/b.txt" in bx("ls", "-r", "bx://data/")
    bx("cp", "bx://data/", str(tmp_path / "out"))
    assert (tmp_path / "out" / "sub" / "b.txt").read_text() == "beta\n"
    refused = bx("ls", "-e", b, "bx://", code=2)
    assert 'cannot list resource "files" in API group "files.batchx.io"' in refused
    refused = bx("cp", "-e", b, str(src), "bx://x/", code=2)
    assert "files.batchx.io" in refused
    # A member copies in but does not remove (admins do).
    assert "cannot delete" in bx("rm", "bx://copy/a.txt", code=1)


@pytest.fixture
def api_lab(
    tmp_path: Path, kube_api: client.ApiClient, kubeconfig: str, job_bed: JobBed, module_bx: Bx
) -> Iterator[tuple[Lab, JobBed]]:
    """An environment whose jobs run and whose files the files API serves (one operator)."""
    with (
        registered(tmp_path, kube_api) as (_, settings),
        contextlib.contextmanager(run_jobs_operator)(job_bed, kubeconfig, **settings),
    ):
        wait_serving(kube_api)
        yield make_env(module_bx, job_bed, quota={"cpu": "2", "jobs": 4}, credits=1000), job_bed


def _as_member(
    monkeypatch: pytest.MonkeyPatch,
    kube_api: client.ApiClient,
    kubeconfig: str,
    folder: Path,
    namespace: str,
) -> None:
    """This process's environment as a member of `namespace` holding only a kubeconfig (a
    service account's token bound to batchx-member): every AWS_*/BATCHX_* variable unset."""
    for name in [k for k in os.environ if k.startswith(("AWS_", "BATCHX_"))]:
        monkeypatch.delenv(name)
    core, rbac = client.CoreV1Api(kube_api), client.RbacAuthorizationV1Api(kube_api)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "ann"}})
    _bind(
        rbac, namespace, "member", {"kind": "ServiceAccount", "name": "ann", "namespace": namespace}
    )
    token = core.create_namespaced_service_account_token(
        "ann", namespace, {"spec": {"expirationSeconds": 3600}}
    ).status.token
    base = config.new_client_from_config(config_file=kubeconfig)
    member = _token_kubeconfig(folder / "ann.kubeconfig", base.configuration, token, namespace)
    base.close()
    monkeypatch.setenv("KUBECONFIG", str(member))
    monkeypatch.setenv("BATCHX_DIGEST_CACHE", str(folder / "digests.sqlite"))


def test_provenance_with_only_a_kubeconfig(
    api_lab: tuple[Lab, JobBed],
    kube_api: client.ApiClient,
    kubeconfig: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A wordcount job reads an uploaded file and writes its counts; a member who holds only a
    kubeconfig sees through the files API which job made them from which input (`bx ls -l`,
    `bx provenance`), and a cached job's copy names both jobs."""
    lab, job_bed = api_lab
    text = a_text(lab, job_bed)
    made = ran(lab, count(lab, "prov-api", text))
    cached(lab, count(lab, "prov-api-2", text), "prov-api")
    uid = lab.job("prov-api")["metadata"]["uid"]
    _as_member(monkeypatch, kube_api, kubeconfig, tmp_path, lab.name)
    runner = CliRunner(env={"COLUMNS": "250"})

    shown = runner.invoke(app, ["provenance", made["output"]["counts"], "-o", "json"])
    assert shown.exit_code == 0, shown.output
    chain = json.loads(shown.output)
    assert chain["producedBy"]["job"] == {"name": "prov-api", "uid": uid}
    assert chain["producedBy"]["image"]["digest"] == made["image"]["container"].split("@")[1]
    [upload] = chain["inputs"]
    assert upload["path"] == text
    assert upload["producedBy"] is None  # the upload: the chain ends
    alias = runner.invoke(app, ["provenance", "bx://jobs/prov-api-2/output/counts.txt"])
    assert alias.exit_code == 0, alias.output
    assert f"made by job prov-api uid {uid}" in alias.output
    assert "served from the cache to job prov-api-2" in alias.output
    listing = runner.invoke(app, ["ls", "-l", "-r", "bx://jobs/"])
    assert listing.exit_code == 0, listing.output
    assert "prov-api -> prov-api-2 (cached)" in listing.output
