"""The files API (presigned URLs) against plain boto3 on the same MinIO, side by side in one run.

    .venv/bin/python benchmarks/bench_files.py [--size-mib 1024] [--small 10000] [--rounds 3]

What runs: a private MinIO, the operator's files API server (`batchx.handlers.files_api`, TLS
with client certificates, the front-proxy headers checked) on 127.0.0.1 in a process of its own
(the CLI and the operator share no interpreter on a cluster either), and the CLI's client
(`batchx.client.files.RemoteFiles`) calling it directly, as the kube-apiserver would forward the
calls: the API server's own hop is not in the loop (its cost is per call, and calls are per batch
of 1000 files), and the authorization is an in-process allow-all (on a cluster it is one
SubjectAccessReview per call). The peer is boto3 with the same credentials the operator has:
`upload_file`/`download_file` (its managed transfer) for the big file, a `put_object` loop for
the small ones.

Goals (issue 11): big file up and down >= 0.9x boto3; small files >= 1.0x a put_object loop;
API round trips per file (plan + commit calls, per batch), and S3 calls per small file (the
operator's and the CLI's, against the peer's one put_object). The first upload through the API
includes hashing the file on the client (the CLI's digest cache spares that on later copies).
"""

from __future__ import annotations

import argparse
import asyncio
import http.server
import json
import os
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "operator"))

import boto3
from botocore.config import Config

from batchx.client import files as client_files
from batchx.client.errors import ApiError
from batchx.client.files import RemoteFiles
from batchx.handlers.files_api import FrontProxy, serve
from batchx.reconcile.context import Context
from batchx.settings import Settings
from batchx.store import LocalFile, open_store
from testbed import s3 as s3bed

MiB = 1 << 20
PORT = 18643
COUNTS_PORT = 18644


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_pki(folder: Path) -> None:
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    ca = ("-CA", str(folder / "ca.crt"), "-CAkey", str(folder / "ca.key"), "-CAcreateserial")
    _openssl("req", "-x509", "-new", *ec, "-keyout", str(folder / "ca.key"),
             "-out", str(folder / "ca.crt"), "-days", "1", "-subj", "/CN=bench-ca")  # fmt: skip
    for name, cn, ext in (
        ("srv", "localhost", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"),
        ("fp", "front-proxy-client", "extendedKeyUsage=clientAuth\n"),
    ):
        (folder / f"{name}.ext").write_text(ext)
        _openssl("req", "-new", *ec, "-keyout", str(folder / f"{name}.key"),
                 "-out", str(folder / f"{name}.csr"), "-subj", f"/CN={cn}")  # fmt: skip
        crt, ext_file = str(folder / f"{name}.crt"), str(folder / f"{name}.ext")
        _openssl("x509", "-req", "-in", str(folder / f"{name}.csr"), *ca, "-days", "1",
                 "-extfile", ext_file, "-out", crt)  # fmt: skip


class AllowAll:
    async def review_access(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"status": {"allowed": True}}


class DirectKube:
    """`batchx.client.kube.Kube.files` straight to the API server, counting calls."""

    def __init__(self, pki: Path) -> None:
        self.tls = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        self.tls.load_cert_chain(str(pki / "fp.crt"), str(pki / "fp.key"))
        self.calls = 0
        self.lock = threading.Lock()

    def files(self, method: str, verb: str, namespace: str, suffix: str = "", *,
              body: Any = None, query: list[tuple[str, str]] | None = None) -> Any:  # fmt: skip
        with self.lock:
            self.calls += 1
        base = f"https://127.0.0.1:{PORT}/apis/files.batchx.io/v1alpha1"
        url = f"{base}/namespaces/{namespace}/files{suffix}"
        if query:
            url += "?" + urlencode(query)
        data = None if body is None else json.dumps(body).encode()
        headers = {"X-Remote-User": "bench", "Content-Type": "application/json"}
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, context=self.tls, timeout=600) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as err:
            raise ApiError(err.code, err.read().decode()) from None


def make_file(path: Path, size: int) -> None:
    with path.open("wb") as out:
        left = size
        while left:
            n = min(left, 16 * MiB)
            out.write(os.urandom(n))
            left -= n


def timed(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def serve_api(work: Path, endpoint: str) -> None:
    """The operator's side, in a process of its own (as on a cluster: the CLI and the operator
    do not share an interpreter): the files API on the store, and its S3 call counts as JSON
    on `COUNTS_PORT`. Runs until terminated."""
    store = open_store(f"s3://bench/api?endpoint={endpoint}")
    calls: dict[str, int] = {}
    lock = threading.Lock()

    def count(model: Any, **_: Any) -> None:
        with lock:
            calls[model.name] = calls.get(model.name, 0) + 1

    store.backend.client.meta.events.register("before-call.s3", count)  # type: ignore[attr-defined]

    class Counts(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with lock:
                body = json.dumps(calls).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    counts = http.server.ThreadingHTTPServer(("127.0.0.1", COUNTS_PORT), Counts)
    threading.Thread(target=counts.serve_forever, daemon=True).start()
    ctx = Context(settings=Settings.load({}), kube=AllowAll(), store=store)  # type: ignore[arg-type]
    proxy = FrontProxy.from_config_map(
        {
            "requestheader-client-ca-file": (work / "ca.crt").read_text(),
            "requestheader-allowed-names": '["front-proxy-client"]',
        }
    )
    address, crt, key = f"127.0.0.1:{PORT}", str(work / "srv.crt"), str(work / "srv.key")
    loop = asyncio.new_event_loop()
    loop.run_until_complete(serve(ctx, proxy, address, crt, key))
    print("serving", flush=True)
    loop.run_forever()


class Bed:
    """A private MinIO, the files API server on it (its own process), its client, and a raw
    boto3 client."""

    def __init__(self, work: Path) -> None:
        make_pki(work)
        self.server = s3bed.start(work / "minio")
        region = self.server.region or "us-east-1"
        os.environ.update(
            AWS_ACCESS_KEY_ID=self.server.access_key,
            AWS_SECRET_ACCESS_KEY=self.server.secret_key,
            AWS_DEFAULT_REGION=region,
        )
        path_style = Config(s3={"addressing_style": "path"})
        self.raw = boto3.client(
            "s3", endpoint_url=self.server.endpoint, config=path_style, region_name=region
        )
        self.raw.create_bucket(Bucket="bench")
        self.api = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(work), self.server.endpoint],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.api.stdout is not None
        if self.api.stdout.readline().strip() != "serving":  # blocks until it listens
            raise RuntimeError(f"the files API server did not start (rc {self.api.poll()})")
        self.kube = DirectKube(work)
        # The CLI's S3 calls: its uploads to presigned URLs (around its one upload function).
        self.client_puts = 0
        upload = client_files._upload

        def counted(*args: Any) -> int:
            with self.kube.lock:
                self.client_puts += 1
            return upload(*args)

        client_files._upload = counted  # type: ignore[assignment]

    def s3_calls(self) -> dict[str, int]:
        """S3 calls so far by name: the operator's (a boto3 hook in its process) and the CLI's."""
        url = f"http://127.0.0.1:{COUNTS_PORT}/"
        with urllib.request.urlopen(url, timeout=30) as response:
            calls: dict[str, int] = json.loads(response.read())
        return calls | {"ClientPresignedPut": self.client_puts}

    def close(self) -> None:
        self.api.terminate()
        self.api.wait(30)
        s3bed.stop(self.server)


def fresh_content(big: Path, small: list[Path], r: int) -> None:
    """New bytes for this round (the store deduplicates across environments: a round that sent
    the last round's content again would move nothing)."""
    with big.open("r+b") as out:
        out.write(f"round {r:08d} {uuid.uuid4()}".encode())
    for p in small:
        p.write_bytes(f"small file {p.name} round {r} {uuid.uuid4()}\n".encode() * 8)


def one_round(bed: Bed, r: int, big: Path, small: list[Path], work: Path) -> dict[str, float]:
    fresh_content(big, small, r)
    files = RemoteFiles(bed.kube, f"bench-{r}")  # type: ignore[arg-type]
    key, out = f"raw/{r}/big.bin", work / "out.bin"
    reports: list[Any] = []
    again = [LocalFile("again/big.bin", big)]
    row = {
        "up_boto3": timed(lambda: bed.raw.upload_file(str(big), "bench", key)),
        "up_api": timed(lambda: files.put_files([LocalFile("big.bin", big)])),
        "reup_api": timed(lambda: reports.extend(files.put_files(again))),
        "down_boto3": timed(lambda: bed.raw.download_file("bench", key, str(out))),
        "down_api": timed(lambda: files.get_file("big.bin", out)),
    }
    row["reup_bytes_sent"] = sum(r.uploaded_bytes for r in reports)
    before, s3_before = bed.kube.calls, bed.s3_calls()
    items = [LocalFile(f"many/{p.name}", p) for p in small]
    row["small_api"] = timed(lambda: files.put_files(items, workers=16))
    row["round_trips"] = (bed.kube.calls - before) / len(small)
    calls = {k: (v - s3_before.get(k, 0)) / len(small) for k, v in bed.s3_calls().items()}
    row["s3_calls"] = sum(calls.values())
    print(f"round {r}: S3 calls per small file: " + ", ".join(
        f"{k} {v:.3f}" for k, v in sorted(calls.items()) if v))  # fmt: skip

    def loop_put() -> None:
        for p in small:
            bed.raw.put_object(Bucket="bench", Key=f"raw/{r}/many/{p.name}", Body=p.read_bytes())

    row["small_boto3"] = timed(loop_put)
    return row


def main() -> None:
    if sys.argv[1:2] == ["--serve"]:
        serve_api(Path(sys.argv[2]), sys.argv[3])
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--small", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-files-"))
    bed = Bed(work)
    try:
        big = work / "big.bin"
        make_file(big, args.size_mib * MiB)
        small_dir = work / "small"
        small_dir.mkdir()
        for i in range(args.small):
            body = f"small file {i} {uuid.uuid4()}\n".encode() * 8
            (small_dir / f"f{i:05d}.txt").write_bytes(body)
        small = sorted(small_dir.iterdir())
        rows = []
        for r in range(args.rounds):
            rows.append(one_round(bed, r, big, small, work))
            print(f"round {r}: " + ", ".join(f"{k} {v:.3f}" for k, v in rows[-1].items()))
        med = {k: statistics.median(row[k] for row in rows) for k in rows[0]}
        mib = args.size_mib
        result = {
            "size_mib": mib,
            "small_files": args.small,
            "rounds": args.rounds,
            "up_mib_s": {"api": mib / med["up_api"], "boto3": mib / med["up_boto3"]},
            "up_ratio": med["up_boto3"] / med["up_api"],
            "down_mib_s": {"api": mib / med["down_api"], "boto3": mib / med["down_boto3"]},
            "down_ratio": med["down_boto3"] / med["down_api"],
            "reupload_s": med["reup_api"],
            "small_files_s": {
                "api": args.small / med["small_api"],
                "boto3": args.small / med["small_boto3"],
            },
            "small_ratio": med["small_boto3"] / med["small_api"],
            "reupload_bytes_sent": med["reup_bytes_sent"],
            "api_round_trips_per_file": med["round_trips"],
            "s3_calls_per_small_file": {"api": med["s3_calls"], "boto3": 1.0},
        }
        print(json.dumps(result, indent=2))
    finally:
        bed.close()


if __name__ == "__main__":
    main()
