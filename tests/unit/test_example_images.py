"""The example images' manifests are valid, and the static ones really are one binary."""

from __future__ import annotations

import pytest

from batchx.domain.manifest import load_manifest
from testbed import example_images

NAMES = sorted(example_images.RECIPES)


@pytest.mark.parametrize("name", NAMES)
def test_each_example_has_a_valid_manifest_named_after_it(name: str) -> None:
    manifest = load_manifest(example_images.manifest(name))
    assert (manifest.name, manifest.version) == (f"examples/{name}", example_images.TAG)


def test_the_examples_cover_every_way_a_job_ends() -> None:
    codes = {n: load_manifest(example_images.manifest(n)) for n in NAMES}
    assert codes["exit-warning"].warning_codes == {
        3: "finished with warnings: some records were skipped"
    }
    assert codes["exit-error"].error_codes == {2: "the reference genome is not indexed"}
    assert NAMES == [
        "bad-output",
        "exit-error",
        "exit-warning",
        "hello-json",
        "hello-static",
        "memory-hog",
        "napper",
        "sleeper",
        "wordcount",
    ]


@pytest.mark.parametrize("name", ["hello-json", "hello-static", "memory-hog"])
def test_static_examples_are_one_binary_and_nothing_else(name: str) -> None:
    spec = example_images.RECIPES[name]()  # compiles with gcc -static (cached)
    assert [(e.path, e.source is not None) for e in spec.entries] == [(name, True)]
    assert (spec.entrypoint, spec.env) == ([f"/{name}"], [])
    binary = spec.entries[0].source
    assert binary is not None
    assert program_header_types(binary.read_bytes()).isdisjoint({PT_INTERP, PT_DYNAMIC})


PT_DYNAMIC, PT_INTERP = 2, 3


def program_header_types(elf: bytes) -> set[int]:
    """The p_type of each program header of a little-endian ELF64 file."""
    assert elf[:6] == b"\x7fELF\x02\x01", "not a little-endian ELF64 file"
    offset = int.from_bytes(elf[0x20:0x28], "little")
    size = int.from_bytes(elf[0x36:0x38], "little")
    count = int.from_bytes(elf[0x38:0x3A], "little")
    starts = (offset + i * size for i in range(count))
    return {int.from_bytes(elf[start : start + 4], "little") for start in starts}
