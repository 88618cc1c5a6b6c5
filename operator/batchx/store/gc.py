"""Garbage collection: delete the blobs no environment references.

Why it is safe against concurrent writes: it runs under the exclusive lease, so no writer is
between "this blob exists" and "its reference is counted" (see `batchx.store.leases`). The grace
period is a second, independent guard (a writer whose lease lapsed while it was paused) and
leaves fresh uploads alone. Batch records are folded into the counts, the usage is set from
them, and zero counts and tombstones are dropped on the way: with no writer running, nothing
can be about to raise that count or replace that tombstone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from batchx.store.index import Index
from batchx.store.leases import Lease
from batchx.store.usage import Usage

if TYPE_CHECKING:
    from batchx.store.fs import Store


@dataclass
class GcReport:
    referenced: int = 0
    deleted_blobs: int = 0
    deleted_bytes: int = 0
    kept_young: int = 0
    swept: int = 0
    tombstones: int = 0
    folded: int = 0
    """Batch records folded into reference counts (`batchx.store.refs`)."""
    errors: list[str] = field(default_factory=list)


def collect(store: Store, lease: Lease, grace: float) -> GcReport:
    """One collection under `lease` (held exclusively by the caller)."""
    report = GcReport()
    referenced = _referenced(store, lease, report)
    report.referenced = len(referenced)
    cutoff = lease.server_now - grace
    backend = store.backend
    for blob in backend.list_blobs():
        lease.keepalive()
        if blob.digest in referenced:
            continue
        if blob.modified > cutoff:
            report.kept_young += 1
            continue
        backend.delete_blob(blob.digest)
        report.deleted_blobs += 1
        report.deleted_bytes += blob.size
    report.swept = backend.sweep(cutoff)
    return report


def _referenced(store: Store, lease: Lease, report: GcReport) -> set[str]:
    referenced: set[str] = set()
    for env in store.environments():
        lease.keepalive()
        files = store.env(env)
        live, report.folded = files.refs.fold()
        referenced.update(live)
        # With no writer running the counts are exact, so the usage is set from them: this
        # also gives back a charge a rare race made twice (two writers of the same new blob).
        exact = sum(size for size, _ in live.values()), len(live)
        files.usage_record.update(lambda u: Usage(*exact, u.files, u.quota))  # noqa: B023
        report.tombstones += Index(store.backend, env, store.pool).drop_tombstones()
    return referenced
