"""Synchronous Kubernetes API access for `batchx.client`: the user's side of the API.

The operator has its own asynchronous client (`batchx.clients.kube`, on Kopf's event loop); a
command line or a pipeline's container wants plain blocking calls, so this one is built on the
synchronous `kubernetes` package. Like the operator's it
- speaks plain JSON dicts (camelCase, as `kubectl get -o json` shows them);
- logs in with the user's kubeconfig (current context, or `context=`) or, inside a pod, with the
  pod's service account, and knows the namespace that context or pod is in;
- turns API errors into `batchx.client.errors`; a 403 names the verb, resource and namespace.

Watches are real watches (`?watch=true` from a resourceVersion), never polling loops.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import urllib3
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from batchx import GROUP, VERSION
from batchx.client.errors import ApiError, Conflict, Forbidden, NotFound, Unreachable
from batchx.planning.image import JSON

T = TypeVar("T")
FIELD_MANAGER = "bx"
_SA_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
_MERGE = "application/merge-patch+json"


class Kube:
    """API calls on the user's credentials. Create with `Kube.connect()`; `close()` after."""

    def __init__(
        self, api: client.ApiClient, namespace: str | None, *, in_cluster: bool = False
    ) -> None:
        self.api = api
        self.namespace = namespace  # the kubeconfig context's (or the pod's) namespace
        self.in_cluster = in_cluster  # logged in with the pod's service-account token
        self.custom = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)

    @classmethod
    def connect(cls, *, kubeconfig: str | None = None, context: str | None = None) -> Kube:
        """In a pod (and no kubeconfig given): its service account; else the kubeconfig."""
        configuration = client.Configuration()
        in_cluster = False
        try:
            if kubeconfig is None and context is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
                in_cluster = True
                config.load_incluster_config(client_configuration=configuration)
                namespace = _SA_NAMESPACE.read_text().strip() if _SA_NAMESPACE.exists() else None
            else:
                path = kubeconfig or os.environ.get("KUBECONFIG") or None
                config.load_kube_config(
                    config_file=path, context=context, client_configuration=configuration
                )
                _, active = config.list_kube_config_contexts(config_file=path)
                if context is not None:
                    contexts, _ = config.list_kube_config_contexts(config_file=path)
                    active = next((c for c in contexts if c["name"] == context), active)
                namespace = ((active or {}).get("context") or {}).get("namespace")
        except (config.ConfigException, OSError) as err:
            raise Unreachable(f"cannot load Kubernetes credentials: {err}") from None
        return cls(client.ApiClient(configuration), namespace, in_cluster=in_cluster)

    def close(self) -> None:
        self.api.close()

    def _call(
        self,
        verb: str,
        resource: str,
        namespace: str | None,
        fn: Callable[..., T],
        *args: Any,
        **kwargs: Any,
    ) -> T:
        try:
            return fn(*args, **kwargs)
        except ApiException as exc:
            raise _translate(exc, verb, resource, namespace) from None
        except urllib3.exceptions.HTTPError as exc:
            host = self.api.configuration.host
            raise Unreachable(f"cannot reach the Kubernetes API at {host}: {exc}") from None

    # -- the operator's files API (files.batchx.io, an aggregated API) -----------------------

    def files(
        self,
        method: str,
        verb: str,
        namespace: str,
        suffix: str = "",
        *,
        body: JSON | None = None,
        query: list[tuple[str, str]] | None = None,
    ) -> JSON:
        """One call of the files API (`batchx.client.files`); errors as for every call."""
        result: JSON = self._call(
            verb,
            "files.batchx.io/files",
            namespace,
            self.api.call_api,
            f"/apis/files.batchx.io/v1alpha1/namespaces/{namespace}/files{suffix}",
            method,
            query_params=query or [],
            body=body,
            header_params={"Content-Type": "application/json", "Accept": "application/json"},
            auth_settings=["BearerToken"],
            response_types_map={200: "object", 201: "object"},
            _return_http_data_only=True,
        )
        return result

    # -- batchx custom resources -------------------------------------------------------------

    def get(self, plural: str, namespace: str, name: str) -> JSON:
        result: JSON = self._call(
            "get",
            _res(plural),
            namespace,
            self.custom.get_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            plural,
            name,
        )
        return result

    def list(self, plural: str, namespace: str | None, selector: str | None = None) -> JSON:
        """The list object (`items`, `metadata.resourceVersion`); all namespaces when None."""
        kwargs: dict[str, Any] = {"label_selector": selector} if selector else {}
        if namespace is None:
            result: JSON = self._call(
                "list",
                _res(plural),
                None,
                self.custom.list_cluster_custom_object,
                GROUP,
                VERSION,
                plural,
                **kwargs,
            )
        else:
            result = self._call(
                "list",
                _res(plural),
                namespace,
                self.custom.list_namespaced_custom_object,
                GROUP,
                VERSION,
                namespace,
                plural,
                **kwargs,
            )
        return result

    def create(self, plural: str, namespace: str, body: JSON) -> JSON:
        result: JSON = self._call(
            "create",
            _res(plural),
            namespace,
            self.custom.create_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            plural,
            body,
            field_manager=FIELD_MANAGER,
        )
        return result

    def patch(self, plural: str, namespace: str, name: str, patch: JSON) -> JSON:
        """A JSON merge patch (RFC 7386) of a namespaced object."""
        result: JSON = self._call(
            "patch",
            _res(plural),
            namespace,
            self.custom.patch_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            plural,
            name,
            patch,
            field_manager=FIELD_MANAGER,
            _content_type=_MERGE,
        )
        return result

    def get_cluster(self, plural: str, name: str) -> JSON:
        result: JSON = self._call(
            "get",
            _res(plural),
            None,
            self.custom.get_cluster_custom_object,
            GROUP,
            VERSION,
            plural,
            name,
        )
        return result

    def watch(
        self,
        plural: str,
        namespace: str,
        resource_version: str,
        *,
        name: str | None = None,
        timeout: float | None = None,
    ) -> Iterator[tuple[str, JSON]]:
        """(event type, object) from `resource_version` on, until the server ends the watch.

        A watch whose resourceVersion is too old raises `ApiError` with status 410: list (or
        get) again and watch from there.
        """
        kwargs: dict[str, Any] = {"resource_version": resource_version}
        if name is not None:
            kwargs["field_selector"] = f"metadata.name={name}"
        if timeout is not None:
            kwargs["timeout_seconds"] = max(1, int(timeout + 0.999))
            kwargs["_request_timeout"] = timeout + 30  # the server ends it first, normally
        stream = watch.Watch().stream(
            self.custom.list_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            plural,
            **kwargs,
        )
        events = iter(stream)
        while True:
            event = self._call("watch", _res(plural), namespace, next, events, None)
            if event is None:
                return
            yield str(event["type"]), dict(event["raw_object"])

    # -- core --------------------------------------------------------------------------------

    def pod_log(
        self, namespace: str, pod: str, container: str, *, follow: bool = False
    ) -> Iterator[str]:
        """The container's log, line by line (until it exits, with `follow`)."""
        response = self._call(
            "get",
            "pods/log",
            namespace,
            self.core.read_namespaced_pod_log,
            pod,
            namespace,
            container=container,
            follow=follow,
            _preload_content=False,
        )
        try:
            pending = b""
            for chunk in response.stream(64 * 1024):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    yield line.decode("utf-8", "replace")
            if pending:
                yield pending.decode("utf-8", "replace")
        except urllib3.exceptions.HTTPError as exc:
            raise Unreachable(f"log stream of pod {pod} broke off: {exc}") from None
        finally:
            response.release_conn()


def _res(plural: str) -> str:
    return f"{plural}.{GROUP}"


def _translate(exc: ApiException, verb: str, resource: str, namespace: str | None) -> ApiError:
    message = str(exc.reason)
    try:
        body = json.loads(exc.body or "{}")
        message = str(body.get("message", message))
    except (TypeError, ValueError):
        pass
    status = int(exc.status or 0)
    if status == 403:
        return Forbidden(verb, resource, namespace, message)
    if status == 404:
        return NotFound(message)
    if status == 409:
        return Conflict(message)
    return ApiError(status, message)
