"""A local cache of file digests, so that re-copying an unchanged file reads nothing.

Keyed like git's index by (device, inode, size, mtime_ns, ctime_ns): any write to the file
changes mtime/ctime. A file modified within the same clock tick as our read could keep its
mtime ("racy git"), so an entry is recorded only when the file's mtime is more than a second
older than the moment we started reading it and its stat did not change while we read.
Set BATCHX_DIGEST_CACHE=off to disable, or to a path to move it.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from pathlib import Path

RACY_NS = 1_000_000_000
COMMIT_EVERY = 500
"""Records are committed in batches (and on close): one transaction per file was the slowest
part of copying many small files."""


def _identity(st: os.stat_result) -> tuple[int, int, int, int, int]:
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


class DigestCache:
    def __init__(self, path: Path | None) -> None:
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._uncommitted = 0
        if path is None:
            return
        with contextlib.suppress(OSError, sqlite3.Error):
            path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(path, check_same_thread=False, timeout=5)
            db.execute(
                "CREATE TABLE IF NOT EXISTS digests (dev INTEGER, ino INTEGER, "
                "size INTEGER, mtime INTEGER, ctime INTEGER, digest TEXT, "
                "PRIMARY KEY (dev, ino))"
            )
            self._db = db

    @classmethod
    def default(cls) -> DigestCache:
        setting = os.environ.get("BATCHX_DIGEST_CACHE", "")
        if setting == "off":
            return cls(None)
        if setting:
            return cls(Path(setting))
        base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
        return cls(base / "batchx" / "digests.sqlite")

    def lookup(self, st: os.stat_result) -> str | None:
        if self._db is None:
            return None
        with self._lock, contextlib.suppress(sqlite3.Error):
            row = self._db.execute(
                "SELECT size, mtime, ctime, digest FROM digests WHERE dev=? AND ino=?",
                (st.st_dev, st.st_ino),
            ).fetchone()
            if row is not None and tuple(row[:3]) == _identity(st)[2:]:
                return str(row[3])
        return None

    def record(self, path: Path, before: os.stat_result, digest: str, started_ns: int) -> None:
        if self._db is None or before.st_mtime_ns > started_ns - RACY_NS:
            return
        try:
            after = path.stat()
        except OSError:
            return
        if _identity(after) != _identity(before):
            return
        with self._lock, contextlib.suppress(sqlite3.Error):
            self._db.execute(
                "INSERT OR REPLACE INTO digests VALUES (?,?,?,?,?,?)", (*_identity(before), digest)
            )
            self._uncommitted += 1
            if self._uncommitted >= COMMIT_EVERY:
                self._db.commit()
                self._uncommitted = 0

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                with contextlib.suppress(sqlite3.Error):
                    self._db.commit()
                self._db.close()
                self._db = None


def now_ns() -> int:
    return time.time_ns()
