"""Inputs validated per second: BatchX validator vs plain jsonschema vs fastjsonschema, one core.

Not a test: prints numbers. Run `python benchmarks/bench_validation.py [--seconds N] [--repeat K]`.
The manifest and input are the realistic fixtures in tests/data (bwa-mem: nested objects,
arrays of file references, property-level `required`). Every side reuses a compiled validator;
the BatchX side also does what the peers do not: size/depth limits, leniencies, file reference
discovery and bx:// path checks (and, for invalid inputs, jsonschema's located messages). Each
line is the median of K timed runs of N seconds, interleaved so that load from other processes
on the shared core spreads over all lines. Goal: >= 5,000 inputs/s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fastjsonschema
from jsonschema import Draft7Validator

from batchx.domain.manifest import compile_manifest
from batchx.domain.validation import normalise_schema

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"


def _time(work: Callable[[], Any], seconds: float) -> float:
    count, start = 0, time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        for _ in range(100):
            work()
        count += 100
    return count / (time.perf_counter() - start)


def _measure(cases: dict[str, Callable[[], Any]], seconds: float, repeat: int) -> dict[str, float]:
    """Median rate per case; the repetitions are interleaved (a, b, c, a, b, c, ...)."""
    for work in cases.values():
        for _ in range(200):  # warm caches
            work()
    rates: dict[str, list[float]] = {label: [] for label in cases}
    for _ in range(repeat):
        for label, work in cases.items():
            rates[label].append(_time(work, seconds))
    medians = {label: statistics.median(found) for label, found in rates.items()}
    for label, rate in medians.items():
        spread = f"{min(rates[label]):,.0f}-{max(rates[label]):,.0f}"
        print(f"{label:<56} {rate:>9,.0f} /s ({1e6 / rate:6.1f} us; runs {spread})")
    return medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=0.4, help="per timed run")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per line (median)")
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
    assert len(compiled.input.validate(invalid).problems) == 2
    # The peers get the draft-07 equivalent (they cannot read property-level `required`).
    normalised = normalise_schema(manifest["schema"]["input"])[0]
    plain = Draft7Validator(normalised)
    assert plain.is_valid(document)
    fast = fastjsonschema.compile(
        {**normalised, "$schema": "http://json-schema.org/draft-07/schema#"},
        use_default=False,
        use_formats=False,
        detailed_exceptions=False,
    )
    fast(document)

    print(
        f"manifest {compiled.manifest.name}:{compiled.manifest.version}, input "
        f"{len(json.dumps(document))} bytes, {len(compiled.input.validate(document).files)} files; "
        f"median of {args.repeat} x {args.seconds}s, one core"
    )
    rates = _measure(
        {
            "batchx validate (valid input, files + paths)": lambda: compiled.input.validate(
                document
            ),
            "batchx validate (invalid input, 2 problems)": lambda: compiled.input.validate(invalid),
            "jsonschema Draft7Validator.iter_errors (valid input)": lambda: list(
                plain.iter_errors(document)
            ),
            "jsonschema Draft7Validator.is_valid (valid input)": lambda: plain.is_valid(document),
            "fastjsonschema alone (valid input)": lambda: fast(document),
            "compile_manifest, cached (same manifest again)": lambda: compile_manifest(manifest),
        },
        args.seconds,
        args.repeat,
    )
    ours = rates["batchx validate (valid input, files + paths)"]
    peer = rates["jsonschema Draft7Validator.iter_errors (valid input)"]
    print(
        f"batchx / jsonschema iter_errors: {ours / peer:.2f}x; goal 5,000/s: "
        f"{'met' if ours >= 5000 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
