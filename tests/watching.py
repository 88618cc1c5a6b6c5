"""Record every version of the objects of one namespace from a background watch.

A poll can miss an object that lives between two polls (a pod created and deleted at once); a
watch sees every change. `Recorder` lists first, then watches from the list's resourceVersion,
resumes where it stopped when the server ends the stream (or restarts: it reconnects until the
server answers again), and relists when that version has expired (410 Gone), so nothing is
missed. Every version seen is kept with the local monotonic
time it arrived at, which is what the benchmarks measure latencies with (creationTimestamp has
one-second resolution).

    with Recorder.pods(core, namespace) as pods:
        ...
        pods.uids_by_label("batchx.io/job")   # {job name: {uid, ...}}

``raw=True`` reads the list and the stream as plain JSON (no client models: parsing 10,000 pods
into models takes a core), and a subclass that keeps less than every version overrides
`_record` (`benchmarks/bench_scale.py`'s first-times-only `Milestones`).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import urllib3
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

JSON = dict[str, Any]
_WATCH_SECONDS = 5  # the stream ends this often, so that stop() is honoured promptly
_RECONNECT_SECONDS = 0.5  # between attempts while the API server does not answer
_RETRIED = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class Seen:
    """One version of one object, as the watch delivered it."""

    at: float  # time.monotonic() on arrival
    type: str  # LIST (from the initial or a re-list), ADDED, MODIFIED, DELETED
    obj: JSON

    @property
    def name(self) -> str:
        return str(self.obj["metadata"]["name"])

    @property
    def uid(self) -> str:
        return str(self.obj["metadata"]["uid"])


class Recorder(AbstractContextManager["Recorder"]):
    """A thread that records every version of the objects one list call returns."""

    def __init__(
        self, lister: Callable[..., Any], sanitize: Callable[[Any], JSON], *, raw: bool = False
    ) -> None:
        self._list = lister
        self._sanitize = sanitize
        self._raw = raw
        self._lock = threading.Lock()
        self._seen: list[Seen] = []
        self._stop = threading.Event()
        self._listed = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="recorder", daemon=True)

    @classmethod
    def pods(
        cls, api: client.ApiClient, namespace: str, label_selector: str | None = None
    ) -> Recorder:
        core = client.CoreV1Api(api)
        kwargs = {"label_selector": label_selector} if label_selector else {}

        def lister(**more: Any) -> Any:
            return core.list_namespaced_pod(namespace, **kwargs, **more)

        return cls(lister, api.sanitize_for_serialization)

    @classmethod
    def custom(
        cls, api: client.ApiClient, group: str, version: str, namespace: str, plural: str
    ) -> Recorder:
        custom = client.CustomObjectsApi(api)

        def lister(**more: Any) -> Any:
            return custom.list_namespaced_custom_object(group, version, namespace, plural, **more)

        return cls(lister, lambda obj: obj if isinstance(obj, dict) else {})

    # -- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> Recorder:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self, timeout: float = 30) -> None:
        """Start recording; returns once the first list is in (later objects are all seen)."""
        self._thread.start()
        if not self._listed.wait(timeout):
            raise AssertionError(f"the first list did not answer within {timeout:.0f}s")
        self.check()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=_WATCH_SECONDS + 30)

    def check(self) -> None:
        """Raise what stopped the recording thread, if anything did."""
        if self._error is not None:
            raise AssertionError(f"the watch failed: {self._error!r}") from self._error

    # -- what was seen ---------------------------------------------------------------------

    def seen(self) -> list[Seen]:
        self.check()
        with self._lock:
            return list(self._seen)

    def first(self, predicate: Callable[[Seen], bool]) -> Seen | None:
        """The earliest recorded version that satisfies `predicate`."""
        return next((s for s in self.seen() if predicate(s)), None)

    def uids_by_label(self, key: str) -> dict[str, set[str]]:
        """Every uid ever seen, grouped by the value of label `key` (objects without it: '')."""
        out: dict[str, set[str]] = {}
        for s in self.seen():
            value = (s.obj["metadata"].get("labels") or {}).get(key, "")
            out.setdefault(value, set()).add(s.uid)
        return out

    def names_by_uid(self) -> dict[str, str]:
        return {s.uid: s.name for s in self.seen()}

    def latest(self) -> dict[str, JSON]:
        """The last version of every object seen, by uid (deleted ones included)."""
        return {s.uid: s.obj for s in self.seen()}

    # -- the thread ------------------------------------------------------------------------

    def _record(self, kind: str, items: Iterator[JSON]) -> None:
        now = time.monotonic()
        with self._lock:
            self._seen.extend(Seen(now, kind, item) for item in items)

    def _relist(self) -> str:
        if self._raw:
            listed = json.loads(self._list(_preload_content=False).data)
        else:
            listed = self._sanitize(self._list())
        self._record("LIST", iter(listed.get("items") or []))
        self._listed.set()
        return str(listed["metadata"]["resourceVersion"])

    def _run(self) -> None:
        try:
            version = self._relist()
            while not self._stop.is_set():
                stream = watch.Watch()
                try:
                    for event in stream.stream(
                        self._list,
                        resource_version=version,
                        timeout_seconds=_WATCH_SECONDS,
                        allow_watch_bookmarks=True,
                        deserialize=not self._raw,
                    ):
                        if event["type"] == "ERROR":  # expired (410) as an event: list again
                            version = self._relist()
                            break
                        obj = event["object"] if self._raw else self._sanitize(event["object"])
                        version = obj["metadata"].get("resourceVersion") or version
                        if event["type"] in ("ADDED", "MODIFIED", "DELETED"):
                            self._record(event["type"], iter([obj]))
                        if self._stop.is_set():
                            break
                except ApiException as exc:
                    if exc.status == 410:
                        version = self._relist()
                    elif exc.status in _RETRIED:  # the API server is restarting (fault tests)
                        self._stop.wait(_RECONNECT_SECONDS)
                    else:
                        raise
                except (urllib3.exceptions.HTTPError, OSError):  # not answering: reconnect
                    self._stop.wait(_RECONNECT_SECONDS)
                finally:
                    stream.stop()
        except BaseException as exc:
            self._error = exc
            self._listed.set()
