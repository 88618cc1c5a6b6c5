"""The OCI reader behind `bx import`: archives as `testbed.images` writes them, and a registry
served over real HTTP (the distribution API) with indexes, both layer encodings, whiteouts,
digest checks and an anonymous bearer token."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
from testbed.images import Entry, ImageSpec, write_archive

from batchx.client.errors import RegistryError
from batchx.client.oci import parse_reference, read_image, registry_base_url
from testbed import example_images
from tests.oci_fakes import OCI_INDEX, FakeRegistry, layer, serve_registry

MANIFEST = "/batchx/manifest/manifest.json"
LABELS = {"io.batchx.manifest": "10"}


@pytest.mark.parametrize(
    ("value", "registry", "repository", "tag", "digest"),
    [
        (
            "batchx.local/examples/wordcount:1.0.0",
            "batchx.local",
            "examples/wordcount",
            "1.0.0",
            None,
        ),
        ("127.0.0.1:5000/tool", "127.0.0.1:5000", "tool", "latest", None),
        ("busybox", "docker.io", "library/busybox", "latest", None),
        ("ghcr.io/org/tool@sha256:" + "a" * 64, "ghcr.io", "org/tool", None, "sha256:" + "a" * 64),
        (
            "localhost:5000/a/b:v1@sha256:" + "b" * 64,
            "localhost:5000",
            "a/b",
            "v1",
            "sha256:" + "b" * 64,
        ),
    ],
)
def test_references_parse_into_registry_repository_tag_and_digest(
    value: str, registry: str, repository: str, tag: str | None, digest: str | None
) -> None:
    ref = parse_reference(value)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (
        registry,
        repository,
        tag,
        digest,
    )


@pytest.mark.parametrize("value", ["Batchx.local/UPPER:1", "x/y:bad tag", "x/y@sha256:short"])
def test_malformed_references_are_refused(value: str) -> None:
    with pytest.raises(RegistryError):
        parse_reference(value)


def test_registry_urls_batchx_local_is_the_test_bed_registry_unless_overridden() -> None:
    assert registry_base_url("batchx.local") == "http://127.0.0.1:5000"
    assert registry_base_url("batchx.local", "http://10.0.0.5:5000/") == "http://10.0.0.5:5000"
    assert registry_base_url("localhost:5000") == "http://localhost:5000"
    assert registry_base_url("ghcr.io") == "https://ghcr.io"


def test_an_example_archive_carries_the_label_and_manifest_file(tmp_path: Path) -> None:
    archive = tmp_path / "exit-error.tar"
    digest = example_images.write_example_archive("exit-error", archive)
    image = read_image(f"oci-archive:{archive}", [MANIFEST])
    assert image.digest == digest
    assert image.name == "batchx.local/examples/exit-error"
    assert image.pinned == f"batchx.local/examples/exit-error@{digest}"
    assert image.labels == LABELS
    assert json.loads(image.files[MANIFEST]) == example_images.manifest("exit-error")
    # A plain .tar path is an archive too.
    assert read_image(str(archive), [MANIFEST]).digest == digest


def test_an_archive_without_the_file_reads_without_it(tmp_path: Path) -> None:
    spec = ImageSpec("plain", "1", [Entry("bin/tool", data=b"x")])
    archive = tmp_path / "plain.tar"
    write_archive(spec, archive)
    image = read_image(f"oci-archive:{archive}", [MANIFEST, "/bin/tool"])
    assert (image.labels, dict(image.files)) == ({}, {"/bin/tool": b"x"})


def test_a_file_that_is_not_an_archive_is_a_clear_error(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.tar"
    bogus.write_bytes(b"not a tar")
    with pytest.raises(RegistryError, match="cannot open OCI archive"):
        read_image(f"oci-archive:{bogus}", [MANIFEST])


def test_registry_tag_resolves_to_the_manifest_digest_and_the_top_most_file_wins() -> None:
    with serve_registry() as registry:
        digest = registry.push(
            "examples/tool",
            "1.0.0",
            [
                layer({"batchx/manifest/manifest.json": b'{"v": 1}'}, gzipped=False),
                layer({"batchx/manifest/manifest.json": b'{"v": 2}', "bin/tool": b"#!"}),
            ],
            labels=LABELS,
        )
        image = read_image(f"127.0.0.1:{registry.port}/examples/tool:1.0.0", [MANIFEST])
    assert image.pinned == f"127.0.0.1:{registry.port}/examples/tool@{digest}"
    assert image.labels == LABELS
    assert image.files[MANIFEST] == b'{"v": 2}'


def test_registry_url_override_keeps_the_reference_name() -> None:
    with serve_registry() as registry:
        digest = registry.push("examples/tool", "1.0.0", [layer({"a": b"1"})], labels=LABELS)
        image = read_image(
            "batchx.local/examples/tool:1.0.0",
            [MANIFEST],
            registry_url=f"http://127.0.0.1:{registry.port}",
        )
    assert image.pinned == f"batchx.local/examples/tool@{digest}"


@pytest.mark.parametrize(
    "upper",
    [
        {"batchx/manifest/manifest.json": None},  # whiteout of the file
        {"batchx/.wh.manifest": None},  # whiteout of its folder
        {"batchx/manifest/.wh..wh..opq": None},  # opaque folder
    ],
)
def test_a_whiteout_above_hides_the_file(upper: dict[str, bytes | None]) -> None:
    with serve_registry() as registry:
        registry.push("t", "1", [layer({"batchx/manifest/manifest.json": b"{}"}), layer(upper)])
        image = read_image(f"127.0.0.1:{registry.port}/t:1", [MANIFEST])
    assert MANIFEST not in image.files


def test_an_index_resolves_to_its_linux_amd64_manifest() -> None:
    with serve_registry() as registry:
        arm = registry.push("t", "arm", [layer({"batchx/manifest/manifest.json": b'"arm"'})])
        amd = registry.push("t", "amd", [layer({"batchx/manifest/manifest.json": b'"amd"'})])
        registry.put_manifest(
            "t",
            "multi",
            {
                "schemaVersion": 2,
                "mediaType": OCI_INDEX,
                "manifests": [
                    {"digest": arm, "platform": {"os": "linux", "architecture": "arm64"}},
                    {"digest": amd, "platform": {"os": "linux", "architecture": "amd64"}},
                ],
            },
        )
        image = read_image(f"127.0.0.1:{registry.port}/t:multi", [MANIFEST])
    assert (image.digest, image.files[MANIFEST]) == (amd, b'"amd"')


def test_a_blob_whose_content_does_not_match_its_digest_is_refused() -> None:
    with serve_registry() as registry:
        registry.push("t", "1", [layer({"a": b"1"})])
        victim = next(d for d, b in registry.blobs.items() if b.startswith(b"\x1f\x8b"))
        registry.blobs[victim] = b"tampered"
        with pytest.raises(RegistryError, match="has content of digest"):
            read_image(f"127.0.0.1:{registry.port}/t:1", [MANIFEST])


def test_an_unknown_tag_and_an_unreachable_registry_are_clear_errors() -> None:
    with serve_registry() as registry:
        with pytest.raises(RegistryError, match=r"not found \(404\)"):
            read_image(f"127.0.0.1:{registry.port}/t:nope", [MANIFEST])
        port = registry.port
    with pytest.raises(RegistryError, match="cannot reach the registry"):
        read_image(f"127.0.0.1:{port}/t:1", [MANIFEST])


def test_an_anonymous_bearer_token_is_fetched_from_the_challenge() -> None:
    with serve_registry(FakeRegistry(token="anon-123")) as registry:
        digest = registry.push("t", "1", [layer({"batchx/manifest/manifest.json": b"{}"})])
        image = read_image(f"127.0.0.1:{registry.port}/t:1", [MANIFEST])
    assert image.digest == digest
    assert any(r.startswith("/token?") and "scope=pull" in r for r in registry.requests)


def test_a_legacy_docker_archive_is_refused_with_how_to_get_a_digest(tmp_path: Path) -> None:
    archive = tmp_path / "docker.tar"
    with tarfile.open(archive, "w") as tar:
        data = b'[{"Config": "c.json", "RepoTags": ["x:1"], "Layers": []}]'
        info = tarfile.TarInfo("manifest.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    with pytest.raises(RegistryError, match="is a docker-archive"):
        read_image(str(archive), [MANIFEST])
