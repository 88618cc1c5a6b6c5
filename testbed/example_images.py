"""Example BatchX images for tests and the demo, built with the test bed's image builder.

Each example is a container image (recipe below) plus a BatchX manifest
(``testbed/examples/<name>.manifest.json``). Together they cover every way a job can end:

=============  =========================================  ========================================
example        what it does                               the job ends
=============  =========================================  ========================================
hello-static   one static C binary, no shell, no Python:  SUCCEEDED, output file greeting.txt
               writes greeting.txt and output.json
hello-json     one static C binary: writes a small         SUCCEEDED, no runner container (the
               output.json echoing its input, no files    direct path); INVALID_OUTPUT for an
                                                          input that makes it >= 4096 bytes
wordcount      busybox sh: counts the words of an input   SUCCEEDED, output file counts.txt
               file into an output file
exit-warning   writes an output, exits 3 (warningCodes)   WARNING, output collected
exit-error     exits 2 (errorCodes)                       FAILED, message from errorCodes
memory-hog     static C: allocates until OOM-killed       OUT_OF_MEMORY
sleeper        sleeps an hour                             FAILED (Timeout) with a short timeout
napper         busybox sh: sleeps the input's seconds     SUCCEEDED, output {"slept": seconds}
bad-output     exits 0, output violates its schema        INVALID_OUTPUT
=============  =========================================  ========================================

    python -m testbed.example_images build [NAME ...]   # prints NAME PINNED-REFERENCE per image

Like real BatchX images, each carries its manifest: the label ``io.batchx.manifest=10`` and the
file ``/batchx/manifest/manifest.json`` (what a Dockerfile's ``COPY manifest /batchx/manifest/``
leaves), so ``bx import`` reads it from the image itself.

Binaries are compiled with ``gcc -static`` (glibc's static libc: no loader, no shared libraries
in the image), cached by the source's digest under the test bed's cache.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from testbed import paths
from testbed.images import (
    BuiltImage,
    Entry,
    ImageSpec,
    busybox_entries,
    publish,
    write_archive,
)

EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"
TAG = "1.0.0"
MANIFEST_LABEL = "io.batchx.manifest"
MANIFEST_FILE = "batchx/manifest/manifest.json"
_MANAGED = {"app.kubernetes.io/managed-by": "batchx-examples"}


def static_binary(source_name: str) -> Path:
    """`examples/<source_name>.c` compiled statically, cached by the source's sha256."""
    source = EXAMPLES_DIR / f"{source_name}.c"
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    binary = paths.cache_dir() / "examples" / f"{source_name}-{digest}"
    if not binary.exists():
        binary.parent.mkdir(parents=True, exist_ok=True)
        partial = binary.with_suffix(".partial")
        subprocess.run(
            ["gcc", "-Os", "-static", "-Wall", "-Wextra", "-o", str(partial), str(source)],
            check=True,
        )
        partial.replace(binary)
    return binary


def _script(name: str) -> Entry:
    return Entry(f"{name}.sh", source=EXAMPLES_DIR / f"{name}.sh", mode=0o755)


def _static(name: str) -> ImageSpec:
    return ImageSpec(
        f"examples/{name}",
        TAG,
        [Entry(name, source=static_binary(name))],
        entrypoint=[f"/{name}"],
        env=[],  # nothing to find on a PATH: there is no shell and no other program
    )


def _busybox(name: str, entrypoint: list[str], cmd: list[str] | None = None) -> ImageSpec:
    entries = busybox_entries()
    if entrypoint[0] == "/bin/sh":
        entries.append(_script(Path(entrypoint[1]).stem))
    return ImageSpec(f"examples/{name}", TAG, entries, entrypoint=entrypoint, cmd=cmd or [])


RECIPES: dict[str, Callable[[], ImageSpec]] = {
    "hello-static": lambda: _static("hello-static"),
    "hello-json": lambda: _static("hello-json"),
    "memory-hog": lambda: _static("memory-hog"),
    "wordcount": lambda: _busybox("wordcount", ["/bin/sh", "/wordcount.sh"]),
    "exit-warning": lambda: _busybox("exit-warning", ["/bin/sh", "/exit-with.sh"], ["3"]),
    "exit-error": lambda: _busybox("exit-error", ["/bin/sh", "/exit-with.sh"], ["2"]),
    "sleeper": lambda: _busybox("sleeper", ["/bin/sleep"], ["3600"]),
    "napper": lambda: _busybox("napper", ["/bin/sh", "/napper.sh"]),
    "bad-output": lambda: _busybox("bad-output", ["/bin/sh", "/bad-output.sh"]),
}


def manifest(name: str) -> dict[str, Any]:
    """The BatchX manifest of example `name`."""
    document: dict[str, Any] = json.loads((EXAMPLES_DIR / f"{name}.manifest.json").read_text())
    return document


@dataclass(frozen=True)
class Example:
    name: str
    image: BuiltImage
    manifest: dict[str, Any]

    def image_object(self, namespace: str, *, public: bool = False) -> dict[str, Any]:
        """An Image custom resource importing this example into `namespace` (an environment)."""
        version = self.manifest["version"]
        return {
            "apiVersion": "batchx.io/v1alpha1",
            "kind": "Image",
            "metadata": {
                "name": f"{self.name}-{re.sub(r'[^0-9a-z]+', '-', version)}",
                "namespace": namespace,
                "labels": dict(_MANAGED),
            },
            "spec": {"image": self.image.pinned, "manifest": self.manifest, "public": public},
        }


def example_spec(name: str) -> ImageSpec:
    """The image of example `name`, carrying its manifest as real BatchX images do."""
    spec = RECIPES[name]()
    data = (EXAMPLES_DIR / f"{name}.manifest.json").read_bytes()
    spec.entries.append(Entry(MANIFEST_FILE, data=data, mode=0o644))
    spec.labels[MANIFEST_LABEL] = "10"
    return spec


def write_example_archive(name: str, out: Path) -> str:
    """Example `name` as an OCI image-layout tar at `out` (what `bx import` reads); its digest."""
    return write_archive(example_spec(name), out)


def build_example(name: str) -> Example:
    """Build example `name` (cached by content), push it to the test bed's registry."""
    return Example(name, publish(example_spec(name)), manifest(name))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("verb", choices=["build"])
    parser.add_argument("names", nargs="*", metavar="NAME", help=", ".join(sorted(RECIPES)))
    args = parser.parse_args()
    unknown = sorted(set(args.names) - RECIPES.keys())
    if unknown:
        parser.error(
            f"unknown example(s) {', '.join(unknown)}; known: {', '.join(sorted(RECIPES))}"
        )
    for name in args.names or sorted(RECIPES):
        print(name, build_example(name).image.pinned)


if __name__ == "__main__":
    main()
