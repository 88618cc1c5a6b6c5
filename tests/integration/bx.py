"""Given/When/Then helpers for the BatchX integration tests (API reads, waits with deadlines)."""

from __future__ import annotations

import uuid
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from tests.helpers import eventually

GROUP, VERSION = "batchx.io", "v1alpha1"
JSON = dict[str, Any]


class Bx:
    """Typed-enough access to the BatchX objects of one test."""

    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self.custom = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)
        self.rbac = client.RbacAuthorizationV1Api(api)
        self.created_envs: list[str] = []

    # -- environments --------------------------------------------------------------------

    def create_environment(self, name: str | None = None, **spec: Any) -> str:
        name = name or f"env-{uuid.uuid4().hex[:8]}"
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Environment",
            "metadata": {"name": name},
            "spec": spec,
        }
        self.custom.create_cluster_custom_object(GROUP, VERSION, "environments", body)
        self.created_envs.append(name)
        return name

    def environment(self, name: str) -> JSON:
        result: JSON = self.custom.get_cluster_custom_object(GROUP, VERSION, "environments", name)
        return result

    def patch_environment(self, name: str, spec: JSON) -> None:
        self.custom.patch_cluster_custom_object(
            GROUP, VERSION, "environments", name, {"spec": spec}
        )

    def delete_environment(self, name: str) -> None:
        try:
            self.custom.delete_cluster_custom_object(GROUP, VERSION, "environments", name)
        except ApiException as exc:
            if exc.status != 404:
                raise

    def forget_environment(self, name: str) -> None:
        """Drop the operator's finalizer from an Environment (none may be left to drop it)."""
        unfinalized = {"metadata": {"finalizers": None}}
        try:
            self.custom.patch_cluster_custom_object(
                GROUP, VERSION, "environments", name, unfinalized
            )
        except ApiException as exc:
            if exc.status != 404:
                raise

    def clean_up(self) -> None:
        """Delete the Environments this helper created, their namespaces with them.

        Jobs carry the ledger's finalizer and Environments the operator's: once the test's
        operator has stopped nothing would remove them, and namespaces would stay Terminating.
        """
        for name in self.created_envs:
            self.delete_environment(name)
            if self.namespace_exists(name):
                self.forget_jobs(name)
            self.forget_environment(name)

    def wait_ready(
        self,
        name: str,
        status: str = "True",
        reason: str | None = None,
        generation: int | None = None,
        timeout: float = 60,
    ) -> JSON:
        def probe() -> JSON | None:
            env = self.environment(name)
            cond = condition(env, "Ready")
            if cond is None or cond["status"] != status:
                return None
            if reason is not None and cond["reason"] != reason:
                return None
            if generation is not None and cond.get("observedGeneration") != generation:
                return None
            return env

        return eventually(probe, timeout=timeout, what=f"Environment {name} Ready={status}")

    def namespace_exists(self, name: str) -> bool:
        try:
            self.core.read_namespace(name)
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True

    # -- images --------------------------------------------------------------------------

    def create_image(self, namespace: str, name: str, spec: JSON) -> JSON:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Image",
            "metadata": {"name": name},
            "spec": spec,
        }
        result: JSON = self.custom.create_namespaced_custom_object(
            GROUP, VERSION, namespace, "images", body
        )
        return result

    def image(self, namespace: str, name: str) -> JSON:
        result: JSON = self.custom.get_namespaced_custom_object(
            GROUP, VERSION, namespace, "images", name
        )
        return result

    def images(self, namespace: str, selector: str | None = None) -> list[JSON]:
        kwargs = {"label_selector": selector} if selector else {}
        result = self.custom.list_namespaced_custom_object(
            GROUP, VERSION, namespace, "images", **kwargs
        )
        return list(result["items"])

    def delete_image(self, namespace: str, name: str) -> None:
        self.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, "images", name)

    def wait_image(
        self, namespace: str, name: str, status: str, reason: str, timeout: float = 60
    ) -> JSON:
        def probe() -> JSON | None:
            image = self.image(namespace, name)
            cond = condition(image, "Ready")
            ok = cond is not None and (cond["status"], cond["reason"]) == (status, reason)
            return image if ok else None

        return eventually(
            probe, timeout=timeout, what=f"Image {namespace}/{name} Ready={status} {reason}"
        )

    # -- jobs ----------------------------------------------------------------------------

    def create_job(self, namespace: str, name: str) -> JSON:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Job",
            "metadata": {"name": name},
            # Identical jobs, each meant to be admitted: none waits for another's result.
            "spec": {"image": "tutorial/hello:1.0.0", "input": {}, "cache": False},
        }
        result: JSON = self.custom.create_namespaced_custom_object(
            GROUP, VERSION, namespace, "jobs", body
        )
        return result

    def set_job_status(self, namespace: str, name: str, status: JSON) -> None:
        self.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, "jobs", name, {"status": status}
        )

    def job(self, namespace: str, name: str) -> JSON:
        result: JSON = self.custom.get_namespaced_custom_object(
            GROUP, VERSION, namespace, "jobs", name
        )
        return result

    def jobs(self, namespace: str) -> list[JSON]:
        result = self.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "jobs")
        return list(result["items"])

    def forget_jobs(self, namespace: str) -> None:
        """Drop the ledger's finalizer from every Job of `namespace` (deleted or not)."""
        unfinalized = {"metadata": {"finalizers": None}}
        for job in self.jobs(namespace):
            try:
                self.custom.patch_namespaced_custom_object(
                    GROUP, VERSION, namespace, "jobs", job["metadata"]["name"], unfinalized
                )
            except ApiException as exc:
                if exc.status != 404:
                    raise

    # -- events --------------------------------------------------------------------------

    def event_reasons(self, namespace: str, name: str) -> list[tuple[str, str]]:
        events = self.core.list_namespaced_event(
            namespace, field_selector=f"involvedObject.name={name}"
        ).items
        return [(e.type, e.reason) for e in events]

    def wait_event(
        self, namespace: str, name: str, reason: str, type: str | None = None, timeout: float = 30
    ) -> None:
        def probe() -> bool:
            return any(
                r == reason and (type is None or t == type)
                for t, r in self.event_reasons(namespace, name)
            )

        eventually(probe, timeout=timeout, what=f"Event {reason} on {namespace}/{name}")

    # -- rbac ----------------------------------------------------------------------------

    def can(
        self,
        user: str,
        verb: str,
        resource: str,
        namespace: str | None,
        group: str = GROUP,
        *,
        name: str | None = None,
    ) -> bool:
        review = client.V1SubjectAccessReview(
            spec=client.V1SubjectAccessReviewSpec(
                user=user,
                resource_attributes=client.V1ResourceAttributes(
                    verb=verb, group=group, resource=resource, namespace=namespace, name=name
                ),
            )
        )
        result = client.AuthorizationV1Api(self.api).create_subject_access_review(review)
        return bool(result.status.allowed)


def condition(obj: JSON, type: str) -> JSON | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == type:
            return dict(cond)
    return None
