"""Store throughput against plain boto3 on the same MinIO (a script, not a test; prints numbers).

    .venv/bin/python benchmarks/bench_store.py [--size-mib 1024] [--small 10000] [--dir /tmp]

Goals (issue 5): store/boto3 throughput ratio >= 0.9 up and down; re-upload of the same file
moves 0 bytes in < 5% of the first upload's time; peak RSS growth < 100 MB while moving the
file; files/s of `bx cp` of a folder vs a boto3 put_object loop.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import boto3
from botocore.config import Config

from testbed import s3 as s3bed

MiB = 1 << 20


def timed(fn: object) -> float:
    start = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - start


def make_file(path: Path, size: int) -> None:
    with path.open("wb") as out:
        left = size
        while left:
            n = min(left, 16 * MiB)
            out.write(os.urandom(n))
            left -= n
    old = time.time() - 5  # as if written a moment ago (the digest cache ignores racy files)
    os.utime(path, (old, old))


RSS_CHILD = """
import json, resource, sys, time
from pathlib import Path
from batchx.store import open_store
url, src, dst = sys.argv[1:4]
store = open_store(url)
files = store.env("bench")
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
files.put_file("rss/big.bin", Path(src))
files.get_file("rss/big.bin", Path(dst))
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
store.close()
print(json.dumps({"growth_mb": (peak - base) / 1024}))
"""


def main() -> None:  # noqa: PLR0915 - a linear script
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--small", type=int, default=10000)
    parser.add_argument("--dir", default=None)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bx-bench-", dir=args.dir))
    server = s3bed.start(work / "s3")
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": server.access_key,
        "AWS_SECRET_ACCESS_KEY": server.secret_key,
        "AWS_DEFAULT_REGION": "us-east-1",
        "BATCHX_DIGEST_CACHE": str(work / "digests.sqlite"),
    }
    os.environ.update(env)
    try:
        client = boto3.client(
            "s3", endpoint_url=server.endpoint, config=Config(max_pool_connections=32)
        )
        client.create_bucket(Bucket="bench")
        url = f"s3://bench/store?endpoint={server.endpoint}"
        size = args.size_mib * MiB
        big = work / "big.bin"
        make_file(big, size)
        print(f"file: {args.size_mib} MiB; MinIO and client share {os.cpu_count()} cores")
        results: dict[str, float] = {}
        from batchx.store import open_store  # noqa: PLC0415
        from batchx.store.digestcache import DigestCache, now_ns  # noqa: PLC0415

        for round_ in range(2):  # interleaved rounds: the machine is shared and noisy
            key = f"plain-{round_}"
            results[f"boto3_up_{round_}"] = timed(
                lambda k=key: client.upload_file(str(big), "bench", k)
            )
            results[f"boto3_down_{round_}"] = timed(
                lambda k=key: client.download_file("bench", k, str(work / "b3.out"))
            )
            with open_store(f"s3://bench/store{round_}?endpoint={server.endpoint}") as store:
                files = store.env("bench")
                cache = DigestCache.default() if round_ == 0 else DigestCache(None)
                st, started = big.stat(), now_ns()
                report = None

                def up(files=files, cache=cache, st=st) -> None:  # type: ignore[no-untyped-def]
                    nonlocal report
                    report = files.put_file("big.bin", big, digest_hint=cache.lookup(st))

                results[f"store_up_{round_}"] = timed(up)
                assert report is not None
                cache.record(big, st, report.entry.digest, started)
                results[f"store_down_{round_}"] = timed(
                    lambda f=files: f.get_file("big.bin", work / "st.out")
                )
                if round_ == 0:
                    again = None

                    def reup(files=files, cache=cache) -> None:  # type: ignore[no-untyped-def]
                        nonlocal again
                        again = files.put_file(
                            "big-again.bin", big, digest_hint=cache.lookup(big.stat())
                        )

                    results["reupload"] = timed(reup)
                    assert again is not None
                    results["reupload_bytes"] = again.uploaded_bytes
                cache.close()
            (work / "st.out").unlink()
            (work / "b3.out").unlink()
        b_up = min(results["boto3_up_0"], results["boto3_up_1"])
        s_up = min(results["store_up_0"], results["store_up_1"])
        b_dn = min(results["boto3_down_0"], results["boto3_down_1"])
        s_dn = min(results["store_down_0"], results["store_down_1"])
        mb = size / 1e6
        print(
            f"upload   boto3 {mb / b_up:7.1f} MB/s  store {mb / s_up:7.1f} MB/s  "
            f"ratio {b_up / s_up:.2f}"
        )
        print(
            f"download boto3 {mb / b_dn:7.1f} MB/s  store {mb / s_dn:7.1f} MB/s  "
            f"ratio {b_dn / s_dn:.2f}"
        )
        print(
            f"re-upload same file: {results['reupload'] * 1000:.1f} ms, "
            f"{int(results['reupload_bytes'])} bytes sent, "
            f"{100 * results['reupload'] / results['store_up_0']:.2f}% of first upload"
        )
        child = subprocess.run(
            [sys.executable, "-c", RSS_CHILD, url, str(big), str(work / "rss.out")],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        print(
            f"peak RSS growth moving the file up and down: "
            f"{json.loads(child.stdout)['growth_mb']:.1f} MB"
        )
        big.unlink()
        (work / "rss.out").unlink(missing_ok=True)
        small_files(client, server.endpoint, work, args.small, env)
    finally:
        s3bed.stop(server)
        subprocess.run(["rm", "-rf", str(work)], check=False)


def small_files(client: object, endpoint: str, work: Path, count: int, env: dict[str, str]) -> None:
    folder = work / "small"
    folder.mkdir()
    for i in range(count):
        (folder / f"f{i:05d}.txt").write_bytes(f"small file {i} {uuid.uuid4()}\n".encode() * 20)
    start = time.perf_counter()
    for path in sorted(folder.iterdir()):
        client.put_object(
            Bucket="bench",
            Key=f"loop/{path.name}",  # type: ignore[attr-defined]
            Body=path.read_bytes(),
        )
    loop = time.perf_counter() - start
    bx = Path(sys.executable).with_name("bx")
    start = time.perf_counter()
    subprocess.run(
        [
            str(bx),
            "cp",
            "-j",
            "16",
            str(folder),
            "bx://small/",
            "-e",
            "bench",
            "--store",
            f"s3://bench/small?endpoint={endpoint}",
        ],
        env=env,
        check=True,
    )
    cp = time.perf_counter() - start
    start = time.perf_counter()
    subprocess.run(
        [
            str(bx),
            "cp",
            "-j",
            "16",
            str(folder),
            "bx://small/",
            "-e",
            "bench",
            "--store",
            f"s3://bench/small?endpoint={endpoint}",
        ],
        env=env,
        check=True,
    )
    again = time.perf_counter() - start
    print(
        f"{count} small files: boto3 put_object loop {count / loop:.0f} files/s; "
        f"bx cp folder {count / cp:.0f} files/s; bx cp again (all skipped) "
        f"{count / again:.0f} files/s"
    )
    _ = resource


if __name__ == "__main__":
    main()
