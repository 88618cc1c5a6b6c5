"""`bx cp`, `bx ls`, `bx rm`: the environment's file system from the command line.

On a cluster (the default): through the operator's files API (`batchx.client.files`), with
nothing but the user's kubeconfig; the cluster's RBAC decides (viewers read, members also copy
in, admins also remove) and the bytes go straight to and from S3 with presigned URLs. No store
credentials on the user's machine.

The embedded mode, for development and a single user without a cluster: `--store URL` or
`$BATCHX_STORE` (`file:///DIR`, a local directory; `s3://BUCKET[/PREFIX]?endpoint=URL` talks to
a bucket directly with boto3's credentials, for administrators). The environment is `--env/-e`,
$BATCHX_ENV, or the kubeconfig context's namespace.

Folder semantics (like rsync with a trailing slash): copying a folder copies its *contents*
into the destination folder, keeping relative paths. Patterns (`?`, `*`, `**`; quote them so
the shell leaves them alone) keep the part after their last wildcard-free folder.
"""

from __future__ import annotations

import glob
import os
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from batchx.cli.common import console
from batchx.domain.paths import BX_SCHEME

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from batchx.store import Outcome, Store
    from batchx.store.filesystem import FileSystem
    from batchx.store.fs import Entry

# The store (boto3 behind it) and rich are imported inside the commands: `bx --help` must not
# pay for them (see batchx.cli.common).

EnvOption = Annotated[
    str | None,
    typer.Option("--env", "-e", envvar="BATCHX_ENV", help="Environment (default $BATCHX_ENV)."),
]
StoreOption = Annotated[
    str | None,
    typer.Option(
        "--store",
        envvar="BATCHX_STORE",
        help="Embedded mode: a store URL (file:///DIR) instead of the cluster's files API.",
    ),
]
PROGRESS_MIN_BYTES = 8 << 20


@dataclass
class Tally:
    copied: int = 0
    sent: int = 0
    deduplicated: int = 0
    unchanged: int = 0
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = [f"copied {self.copied} file(s), {_human(self.sent)} transferred"]
        if self.deduplicated:
            parts.append(f"{self.deduplicated} without transfer (content already stored)")
        if self.unchanged:
            parts.append(f"{self.unchanged} skipped (already at the destination)")
        if self.errors:
            parts.append(f"{len(self.errors)} failed")
        return "; ".join(parts)


def register(app: typer.Typer) -> None:
    app.command("cp")(cp)
    app.command("ls")(ls)
    app.command("rm")(rm)


# ---------------------------------------------------------------------------------------- cp


def cp(
    sources: Annotated[list[str], typer.Argument(help="Local paths or bx:// paths/patterns.")],
    dest: Annotated[str, typer.Argument(help="Local path or bx:// path (folder: end with /).")],
    env: EnvOption = None,
    store: StoreOption = None,
    jobs: Annotated[
        int, typer.Option("--jobs", "-j", min=1, max=64, help="Files in flight at once.")
    ] = 8,
) -> None:
    """Copy files: local -> bx://, bx:// -> local, bx:// -> bx:// (an alias, no data moves)."""
    from batchx.store import StoreError  # noqa: PLC0415

    err = console(stderr=True)
    remote_src = [s.startswith(BX_SCHEME) for s in sources]
    if any(remote_src) and not all(remote_src):
        refuse("sources must be all local or all bx:// paths")
    with open_env(env, store) as files:
        tally = Tally()
        try:
            if all(remote_src) and dest.startswith(BX_SCHEME):
                _alias(files, sources, dest, tally)
            elif all(remote_src):
                _download(files, sources, Path(dest), jobs, tally)
            elif dest.startswith(BX_SCHEME):
                _upload(files, sources, dest, jobs, tally)
            else:
                refuse("one side must be a bx:// path")
        except StoreError as exc:
            refuse(str(exc))
        for line in tally.errors:
            err.print(f"[red]error:[/red] {line}", highlight=False)
        err.print(tally.summary(), highlight=False)
        if tally.errors:
            raise typer.Exit(1)


def _rel(bx: str) -> str:
    return bx[len(BX_SCHEME) :]


def plan_upload(sources: list[str], dest: str) -> list[tuple[Path, str]]:
    """(local file, bx relative path) pairs; pure except for reading the local tree."""
    from batchx.store import StoreError  # noqa: PLC0415
    from batchx.store.patterns import has_wildcards, literal_prefix  # noqa: PLC0415

    folder_dest = dest.endswith("/") or len(sources) > 1
    pairs: list[tuple[Path, str]] = []
    for source in sources:
        if has_wildcards(source):
            base = literal_prefix(source)
            matches = sorted(glob.glob(source, recursive=True))
            pairs += [(Path(m), m[len(base) :]) for m in matches if os.path.isfile(m)]
            folder_dest = True
        elif os.path.isdir(source):
            pairs += [(p, p.relative_to(source).as_posix()) for p in _walk(Path(source))]
            folder_dest = True
        elif os.path.isfile(source):
            pairs.append((Path(source), os.path.basename(source)))
        else:
            raise StoreError(f"{source}: no such file or directory")
    target = _rel(dest)
    if not folder_dest:
        return [(pairs[0][0], target)] if pairs else []
    prefix = target if target.endswith("/") or not target else target + "/"
    return [(local, prefix + rel) for local, rel in pairs]


def _walk(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            yield Path(dirpath) / name


def _upload(files: FileSystem, sources: list[str], dest: str, jobs: int, tally: Tally) -> None:
    """One batch through `EnvFiles.put_files`: existence by listing, quota and usage once per
    batch of files, per file only the blob and its two small index records."""
    from batchx.store import LocalFile, StoreError  # noqa: PLC0415
    from batchx.store.digestcache import DigestCache, now_ns  # noqa: PLC0415

    pairs = plan_upload(sources, dest)
    started = now_ns()  # before anything is read: the digest cache's racy-file check
    stats = [local.stat() for local, _ in pairs]
    total = sum(st.st_size for st in stats)
    cache = DigestCache.default()
    batch = [
        LocalFile(rel, local, cache.lookup(st))
        for (local, rel), st in zip(pairs, stats, strict=True)
    ]
    try:
        with _progress(total) as (progress, task):
            results = files.put_files(
                batch, progress=lambda n: progress.advance(task, n), workers=jobs
            )
        for (local, _), st, result in zip(pairs, stats, results, strict=True):
            if isinstance(result, (StoreError, OSError)):
                tally.errors.append(f"{local}: {result}")
                continue
            cache.record(local, st, result.entry.digest, started)
            _count(tally, result.outcome, result.uploaded_bytes)
    finally:
        cache.close()


def _count(tally: Tally, outcome: Outcome, sent: int) -> None:
    from batchx.store import Outcome  # noqa: PLC0415

    if outcome is Outcome.UNCHANGED:
        tally.unchanged += 1
        return
    tally.copied += 1
    tally.sent += sent
    if sent == 0:
        tally.deduplicated += 1


def plan_remote(files: FileSystem, source: str) -> list[tuple[str, str]]:
    """(bx relative path, path relative to the destination folder) for one bx:// source."""
    from batchx.store import StoreError  # noqa: PLC0415
    from batchx.store.patterns import has_wildcards, literal_prefix  # noqa: PLC0415

    rel = _rel(source)
    if has_wildcards(rel):
        base = literal_prefix(rel)
        return [(p, p[len(base) :]) for p in files.find(rel)]
    if rel and not rel.endswith("/") and files.stat(rel) is not None:
        return [(rel, rel.rsplit("/", 1)[-1])]
    folder = rel if rel.endswith("/") or not rel else rel + "/"
    found = [(p, p[len(folder) :]) for p in files.find(folder)]
    if not found:
        raise StoreError(f"{source}: no such file or folder in environment {files.name!r}")
    return found


def _is_single(files: FileSystem, sources: list[str]) -> bool:
    from batchx.store.patterns import has_wildcards  # noqa: PLC0415

    rel = _rel(sources[0])
    return (
        len(sources) == 1
        and not has_wildcards(rel)
        and not rel.endswith("/")
        and bool(rel)
        and files.stat(rel) is not None
    )


def _download(files: FileSystem, sources: list[str], dest: Path, jobs: int, tally: Tally) -> None:
    from batchx.store import StoreError  # noqa: PLC0415

    pairs = [pair for s in sources for pair in plan_remote(files, s)]
    single = _is_single(files, sources) and not (dest.is_dir() or str(dest).endswith("/"))
    entries = list(files.entries(p for p, _ in pairs))
    total = sum(e.size for e in entries)
    targets = {p: (dest if single else dest / rel) for p, rel in pairs}
    with _progress(total) as (progress, task), ThreadPoolExecutor(jobs) as pool:

        def one(path: str) -> None:
            try:
                entry = files.get_file(path, targets[path], lambda n: progress.advance(task, n))
            except (StoreError, OSError) as exc:
                tally.errors.append(f"bx://{path}: {exc}")
                return
            tally.copied += 1
            tally.sent += entry.size

        list(pool.map(one, [e.path for e in entries]))


def _alias(files: FileSystem, sources: list[str], dest: str, tally: Tally) -> None:
    from batchx.store import StoreError  # noqa: PLC0415

    target = _rel(dest)
    if _is_single(files, sources) and not target.endswith("/"):
        pairs = [(_rel(sources[0]), target)]
    else:
        prefix = target if target.endswith("/") or not target else target + "/"
        pairs = [(p, prefix + rel) for s in sources for p, rel in plan_remote(files, s)]
    for src, dst in pairs:
        try:
            report = files.copy(src, dst)
        except StoreError as exc:
            tally.errors.append(f"bx://{src} -> bx://{dst}: {exc}")
            continue
        _count(tally, report.outcome, 0)


# ---------------------------------------------------------------------------------------- ls


def ls(
    pattern: Annotated[str, typer.Argument(help="bx:// folder, path or pattern.")] = BX_SCHEME,
    env: EnvOption = None,
    store: StoreOption = None,
    recursive: Annotated[bool, typer.Option("--recursive", "-r")] = False,
    long: Annotated[
        bool, typer.Option("--long", "-l", help="Show digests and producing jobs.")
    ] = False,
) -> None:
    """List files (a folder's direct children unless -r, or what a pattern matches)."""
    from batchx.store import StoreError  # noqa: PLC0415
    from batchx.store.patterns import has_wildcards  # noqa: PLC0415

    if not pattern.startswith(BX_SCHEME):
        refuse(f"expected a bx:// path, got {pattern!r}")
    rel = _rel(pattern)
    with open_env(env, store) as files:
        try:
            if has_wildcards(rel):
                names = list(files.find(rel))
            elif rel and not rel.endswith("/") and files.stat(rel) is not None:
                names = [rel]
            elif recursive:
                names = list(files.find(rel if not rel or rel.endswith("/") else rel + "/"))
            else:
                names = list(files.listdir(rel))
            _print_listing(files, names, long)
        except StoreError as exc:
            refuse(str(exc))


def _print_listing(files: FileSystem, names: list[str], long: bool) -> None:
    from rich.table import Table  # noqa: PLC0415

    table = Table(box=None, show_header=False, pad_edge=False)
    folders = [n for n in names if n.endswith("/")]
    for name in folders:
        table.add_row("-", "", *(["", ""] if long else []), BX_SCHEME + name)
    for entry in files.entries(n for n in names if not n.endswith("/")):
        extra = [entry.digest[:16], _made_by(entry)] if long else []
        table.add_row(_human(entry.size), entry.created, *extra, BX_SCHEME + entry.path)
    console().print(table, highlight=False)


def _made_by(entry: Entry) -> str:
    """The job that computed a file (and the one a cached copy was served to); '' uploaded."""
    from batchx.planning.provenance import Record  # noqa: PLC0415

    record = Record.of(entry.provenance)
    if record is None or not record.job:
        return entry.job or ""
    return f"{record.job} -> {record.served_to} (cached)" if record.served_to else record.job


# ---------------------------------------------------------------------------------------- rm


def rm(
    paths: Annotated[list[str], typer.Argument(help="bx:// paths or patterns.")],
    env: EnvOption = None,
    store: StoreOption = None,
    recursive: Annotated[bool, typer.Option("--recursive", "-r", help="Remove folders.")] = False,
) -> None:
    """Remove paths (the content goes once nothing references it)."""
    from batchx.store import StoreError  # noqa: PLC0415

    failed = False
    with open_env(env, store) as files:
        for path in paths:
            if not path.startswith(BX_SCHEME):
                refuse(f"expected a bx:// path, got {path!r}")
            try:
                targets = _rm_targets(files, _rel(path), recursive)
                for rel in targets:
                    files.delete(rel)
                    console().print(f"removed {BX_SCHEME}{rel}", highlight=False)
            except StoreError as exc:
                console(stderr=True).print(f"[red]error:[/red] {exc}", highlight=False)
                failed = True
    if failed:
        raise typer.Exit(1)


def _rm_targets(files: FileSystem, rel: str, recursive: bool) -> list[str]:
    from batchx.store import StoreError  # noqa: PLC0415
    from batchx.store.patterns import has_wildcards  # noqa: PLC0415

    if has_wildcards(rel):
        return list(files.find(rel))
    if rel and not rel.endswith("/") and files.stat(rel) is not None:
        return [rel]
    folder = rel if not rel or rel.endswith("/") else rel + "/"
    inside = list(files.find(folder))
    if not inside:
        raise StoreError(f"bx://{rel}: no such file or folder in environment {files.name!r}")
    if not recursive:
        raise StoreError(f"bx://{rel} is a folder ({len(inside)} files): use -r to remove it")
    return inside


# ----------------------------------------------------------------------------------- helpers


class open_env:
    """The environment's files: the cluster's files API, or with a store URL the embedded mode;
    closes the connection (and the embedded store's writer lease) on exit."""

    def __init__(self, env: str | None, store: str | None) -> None:
        from batchx.store import StoreError, open_store  # noqa: PLC0415

        self.store: Store | None = None
        self.kube: Any = None
        self.files: FileSystem
        if store:
            if not env:
                refuse("no environment: pass --env/-e or set BATCHX_ENV")
            try:
                self.store = open_store(store)
                self.files = self.store.env(env or "")
            except StoreError as exc:
                refuse(str(exc))
            return
        from batchx.client import ClientError  # noqa: PLC0415
        from batchx.client.files import RemoteFiles  # noqa: PLC0415
        from batchx.client.kube import Kube  # noqa: PLC0415

        try:
            self.kube = Kube.connect()
        except ClientError as exc:
            refuse(f"{exc} (or use --store for the embedded local mode)")
        chosen = env or self.kube.namespace
        if not chosen:
            self.kube.close()
            refuse("no environment: pass --env/-e, set BATCHX_ENV or the context's namespace")
        self.files = RemoteFiles(self.kube, chosen)

    def __enter__(self) -> FileSystem:
        return self.files

    def __exit__(self, *_: object) -> None:
        if self.store is not None:
            self.store.close()
        if self.kube is not None:
            self.kube.close()


class _progress:
    """A byte progress bar on a terminal for transfers big enough to be worth watching."""

    def __init__(self, total: int) -> None:
        from rich.progress import (  # noqa: PLC0415
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        show = total >= PROGRESS_MIN_BYTES and sys.stderr.isatty()
        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console(stderr=True),
            disable=not show,
            transient=False,
        )
        self.task = self.bar.add_task("copying", total=total)

    def __enter__(self) -> tuple[Progress, TaskID]:
        self.bar.__enter__()
        return self.bar, self.task

    def __exit__(self, *exc: object) -> None:
        self.bar.__exit__(None, None, None)


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def refuse(message: str) -> NoReturn:
    console(stderr=True).print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(2)
