"""Inputs validated per second, BatchX validator vs plain jsonschema, on one core.

Not a test: prints numbers. Run `python benchmarks/bench_validation.py [--seconds N]`.
The manifest and input are the realistic fixtures in tests/data (bwa-mem: nested objects,
arrays of file references, property-level `required`). Both sides reuse a compiled validator;
the BatchX side also does what plain jsonschema does not: size/depth limits, leniencies, file
reference discovery and bx:// path checks. Goal: >= 5,000 inputs/s.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator

from batchx.domain.manifest import compile_manifest
from batchx.domain.validation import normalise_schema

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"


def _rate(label: str, work: Callable[[], Any], seconds: float) -> float:
    for _ in range(200):  # warm caches
        work()
    count, start = 0, time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        for _ in range(100):
            work()
        count += 100
    rate = count / (time.perf_counter() - start)
    print(f"{label:<58} {rate:>10,.0f} /s  ({1e6 / rate:6.1f} us each)")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per measurement")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core, as promised
    manifest = json.loads((DATA / "manifests" / "bwa-mem.json").read_text())
    document = json.loads((DATA / "inputs" / "bwa-mem.input.json").read_text())
    invalid = json.loads(json.dumps(document))
    invalid["samples"][1]["reads"][0] = "bx://../escape"
    invalid["minSeedLength"] = 0

    compiled = compile_manifest(manifest)
    assert compiled.input.validate(document).ok
    # The peer gets the draft-07 equivalent (it cannot read property-level `required`).
    plain = Draft7Validator(normalise_schema(manifest["schema"]["input"])[0])
    assert plain.is_valid(document)

    print(
        f"manifest {compiled.manifest.name}:{compiled.manifest.version}, input "
        f"{len(json.dumps(document))} bytes, {len(compiled.input.validate(document).files)} files"
    )
    ours = _rate(
        "batchx validate (valid input, files + paths)",
        lambda: compiled.input.validate(document),
        args.seconds,
    )
    _rate(
        "batchx validate (invalid input, 2 problems)",
        lambda: compiled.input.validate(invalid),
        args.seconds,
    )
    peer = _rate(
        "jsonschema Draft7Validator.iter_errors (valid input)",
        lambda: list(plain.iter_errors(document)),
        args.seconds,
    )
    _rate(
        "jsonschema Draft7Validator.is_valid (valid input)",
        lambda: plain.is_valid(document),
        args.seconds,
    )
    _rate(
        "compile_manifest, cached (same manifest again)",
        lambda: compile_manifest(manifest),
        args.seconds,
    )
    print(
        f"batchx / jsonschema iter_errors: {ours / peer:.2f}x; goal 5,000/s: "
        f"{'met' if ours >= 5000 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
