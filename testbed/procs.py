"""Reading /proc safely: a process can exit between any two reads, which is not an error."""

from __future__ import annotations

from pathlib import Path


def live_argv(pid: int) -> list[str] | None:
    """The command line of `pid` while it runs (not a zombie), or None once it has exited.

    Callers compare it with what they started before signalling: a pid from a stale state file
    may have been recycled by an unrelated process.
    """
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None
    if state == "Z" or not raw:
        return None
    return raw.rstrip(b"\0").decode(errors="replace").split("\0")
