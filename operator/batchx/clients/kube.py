"""Asynchronous Kubernetes API access for the operator: the one module that imports a client.

Everything goes through `Kube`, which
- runs on kubernetes_asyncio, so no call blocks Kopf's event loop and every call is cancellable
  (a sync client in a thread pool keeps running after Kopf cancels a handler);
- limits the request rate (token bucket, `apiQps`/`apiBurst`) and the requests in flight
  (`apiConcurrency`), so a resync of thousands of objects cannot flood the API server; work
  marked `background()` (a restart's listing, resyncs) gets only the capacity nothing else wants;
- speaks plain JSON dicts (camelCase, as `kubectl get -o json` shows them), so the layers above
  depend on the API's shape, not on a client library's model classes;
- turns API errors into the small exception hierarchy below.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager, suppress
from contextvars import ContextVar
from typing import Any, TypeVar

import aiohttp  # kopf and kubernetes_asyncio are built on it
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from batchx import GROUP, VERSION, metrics

JSON = dict[str, Any]
T = TypeVar("T")

FIELD_MANAGER = "batchx-operator"
UNREACHABLE_BUDGET = 15.0  # seconds a call retries while the API server does not answer
_MERGE = "application/merge-patch+json"
_APPLY = "application/apply-patch+yaml"


class KubeError(Exception):
    """An API call failed; `status` is the HTTP status (0 when the server was not reached)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


class NotFound(KubeError):
    """404: the object does not exist."""


class Conflict(KubeError):
    """409: the object already exists, or it changed since it was read."""


class Forbidden(KubeError):
    """403: not allowed, e.g. creating in a namespace that is being deleted."""


class NamespaceTerminating(Forbidden):
    """403 for a write into a namespace that is being deleted (cause `NamespaceTerminating`)."""


class Invalid(KubeError):
    """422: the API server refused the object (schema, CEL rule, immutability)."""


class Unavailable(KubeError):
    """The API server did not answer (unreachable, 503, 429) within `UNREACHABLE_BUDGET`: a
    restart or an outage longer than the client rides out. Nothing was done; try again later."""


def _translate(exc: ApiException) -> KubeError:
    message = str(exc.reason)
    reason = str(exc.reason)
    causes: list[Any] = []
    try:
        body = json.loads(exc.body or "{}")
        message = str(body.get("message", message))
        reason = str(body.get("reason", reason))
        causes = (body.get("details") or {}).get("causes") or []
    except (TypeError, ValueError, AttributeError):
        pass
    kind: type[KubeError] = {403: Forbidden, 404: NotFound, 409: Conflict, 422: Invalid}.get(
        int(exc.status or 0), KubeError
    )
    if kind is Forbidden and any(
        isinstance(c, dict) and c.get("reason") == "NamespaceTerminating" for c in causes
    ):
        kind = NamespaceTerminating
    return kind(int(exc.status or 0), reason, message)


_BACKGROUND: ContextVar[bool] = ContextVar("batchx_kube_background", default=False)


@contextmanager
def background(on: bool = True) -> Iterator[None]:
    """The requests made inside go after every other waiting request (`RateLimiter`);
    ``background(False)``: as any other request again (an admission pass, whoever runs it).

    For work that re-checks what is already settled (the listing a restart brings, a resync):
    a restarted operator with a hundred running jobs re-reads each, hundreds of requests that
    would otherwise queue a new job's admission behind them for the rate limit's seconds.
    """
    token = _BACKGROUND.set(on)
    try:
        yield
    finally:
        _BACKGROUND.reset(token)


class RateLimiter:
    """Token bucket (`qps` sustained, `burst` at once) plus a bound on requests in flight.

    Tokens go first come, first served, except that a request made in `background()` waits
    while any other one waits: background work takes only the capacity nothing else wants.
    """

    def __init__(self, qps: float, burst: int, concurrency: int) -> None:
        self._qps = qps
        self._burst = float(burst)
        self._tokens = float(burst)
        self._stamp = time.monotonic()
        self._lock = asyncio.Lock()
        self._in_flight = asyncio.Semaphore(concurrency)
        self._waiting = 0  # requests not in background waiting for a token
        self._clear = asyncio.Event()  # set while none waits
        self._clear.set()

    def _refill(self) -> None:
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._qps)
        self._stamp = now

    async def _take(self) -> None:
        self._waiting += 1
        self._clear.clear()
        try:
            async with self._lock:
                while True:
                    self._refill()
                    if self._tokens >= 1:
                        self._tokens -= 1
                        return
                    # Waiting for the next token under the lock keeps the order first come,
                    # first served.
                    await asyncio.sleep((1 - self._tokens) / self._qps)
        finally:
            self._waiting -= 1
            if not self._waiting:
                self._clear.set()

    async def _take_in_background(self) -> None:
        while True:
            await self._clear.wait()
            async with self._lock:
                if self._waiting:
                    continue  # another request came first: it goes first
                self._refill()
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                delay = (1 - self._tokens) / self._qps
            await asyncio.sleep(delay)  # outside the lock: a request that comes meanwhile wins

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one request slot: wait for a token, then for room in flight."""
        await (self._take_in_background() if _BACKGROUND.get() else self._take())
        async with self._in_flight:
            yield


class Kube:
    """The operator's API client. Create with `Kube.connect()`, close with `close()`."""

    def __init__(self, api: client.ApiClient, limiter: RateLimiter) -> None:
        self._api = api
        self._limiter = limiter
        self.core = client.CoreV1Api(api)
        self.rbac = client.RbacAuthorizationV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.authorization = client.AuthorizationV1Api(api)

    @classmethod
    async def connect(
        cls,
        *,
        kubeconfig: str | None = None,
        qps: float = 20.0,
        burst: int = 40,
        concurrency: int = 10,
    ) -> Kube:
        """Log in in-cluster (service account) or from a kubeconfig file ($KUBECONFIG)."""
        configuration = client.Configuration()
        if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
            config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        else:
            await config.load_kube_config(
                config_file=kubeconfig or os.environ.get("KUBECONFIG"),
                client_configuration=configuration,
                persist_config=False,
            )
        configuration.connection_pool_maxsize = concurrency
        return cls(client.ApiClient(configuration), RateLimiter(qps, burst, concurrency))

    async def close(self) -> None:
        await self._api.close()

    async def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        deadline = time.monotonic() + UNREACHABLE_BUDGET
        delay = 0.2
        while True:
            async with self._limiter.slot():
                try:
                    result = await fn(*args, **kwargs)
                    break
                except ApiException as exc:
                    error: KubeError = _translate(exc)
                    # Not ready yet (503), or "storage is (re)initializing" (429) from an API
                    # server that just started: the request did nothing.
                    retry = error.status in (429, 503)
                except aiohttp.ClientConnectorError as exc:  # never sent: safe to send again
                    error, retry = KubeError(0, "Unreachable", str(exc)), True
                except aiohttp.ServerDisconnectedError as exc:
                    # A kept-alive connection the API server had closed (idle, or going down):
                    # sent again, as Kopf's own client does. A create that did land is then
                    # answered AlreadyExists, which every creator here handles (an Event then
                    # counts one more).
                    error, retry = KubeError(0, "Unreachable", str(exc) or "disconnected"), True
            if error.status != 404:  # absence is an answer (most reads expect it at times)
                metrics.API_ERRORS.labels(str(error.status)).inc()
            if not retry:
                raise error
            if time.monotonic() + delay > deadline:
                raise Unavailable(error.status, error.reason, error.message) from error
            metrics.API_RETRIES.inc()
            # An API server restarting (an upgrade, a fault) answers again within seconds:
            # ride it out here instead of failing the handler with a traceback.
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
        if isinstance(result, dict) or result is None:
            return result
        # Typed models (core/rbac APIs) back to the wire format: camelCase JSON.
        return self._api.sanitize_for_serialization(result)

    # -- shapes every object call takes ------------------------------------------------------

    async def _get(self, fn: Callable[..., Any], *args: Any) -> JSON | None:
        """A read that answers None for a missing object."""
        try:
            result: JSON = await self._call(fn, *args)
        except NotFound:
            return None
        return result

    async def _create(self, fn: Callable[..., Any], body: JSON) -> JSON:
        args = (body["metadata"]["namespace"],) if "namespace" in body["metadata"] else ()
        result: JSON = await self._call(fn, *args, body, field_manager=FIELD_MANAGER)
        return result

    async def _apply(self, fn: Callable[..., Any], body: JSON) -> JSON:
        """Server-side apply of the fields this operator manages, taking them over if needed."""
        meta = body["metadata"]
        args = (meta["name"], meta["namespace"]) if "namespace" in meta else (meta["name"],)
        result: JSON = await self._call(
            fn, *args, body, field_manager=FIELD_MANAGER, force=True, _content_type=_APPLY
        )
        return result

    async def _delete(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """A delete that is done when the object is already gone."""
        with suppress(NotFound):
            await self._call(fn, *args, **kwargs)

    async def _items(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> list[JSON]:
        result: JSON = await self._call(fn, *args, **kwargs)
        items: list[JSON] = result.get("items") or []
        return items

    # -- core --------------------------------------------------------------------------------

    async def get_namespace(self, name: str) -> JSON | None:
        return await self._get(self.core.read_namespace, name)

    async def create_namespace(self, body: JSON) -> JSON:
        return await self._create(self.core.create_namespace, body)

    async def apply_namespace(self, body: JSON) -> JSON:
        """Server-side apply of the fields we manage (labels, owner reference)."""
        return await self._apply(self.core.patch_namespace, body)

    async def apply_resource_quota(self, body: JSON) -> JSON:
        return await self._apply(self.core.patch_namespaced_resource_quota, body)

    async def get_resource_quota(self, namespace: str, name: str) -> JSON | None:
        return await self._get(self.core.read_namespaced_resource_quota, name, namespace)

    async def delete_resource_quota(self, namespace: str, name: str) -> None:
        await self._delete(self.core.delete_namespaced_resource_quota, name, namespace)

    async def list_config_maps(self, namespace: str, selector: str) -> list[JSON]:
        return await self._items(
            self.core.list_namespaced_config_map, namespace, label_selector=selector
        )

    async def create_config_map(self, body: JSON) -> JSON:
        return await self._create(self.core.create_namespaced_config_map, body)

    async def get_config_map(self, namespace: str, name: str) -> JSON | None:
        return await self._get(self.core.read_namespaced_config_map, name, namespace)

    async def get_secret(self, namespace: str, name: str) -> JSON | None:
        return await self._get(self.core.read_namespaced_secret, name, namespace)

    async def apply_secret(self, body: JSON) -> JSON:
        return await self._apply(self.core.patch_namespaced_secret, body)

    async def delete_secret(self, namespace: str, name: str) -> None:
        await self._delete(self.core.delete_namespaced_secret, name, namespace)

    async def get_pod(self, namespace: str, name: str) -> JSON | None:
        return await self._get(self.core.read_namespaced_pod, name, namespace)

    async def create_pod(self, body: JSON) -> JSON:
        return await self._create(self.core.create_namespaced_pod, body)

    async def delete_pod(self, namespace: str, name: str, grace_seconds: int | None = None) -> None:
        kwargs: dict[str, Any] = {}
        if grace_seconds is not None:
            kwargs["grace_period_seconds"] = grace_seconds
        await self._delete(self.core.delete_namespaced_pod, name, namespace, **kwargs)

    async def review_access(self, body: JSON) -> JSON:
        """Create a SubjectAccessReview; its `status` says whether the subject may act."""
        result: JSON = await self._call(self.authorization.create_subject_access_review, body)
        return result

    async def record_event(self, body: JSON) -> None:
        """Create the Event `body`, or count one more of it when an Event of its name exists.

        Event names are functions of what they say (`batchx.planning.events.event_name`), so
        the same news posted again is aggregated, as client-go's EventCorrelator does:
        `count` goes up and `lastTimestamp` moves, and `kubectl describe` shows "(x2 over 5s)".
        """
        meta = body["metadata"]
        try:
            await self._create(self.core.create_namespaced_event, body)
            return
        except Conflict:
            pass
        seen = await self._get(self.core.read_namespaced_event, meta["name"], meta["namespace"])
        if seen is None:  # expired between the two calls (Events live one hour): post it again
            await self._create(self.core.create_namespaced_event, body)
            return
        again = {"count": int(seen.get("count") or 1) + 1, "lastTimestamp": body["lastTimestamp"]}
        await self._call(
            self.core.patch_namespaced_event,
            meta["name"],
            meta["namespace"],
            again,
            _content_type=_MERGE,
        )

    async def list_nodes(self, selector: str | None = None) -> list[JSON]:
        kwargs: dict[str, Any] = {"label_selector": selector} if selector else {}
        return await self._items(self.core.list_node, **kwargs)

    async def apply_service_account(self, body: JSON) -> JSON:
        return await self._apply(self.core.patch_namespaced_service_account, body)

    async def delete_service_account(self, namespace: str, name: str) -> None:
        await self._delete(self.core.delete_namespaced_service_account, name, namespace)

    # -- rbac --------------------------------------------------------------------------------

    async def list_role_bindings(self, namespace: str, selector: str) -> list[JSON]:
        return await self._items(
            self.rbac.list_namespaced_role_binding, namespace, label_selector=selector
        )

    async def apply_role_binding(self, body: JSON) -> JSON:
        return await self._apply(self.rbac.patch_namespaced_role_binding, body)

    async def delete_role_binding(self, namespace: str, name: str) -> None:
        await self._delete(self.rbac.delete_namespaced_role_binding, name, namespace)

    async def get_cluster_role(self, name: str) -> JSON | None:
        return await self._get(self.rbac.read_cluster_role, name)

    async def apply_cluster_role(self, body: JSON) -> JSON:
        return await self._apply(self.rbac.patch_cluster_role, body)

    async def get_cluster_role_binding(self, name: str) -> JSON | None:
        return await self._get(self.rbac.read_cluster_role_binding, name)

    async def apply_cluster_role_binding(self, body: JSON) -> JSON:
        return await self._apply(self.rbac.patch_cluster_role_binding, body)

    # -- batchx custom resources ---------------------------------------------------------------

    async def get_cluster_object(self, plural: str, name: str) -> JSON | None:
        return await self._get(self.custom.get_cluster_custom_object, GROUP, VERSION, plural, name)

    async def get_object(self, plural: str, namespace: str, name: str) -> JSON | None:
        return await self._get(
            self.custom.get_namespaced_custom_object, GROUP, VERSION, namespace, plural, name
        )

    async def list_all_namespaces(self, plural: str, selector: str | None = None) -> list[JSON]:
        kwargs: dict[str, Any] = {"label_selector": selector} if selector else {}
        return await self._items(
            self.custom.list_cluster_custom_object, GROUP, VERSION, plural, **kwargs
        )

    async def list_objects(
        self, plural: str, namespace: str, selector: str | None = None
    ) -> list[JSON]:
        kwargs: dict[str, Any] = {"label_selector": selector} if selector else {}
        return await self._items(
            self.custom.list_namespaced_custom_object, GROUP, VERSION, namespace, plural, **kwargs
        )

    async def patch_cluster_status(self, plural: str, name: str, status: JSON) -> JSON:
        """Merge-patch `status` (the status subresource) of a cluster-scoped object."""
        result: JSON = await self._call(
            self.custom.patch_cluster_custom_object_status,
            GROUP,
            VERSION,
            plural,
            name,
            {"status": status},
            _content_type=_MERGE,
        )
        return result

    async def patch_status(
        self,
        plural: str,
        namespace: str,
        name: str,
        status: JSON,
        resource_version: str | None = None,
    ) -> JSON:
        """Merge-patch `status` (the status subresource) of a namespaced object.

        With `resource_version`, the write succeeds only if the object is still at that version
        (Conflict otherwise): a decision made from a read is never applied to a newer object.
        """
        body: JSON = {"status": status}
        if resource_version is not None:
            body["metadata"] = {"resourceVersion": resource_version}
        result: JSON = await self._call(
            self.custom.patch_namespaced_custom_object_status,
            GROUP,
            VERSION,
            namespace,
            plural,
            name,
            body,
            _content_type=_MERGE,
        )
        return result

    async def patch_spec(self, plural: str, namespace: str, name: str, spec: JSON) -> JSON:
        """Merge-patch `spec` of a namespaced object (e.g. a Job's cancel)."""
        result: JSON = await self._call(
            self.custom.patch_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            plural,
            name,
            {"spec": spec},
            _content_type=_MERGE,
        )
        return result

    async def patch_labels(
        self,
        plural: str,
        namespace: str,
        name: str,
        labels: Mapping[str, str | None],
        uid: str | None = None,
    ) -> JSON:
        """Merge-patch labels of a namespaced object (None removes a label); with `uid`, only
        that object's (another of the same name is refused: its uid cannot change)."""
        meta: JSON = {"labels": dict(labels)}
        if uid:
            meta["uid"] = uid
        result: JSON = await self._call(
            self.custom.patch_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            plural,
            name,
            {"metadata": meta},
            _content_type=_MERGE,
        )
        return result
