"""`FileSystem`: what `bx cp/ls/rm/provenance` need of an environment's files.

Two implementations satisfy it, and the command line is written once against it: the embedded
store's `batchx.store.fs.EnvFiles` (`--store`, a local directory or a bucket with credentials)
and `batchx.client.files.RemoteFiles` (the cluster's files API, only a kubeconfig). A Protocol
rather than a union, so that each keeps its own signature extras and a third (say, a read-only
view) needs no change in the commands.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Protocol

from batchx.store.backend import Progress, no_progress
from batchx.store.batch import LocalFile, PutReport
from batchx.store.errors import StoreError
from batchx.store.index import Entry


class FileSystem(Protocol):
    """One environment's files (paths without `bx://`)."""

    @property
    def name(self) -> str:
        """The environment."""

    def stat(self, path: str) -> Entry | None:
        """The path's entry (with its provenance record), None when absent."""

    def find(self, pattern: str = "") -> Iterator[str]:
        """Paths matching `pattern` (a folder prefix, an exact path, or wildcards)."""

    def listdir(self, folder: str = "") -> Iterator[str]:
        """A folder's direct children: files, and sub-folders ending with `/`."""

    def entries(self, paths: Iterable[str]) -> Iterator[Entry]:
        """The entries of `paths`, in order; vanished ones skipped."""

    def get_file(self, path: str, dest: Path, progress: Progress = no_progress) -> Entry:
        """Download the path's content to `dest`, verified."""

    def put_files(
        self,
        files: Sequence[LocalFile],
        *,
        job: str | None = None,
        progress: Progress = no_progress,
        workers: int = 8,
    ) -> list[PutReport | StoreError | OSError]:
        """Store local files; a result per file, in order."""

    def copy(self, src: str, dst: str) -> PutReport:
        """Name `src`'s content at `dst` too (no bytes move)."""

    def delete(self, path: str) -> Entry:
        """Remove the path; its entry."""
