"""Store throughput against plain boto3 on the same MinIO (a script, not a test; prints numbers).

    .venv/bin/python benchmarks/bench_store.py [--size-mib 1024] [--small 10000] [--rounds 3]
                                               [--dir /tmp] [--skip-big] [--skip-small]

Goals (issue 5): store/boto3 throughput ratio >= 0.9 up and down; re-upload of the same file
moves 0 bytes in < 5% of the first upload's time; peak RSS growth < 100 MB while moving the
file; files/s of `bx cp` of a folder vs a boto3 put_object loop.

The machine is shared and noisy: each round runs boto3 and the store back to back (alternating
which goes first), and medians over rounds are reported. Peak RSS is sampled (VmRSS, every
2 ms) in a fresh process per direction, from just before the transfer to its end.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import boto3
from botocore.config import Config

from testbed import s3 as s3bed

MiB = 1 << 20


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
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


def drop_prefix(client: Any, prefix: str) -> None:
    """Delete what a round left on the server (keeps MinIO's disk use flat)."""
    for page in client.get_paginator("list_objects_v2").paginate(Bucket="bench", Prefix=prefix):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            client.delete_objects(Bucket="bench", Delete={"Objects": keys, "Quiet": True})


RSS_CHILD = """
import json, sys, threading, time
from pathlib import Path
from batchx.store import open_store

def rss():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0

url, phase, src, dst = sys.argv[1:5]
store = open_store(url)
files = store.env("bench")
if phase == "down":
    files.put_file("rss/big.bin", Path(src))
base = peak = rss()
done = threading.Event()

def sample():
    global peak
    while not done.wait(0.002):
        peak = max(peak, rss())

sampler = threading.Thread(target=sample)
sampler.start()
if phase == "up":
    files.put_file("rss/big.bin", Path(src))
else:
    files.get_file("rss/big.bin", Path(dst))
done.set()
sampler.join()
peak = max(peak, rss())
store.close()
print(json.dumps({"growth_mb": (peak - base) / 1e6}))
"""


def med(values: list[float]) -> float:
    return statistics.median(values)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--small", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", default=None)
    parser.add_argument("--skip-big", action="store_true")
    parser.add_argument("--skip-small", action="store_true")
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
        print(f"MinIO and client share {os.cpu_count()} cores; {args.rounds} interleaved rounds")
        if not args.skip_big:
            big_file(
                client, server.endpoint, work, size=args.size_mib * MiB, rounds=args.rounds, env=env
            )
        if not args.skip_small:
            small_files(
                client, server.endpoint, work, count=args.small, rounds=args.rounds, env=env
            )
    finally:
        s3bed.stop(server)
        subprocess.run(["rm", "-rf", str(work)], check=False)


def big_file(  # noqa: PLR0915 - a linear script
    client: Any, endpoint: str, work: Path, *, size: int, rounds: int, env: dict[str, str]
) -> None:
    from batchx.store import open_store  # noqa: PLC0415
    from batchx.store.digestcache import DigestCache, now_ns  # noqa: PLC0415

    big = work / "big.bin"
    make_file(big, size)
    mb = size / 1e6
    speed: dict[str, list[float]] = {k: [] for k in ("b_up", "s_up", "b_dn", "s_dn")}
    first_up = reup = 0.0
    reup_bytes = -1
    for round_ in range(rounds):
        key, root = f"plain-{round_}", f"store{round_}"
        with open_store(f"s3://bench/{root}?endpoint={endpoint}") as store:
            files = store.env("bench")

            def b_up(key: str = key) -> None:
                client.upload_file(str(big), "bench", key)

            def s_up(files: Any = files) -> None:
                files.put_file("big.bin", big)

            def b_dn(key: str = key) -> None:
                client.download_file("bench", key, str(work / "b3.out"))

            def s_dn(files: Any = files) -> None:
                files.get_file("big.bin", work / "st.out")

            for (name_b, fn_b), (name_s, fn_s) in zip(
                [("b_up", b_up), ("b_dn", b_dn)], [("s_up", s_up), ("s_dn", s_dn)], strict=True
            ):
                order = [(name_b, fn_b), (name_s, fn_s)]
                for name, fn in order if round_ % 2 == 0 else order[::-1]:
                    seconds = timed(fn)
                    speed[name].append(mb / seconds)
                    if name == "s_up" and round_ == 0:
                        first_up = seconds
                for out in ("b3.out", "st.out"):
                    (work / out).unlink(missing_ok=True)
            if round_ == 0:  # same file again, at a new path: the digest cache knows it
                cache = DigestCache.default()
                st, started = big.stat(), now_ns()
                cache.record(big, st, files.stat("big.bin").digest, started)  # type: ignore[union-attr]
                hint = cache.lookup(big.stat())
                start = time.perf_counter()
                again = files.put_file("big-again.bin", big, digest_hint=hint)
                reup = time.perf_counter() - start
                reup_bytes = again.uploaded_bytes
                cache.close()
        drop_prefix(client, key)
        drop_prefix(client, root + "/")
        print(
            f"  round {round_}: up boto3 {speed['b_up'][-1]:.0f} store {speed['s_up'][-1]:.0f} "
            f"MB/s; down boto3 {speed['b_dn'][-1]:.0f} store {speed['s_dn'][-1]:.0f} MB/s",
            flush=True,
        )
    up_ratios = [s / b for s, b in zip(speed["s_up"], speed["b_up"], strict=True)]
    dn_ratios = [s / b for s, b in zip(speed["s_dn"], speed["b_dn"], strict=True)]
    print(f"file: {size // MiB} MiB; medians over {rounds} rounds")
    print(
        f"upload   boto3 {med(speed['b_up']):7.1f} MB/s  store {med(speed['s_up']):7.1f} MB/s  "
        f"ratio of medians {med(speed['s_up']) / med(speed['b_up']):.2f}  "
        f"median of ratios {med(up_ratios):.2f}"
    )
    print(
        f"download boto3 {med(speed['b_dn']):7.1f} MB/s  store {med(speed['s_dn']):7.1f} MB/s  "
        f"ratio of medians {med(speed['s_dn']) / med(speed['b_dn']):.2f}  "
        f"median of ratios {med(dn_ratios):.2f}"
    )
    print(
        f"re-upload same file: {reup * 1000:.1f} ms, {reup_bytes} bytes sent, "
        f"{100 * reup / first_up:.2f}% of first upload"
    )
    url = f"s3://bench/rss?endpoint={endpoint}"
    growth = {}
    for phase in ("up", "down"):
        child = subprocess.run(
            [sys.executable, "-c", RSS_CHILD, url, phase, str(big), str(work / "rss.out")],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        growth[phase] = json.loads(child.stdout)["growth_mb"]
        drop_prefix(client, "rss/")
        (work / "rss.out").unlink(missing_ok=True)
    print(
        f"peak RSS growth (sampled VmRSS): upload {growth['up']:.1f} MB, "
        f"download {growth['down']:.1f} MB"
    )
    big.unlink()


def small_files(
    client: Any, endpoint: str, work: Path, *, count: int, rounds: int, env: dict[str, str]
) -> None:
    folder = work / "small"
    folder.mkdir()
    for i in range(count):
        (folder / f"f{i:05d}.txt").write_bytes(f"small file {i} {uuid.uuid4()}\n".encode() * 20)
    bx = Path(sys.executable).with_name("bx")
    loop_rates: list[float] = []
    cp_rates: list[float] = []

    def loop(round_: int) -> None:
        for path in sorted(folder.iterdir()):
            client.put_object(
                Bucket="bench", Key=f"loop{round_}/{path.name}", Body=path.read_bytes()
            )

    def bx_cp(round_: int) -> None:
        subprocess.run(
            [
                *(str(bx), "cp", "-j", "16", str(folder), "bx://small/", "-e", "bench"),
                *("--store", f"s3://bench/small{round_}?endpoint={endpoint}"),
            ],
            env={**env, "BATCHX_DIGEST_CACHE": str(work / f"digests-{round_}.sqlite")},
            check=True,
        )

    for round_ in range(rounds):
        order: list[tuple[list[float], Callable[[int], None]]] = [
            (loop_rates, loop),
            (cp_rates, bx_cp),
        ]
        for rates, fn in order if round_ % 2 == 0 else order[::-1]:
            rates.append(count / timed(lambda fn=fn, r=round_: fn(r)))  # type: ignore[misc]
        print(
            f"  round {round_}: boto3 loop {loop_rates[-1]:.0f} files/s, "
            f"bx cp {cp_rates[-1]:.0f} files/s",
            flush=True,
        )
    again = count / timed(lambda: bx_cp(rounds - 1))
    print(
        f"{count} small files, medians over {rounds} rounds: boto3 put_object loop "
        f"{med(loop_rates):.0f} files/s; bx cp folder {med(cp_rates):.0f} files/s; "
        f"bx cp again (all skipped) {again:.0f} files/s"
    )


if __name__ == "__main__":
    main()
