"""The example pipelines, built on the runner image (Python and the `batchx` package).

A pipeline's container runs `batchx.client`, so its image needs Python and the package: these
examples are the product's runner image (testbed/product_images.py) plus one script and the
manifest, built by buildah from a three-line Containerfile, carrying their manifest as every
example does (label ``io.batchx.manifest=10``, ``/batchx/manifest/manifest.json``).

=============== ============================================= =================================
example         what it does                                  the job ends
=============== ============================================= =================================
count-all       wordcount on each input text in parallel,      SUCCEEDED: merged counts, words
                then merge-counts on their counts files
rogue-pipeline  runs napper (not a step), creates a Job        SUCCEEDED, reporting each refusal
                without naming its parent, lists Secrets
=============== ============================================= =================================

Their ``pipeline.steps`` name the environment ``lab``; `image_object` moves them to the
environment an Image is made in (steps are full coordinates).

    python -m testbed.pipeline_images build RUNNER-PINNED-REFERENCE
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from testbed import example_images, images, product_images, registry

EXAMPLES_DIR = example_images.EXAMPLES_DIR
NAMES = ("count-all", "rogue-pipeline")
_STEPS_ENV = "lab"


def manifest(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((EXAMPLES_DIR / f"{name}.manifest.json").read_text())
    return document


@dataclass(frozen=True)
class PipelineExample:
    name: str
    image: images.BuiltImage
    manifest: dict[str, Any]

    def image_object(self, namespace: str) -> dict[str, Any]:
        """An Image importing this pipeline into `namespace`, its steps in that environment."""
        document = json.loads(json.dumps(self.manifest))
        document["pipeline"]["steps"] = [
            re.sub(f"^{_STEPS_ENV}@", f"{namespace}@", s) for s in document["pipeline"]["steps"]
        ]
        version = document["version"]
        return {
            "apiVersion": "batchx.io/v1alpha1",
            "kind": "Image",
            "metadata": {
                "name": f"{self.name}-{re.sub(r'[^0-9a-z]+', '-', version)}",
                "namespace": namespace,
            },
            "spec": {"image": self.image.pinned, "manifest": document},
        }


def build(name: str, runner: images.BuiltImage) -> PipelineExample:
    """Pipeline example `name` on `runner` (pinned), pushed to the test bed's registry."""
    base = f"{registry.address()}/{runner.ref.split('/', 1)[1].rsplit(':', 1)[0]}@{runner.digest}"
    local = f"localhost/examples/{name}:{example_images.TAG}"
    with tempfile.TemporaryDirectory(prefix="batchx-pipeline-") as tmp:
        context = Path(tmp)
        shutil.copy(EXAMPLES_DIR / f"{name}.py", context / "pipeline.py")
        shutil.copy(EXAMPLES_DIR / f"{name}.manifest.json", context / "manifest.json")
        (context / "Containerfile").write_text(
            f"FROM {base}\n"
            f"COPY manifest.json /{example_images.MANIFEST_FILE}\n"
            "COPY pipeline.py /pipeline.py\n"
            f'LABEL {example_images.MANIFEST_LABEL}="10"\n'
            'ENTRYPOINT ["python3", "/pipeline.py"]\n'
        )
        product_images.buildah(
            "bud", "--layers", "--timestamp", "0", "--isolation", "chroot",
            "--tls-verify=false", "-f", str(context / "Containerfile"), "-t", local, str(context),
        )  # fmt: skip
        digestfile = context / "digest"
        target = f"docker://{registry.address()}/examples/{name}:{example_images.TAG}"
        product_images.buildah(
            "push", "--quiet", "--tls-verify=false", "--digestfile", str(digestfile), local, target
        )
        digest = digestfile.read_text().strip()
    built = images.BuiltImage(f"{registry.NAME}/examples/{name}:{example_images.TAG}", digest)
    return PipelineExample(name, built, manifest(name))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("verb", choices=["build"])
    parser.add_argument("runner", help="the runner image, pinned (batchx.local/...@sha256:...)")
    args = parser.parse_args()
    ref, digest = args.runner.split("@", 1)
    runner = images.BuiltImage(f"{ref}:{product_images.app_version()}", digest)
    for name in NAMES:
        print(name, build(name, runner).image.pinned)


if __name__ == "__main__":
    main()
