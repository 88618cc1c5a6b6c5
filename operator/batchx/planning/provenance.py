"""Provenance: every file a job writes names the job, its image and the exact inputs it read.

The record lives in the file's index entry (``provenance`` in `batchx.store.fs.Entry`): a path
is immutable, so its record never changes and needs no second store that could drift from it.
It is made once per job, when its plan is made (`job_record`: the input files' content digests
are read from the index then), travels in the staging plan, and the runner writes it with every
output file (and the job's result report). A job served from the cache names the job that
computed the files *and* itself (`served_record`) on the aliases it gets.

    {"v": 1,
     "job":    {"name": "wc-1", "uid": "..."},               # the job that computed the file
     "image":  {"coordinates": "env@wordcount:1.0.0",
                "container": "registry/wordcount@sha256:...", "digest": "sha256:..."},
     "inputs": [{"path": "bx://data/a.txt", "digest": "sha256:..."},     # each input file
                {"path": "bx://data/set/", "digest": "folder:sha256:..."}],  # or folder
     "servedTo": {"name": "wc-2", "uid": "..."}}              # only on a cached job's aliases

A file without a record was uploaded by a user (``bx cp``): the chain ends there. `trace` walks
a file's chain back through as many jobs as made it, reading the index through two lookups, so
it is pure and the CLI (``bx provenance``) binds it to the store. Digests are compared on the
way: an input path that names other content now (removed and written again) is reported, not
silently followed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from batchx.models import JobImage
from batchx.planning.job_cache import folder_digest, image_digest
from batchx.planning.job_pod import JobRef

__all__ = [
    "PROVENANCE_VERSION",
    "Indexed",
    "Node",
    "Record",
    "job_record",
    "served_record",
    "trace",
]

PROVENANCE_VERSION = 1
MAX_DEPTH = 64
"""Chains deeper than this are cut (reported), so a damaged index cannot loop the walk."""

JSON = dict[str, Any]


def job_record(job: JobRef, image: JobImage | None, inputs: Mapping[str, str]) -> JSON:
    """The record of the files `job` writes; `inputs` maps each input's bx:// relative path
    (a folder ends in ``/``) to its content digest (``sha256:`` or ``folder:sha256:``)."""
    container = image.container if image else None
    return {
        "v": PROVENANCE_VERSION,
        "job": {"name": job.name, "uid": job.uid},
        "image": {
            "coordinates": image.coordinates if image else None,
            "container": container,
            "digest": image_digest(container),
        },
        "inputs": [{"path": "bx://" + p, "digest": d} for p, d in sorted(inputs.items())],
    }


def served_record(original: JSON | None, computed_by: str, served: JobRef) -> JSON:
    """The record of an alias made for `served` of a file `computed_by` wrote (its record
    kept, when it has one: the inputs and image are the computing job's)."""
    base = dict(original) if original else {"v": PROVENANCE_VERSION, "job": {"name": computed_by}}
    base["servedTo"] = {"name": served.name, "uid": served.uid}
    return base


@dataclass(frozen=True)
class Record:
    """A typed view of a record as the index holds it (tolerant: missing fields are None)."""

    job: str | None
    job_uid: str | None
    coordinates: str | None
    container: str | None
    digest: str | None
    inputs: tuple[tuple[str, str], ...]  # (bx:// path, content digest)
    served_to: str | None = None
    served_uid: str | None = None

    @classmethod
    def of(cls, raw: Mapping[str, Any] | None) -> Record | None:
        if not isinstance(raw, Mapping):
            return None
        job = _mapping(raw.get("job"))
        image = _mapping(raw.get("image"))
        served = _mapping(raw.get("servedTo"))
        inputs = tuple(
            (str(i["path"]), str(i["digest"]))
            for i in raw.get("inputs") or []
            if isinstance(i, Mapping) and "path" in i and "digest" in i
        )
        return cls(
            _str(job.get("name")),
            _str(job.get("uid")),
            _str(image.get("coordinates")),
            _str(image.get("container")),
            _str(image.get("digest")),
            inputs,
            _str(served.get("name")),
            _str(served.get("uid")),
        )

    def to_json(self) -> JSON:
        out: JSON = {
            "job": {"name": self.job, "uid": self.job_uid},
            "image": {
                "coordinates": self.coordinates,
                "container": self.container,
                "digest": self.digest,
            },
            "inputs": [{"path": p, "digest": d} for p, d in self.inputs],
        }
        if self.served_to:
            out["servedTo"] = {"name": self.served_to, "uid": self.served_uid}
        return out


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


# ----------------------------------------------------------------------------------- trace


class Indexed(Protocol):
    """What `trace` reads of an index entry (`batchx.store.fs.Entry` is one)."""

    @property
    def path(self) -> str: ...
    @property
    def digest(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def provenance(self) -> dict[str, Any] | None: ...


@dataclass
class Node:
    """One file (or input folder) of a chain: what made it, and what that job read."""

    path: str  # bx:// path
    digest: str | None  # sha256:<hex> (folder:sha256:<hex> for a folder), None when missing
    size: int | None
    record: Record | None  # None: uploaded by a user (or missing)
    inputs: list[Node] = field(default_factory=list)
    note: str | None = None  # why the chain stops here, when it is not an upload

    @property
    def uploaded(self) -> bool:
        return self.record is None and self.note is None

    def to_json(self) -> JSON:
        out: JSON = {"path": self.path, "digest": self.digest, "size": self.size}
        out["producedBy"] = None if self.record is None else self.record.to_json()
        if self.note:
            out["note"] = self.note
        if self.record is not None or self.inputs:
            out["inputs"] = [n.to_json() for n in self.inputs]
        return out


Stat = Callable[[str], Indexed | None]
Under = Callable[[str], Iterable[Indexed]]


def trace(path: str, stat: Stat, under: Under) -> Node:
    """The chain of the file at `path` (bx:// relative), read through `stat` (one entry or
    None) and `under` (the entries under a folder)."""
    return _Walk(stat, under).file(path, None, (), 0)


@dataclass(frozen=True)
class _Walk:
    stat: Stat
    under: Under

    def file(self, path: str, expected: str | None, seen: tuple[str, ...], depth: int) -> Node:
        shown = "bx://" + path
        entry = self.stat(path)
        if entry is None:
            return Node(shown, expected, None, None, note="no longer in the index")
        digest = "sha256:" + entry.digest
        node = Node(shown, digest, entry.size, Record.of(entry.provenance))
        if expected is not None and expected != digest:
            node.note = f"the path names other content now (the job read {expected})"
            node.record = None
            return node
        return self.expand(node, seen, depth)

    def folder(self, path: str, expected: str, seen: tuple[str, ...], depth: int) -> Node:
        found = list(self.under(path))
        digest = folder_digest((e.path[len(path) :], e.digest, e.size) for e in found)
        node = Node("bx://" + path, digest, sum(e.size for e in found), None)
        if not found:
            node.digest, node.size, node.note = expected, None, "no longer in the index"
        elif digest != expected:
            node.note = f"the folder holds other content now (the job read {expected})"
        else:
            node.inputs = [self.file(e.path, None, seen, depth + 1) for e in found]
        return node

    def expand(self, node: Node, seen: tuple[str, ...], depth: int) -> Node:
        record = node.record
        if record is None:
            return node
        if node.path in seen or depth >= MAX_DEPTH:
            node.note = f"chain cut here (a loop, or deeper than {MAX_DEPTH} jobs)"
            return node
        trail = (*seen, node.path)
        for bx, digest in record.inputs:
            rel = bx.removeprefix("bx://")
            if rel.endswith("/"):
                node.inputs.append(self.folder(rel, digest, trail, depth + 1))
            else:
                node.inputs.append(self.file(rel, digest, trail, depth + 1))
        return node
