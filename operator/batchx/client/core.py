"""`Client`: BatchX for people and pipelines, on the Kubernetes API with the caller's identity.

Everything the `bx` verbs do with the cluster goes through here (and the CLI reaches the cluster
no other way), so a pipeline's container gets the same behaviour from Python:

    from batchx.client import Client
    bx = Client(env="lab")
    result = bx.run("examples/wordcount", {"text": "bx://texts/a.txt"}, memory=64)
    print(result.state, result.output)

- The environment is `env=`, else `$BATCHX_ENV`, else the namespace of the kubeconfig context
  (or of the pod): an Environment's namespace has its name.
- `submit` first runs the operator's own admission check on the Images the user can see, so a
  job the operator would refuse is refused here with the same message, and no Job is created.
- `wait` follows the Job with a watch from the resourceVersion it read (no polling), re-reading
  once when the watch expires (410), and reports each change of state.
- Created Jobs are named `<image name>-<8 random characters>`: readable and unique.
"""

from __future__ import annotations

import os
import secrets
import string
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from batchx import API_VERSION
from batchx.client.errors import (
    ApiError,
    Conflict,
    Forbidden,
    InvalidImageReference,
    NoEnvironment,
    NotFound,
    WaitTimeout,
)
from batchx.client.imports import MANIFEST_PATH, image_object, manifest_of
from batchx.client.kube import Kube
from batchx.client.oci import read_image
from batchx.client.results import EnvironmentInfo, ImageInfo, JobRef, JobResult, check_job
from batchx.domain.coordinates import (
    CoordinatesError,
    default_listing,
    parse_image_ref,
    resolve_ref,
)
from batchx.planning import labels
from batchx.planning.image import JSON
from batchx.planning.job_admission import ImageCandidate, Request, image_candidate
from batchx.planning.job_pod import pod_name
from batchx.planning.job_protocol import JOB_CONTAINER

__all__ = ["Client"]

_ALPHABET = string.ascii_lowercase + string.digits
_NAME_STEM = 40  # characters of the image name kept in a job's name
_IMAGE_READY_SECONDS = 30.0


class Client:
    """A BatchX session in one environment; `close()` it (or use `with Client() as bx:`)."""

    def __init__(
        self,
        env: str | None = None,
        *,
        kubeconfig: str | None = None,
        context: str | None = None,
        kube: Kube | None = None,
    ) -> None:
        self.kube = kube or Kube.connect(kubeconfig=kubeconfig, context=context)
        chosen = env or os.environ.get("BATCHX_ENV") or self.kube.namespace
        if not chosen:
            self.kube.close()
            raise NoEnvironment(
                "$.env",
                "no environment: pass -e/--env, set BATCHX_ENV, or set the kubeconfig "
                "context's namespace",
            )
        self.env = chosen

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self.kube.close()

    # -- jobs --------------------------------------------------------------------------------

    def check(self, image: str, input: Mapping[str, Any], **resources: Any) -> Request | None:
        """The admission the operator would make (see `check_job`), without submitting; None
        when the image is another environment's that the user may not list."""
        return self._check(_spec(image, input, **resources))

    def resolve(self, image: str) -> ImageCandidate | None:
        """The Image a job of this environment would run for `image` (None: unknown, or
        another environment's the user may not list)."""
        candidates = self._candidates(image)
        if candidates is None:
            return None
        ref = parse_image_ref(image)
        visible = [c for c in candidates if c.coordinates.environment == self.env or c.public]
        found = resolve_ref(ref, (c.coordinates for c in visible), self.env)
        return next((c for c in visible if c.coordinates == found), None)

    def _check(self, spec: JSON) -> Request | None:
        candidates = self._candidates(str(spec["image"]))
        if candidates is None:
            return None
        return check_job(spec, namespace=self.env, images=candidates)

    def submit(
        self,
        image: str,
        input: Mapping[str, Any],
        *,
        vcpus: int | None = None,
        memory: int | None = None,
        gpus: int | None = None,
        gpu_type: str | None = None,
        timeout: int | None = None,
        cache: bool = True,
        name: str | None = None,
    ) -> JobRef:
        """Check the job as the operator would, then create it; `Refused` if it is invalid."""
        spec = _spec(
            image,
            input,
            vcpus=vcpus,
            memory=memory,
            gpus=gpus,
            gpu_type=gpu_type,
            timeout=timeout,
            cache=cache,
        )
        self._check(spec)
        for attempt in range(3):
            job_name = name or _job_name(image)
            body = {
                "apiVersion": API_VERSION,
                "kind": "Job",
                "metadata": {"name": job_name, "namespace": self.env},
                "spec": spec,
            }
            try:
                created = self.kube.create("jobs", self.env, body)
            except Conflict:
                if name is not None or attempt == 2:
                    raise
                continue  # a random name was taken: draw another
            return JobRef(str(created["metadata"]["name"]), self.env)
        raise AssertionError("unreachable")

    def _ref(self, job: JobRef | str) -> JobRef:
        return job if isinstance(job, JobRef) else JobRef(job, self.env)

    def get(self, job: JobRef | str) -> JobResult:
        ref = self._ref(job)
        return JobResult.from_body(self.kube.get("jobs", ref.namespace, ref.name))

    def watch(self, job: JobRef | str, timeout: float | None = None) -> Iterator[JobResult]:
        """The job now, then each change of state or reason, until it is finished.

        Raises `WaitTimeout` after `timeout` seconds (the job keeps running) and `NotFound`
        if the job is deleted meanwhile.
        """
        ref = self._ref(job)
        deadline = None if timeout is None else time.monotonic() + timeout
        seen: list[tuple[object, ...]] = []

        def changed(body: JSON) -> JobResult | None:
            result = JobResult.from_body(body)
            key = (result.state, result.reason, result.message)
            if seen and seen[-1] == key:
                return None
            seen.append(key)
            return result

        body = self.kube.get("jobs", ref.namespace, ref.name)
        while True:
            if (result := changed(body)) is not None:
                yield result
            if JobResult.from_body(body).done:
                return
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise WaitTimeout(f"job {ref} is still {seen[-1][0] or 'SUBMITTED'}")
            version = str(body["metadata"]["resourceVersion"])
            try:
                # One stream for all the changes; it ends at the deadline (or when the server
                # closes it), then the loop above decides whether to watch on.
                for kind, obj in self.kube.watch(
                    "jobs", ref.namespace, version, name=ref.name, timeout=remaining
                ):
                    if kind == "DELETED":
                        raise NotFound(f"job {ref} was deleted")
                    if kind not in ("ADDED", "MODIFIED"):
                        continue  # BOOKMARK
                    body = obj
                    if (result := changed(body)) is not None:
                        yield result
                    if result is not None and result.done:
                        return
            except ApiError as err:
                if err.status != 410:
                    raise
                body = self.kube.get("jobs", ref.namespace, ref.name)  # expired: read again

    def wait(
        self,
        job: JobRef | str,
        timeout: float | None = None,
        on_change: Callable[[JobResult], None] | None = None,
    ) -> JobResult:
        """The finished job (any final state); `on_change` sees every state on the way."""
        result: JobResult | None = None
        for result in self.watch(job, timeout):
            if on_change is not None:
                on_change(result)
        assert result is not None
        return result

    def run(
        self,
        image: str,
        input: Mapping[str, Any],
        *,
        wait_timeout: float | None = None,
        on_change: Callable[[JobResult], None] | None = None,
        **options: Any,
    ) -> JobResult:
        """`submit` then `wait`: the finished job."""
        return self.wait(self.submit(image, input, **options), wait_timeout, on_change)

    def cancel(self, job: JobRef | str) -> JobResult:
        """Ask the operator to stop the job (spec.cancel); a finished job stays as it is."""
        ref = self._ref(job)
        body = self.kube.patch("jobs", ref.namespace, ref.name, {"spec": {"cancel": True}})
        return JobResult.from_body(body)

    def logs(self, job: JobRef | str, *, follow: bool = False) -> Iterator[str]:
        """The job container's log lines; with `follow`, waits for it to start and streams
        until it exits; for a job served from the cache, the log of the job it came from.
        `NotFound` for a job that never ran (refused, cancelled first)."""
        ref = self._ref(job)
        result = self.get(ref)
        if follow and not result.has_logs:
            for result in self.watch(ref):
                if result.has_logs or result.done:
                    break
        if result.done and result.status.cached and result.status.cached_from:
            # A served job never ran: its log is the run that computed its result (an entry is
            # never itself cached, so one step back is the run).
            ref = JobRef(result.status.cached_from, ref.namespace)
            result = self.get(ref)
        if not result.has_logs:
            state = result.state or "SUBMITTED"
            detail = f": {result.message}" if result.done and result.message else ""
            raise NotFound(f"job {ref} has no logs: it is {state} and never ran{detail}")
        pod = result.status.pod_name or pod_name(ref.name)
        yield from self.kube.pod_log(ref.namespace, pod, JOB_CONTAINER, follow=follow)

    def jobs(self, state: str | None = None) -> list[JobResult]:
        """The environment's jobs, oldest first (only those in `state`, if given)."""
        items = self.kube.list("jobs", self.env).get("items") or []
        results = sorted(map(JobResult.from_body, items), key=lambda r: (r.created, r.ref.name))
        return [r for r in results if state is None or r.state == state]

    def watch_jobs(self) -> Iterator[JobResult]:
        """Every job of the environment now, then each job as it changes (until interrupted).

        When the watch expires (410) the jobs are listed again and all reported, so no change
        in between is lost.
        """
        while True:
            listing = self.kube.list("jobs", self.env)
            yield from sorted(
                map(JobResult.from_body, listing.get("items") or []),
                key=lambda r: (r.created, r.ref.name),
            )
            version = str(listing["metadata"]["resourceVersion"])
            try:
                while True:  # each watch ends after 5 minutes; resume where it ended
                    for kind, obj in self.kube.watch("jobs", self.env, version, timeout=300):
                        version = str(obj.get("metadata", {}).get("resourceVersion") or version)
                        if kind in ("ADDED", "MODIFIED"):
                            yield JobResult.from_body(obj)
            except ApiError as err:
                if err.status != 410:
                    raise

    # -- images ------------------------------------------------------------------------------

    def _candidates(self, image: str) -> list[ImageCandidate] | None:
        """What a job of this environment may resolve `image` to, as far as the user can see.

        Another environment's public images are listed in that namespace only; if the user
        may not list them, the image is left for the operator to resolve (so it cannot be
        called unknown here).
        """
        try:
            ref = parse_image_ref(image)
        except CoordinatesError as err:
            raise InvalidImageReference("$.spec.image", err.reason) from None
        bodies = list(self.kube.list("images", self.env).get("items") or [])
        if ref.environment is not None and ref.environment != self.env:
            try:
                selector = f"{labels.PUBLIC}=true"
                bodies += self.kube.list("images", ref.environment, selector).get("items") or []
            except Forbidden:
                return None
        return [c for c in map(image_candidate, bodies) if c is not None]

    def images(self, all: bool = False) -> list[ImageInfo]:
        """The environment's Images: BatchX's default listing (the latest version of each major
        of each base name, accepted ones only), or with `all` every Image, refused ones too."""
        infos = [ImageInfo.from_body(b) for b in self.kube.list("images", self.env)["items"]]
        if all:
            return sorted(infos, key=lambda i: (i.coordinates is None, _order(i), i.name))
        accepted = {i.coordinates: i for i in infos if i.ready == "True" and i.coordinates}
        return [accepted[c] for c in default_listing(accepted)]

    def import_image(
        self,
        source: str,
        *,
        public: bool = False,
        manifest: Any = None,
        registry_url: str | None = None,
        wait: bool = True,
    ) -> tuple[ImageInfo, bool]:
        """Create the Image for a registry reference or OCI archive, pinned by digest.

        Returns the Image (accepted or refused by the operator, when `wait`) and whether it was
        created now (False: the same image was imported before). `InvalidManifest` when the
        image carries no valid manifest; `Conflict` when its coordinates are taken by another
        container image.
        """
        image = read_image(source, [MANIFEST_PATH], registry_url=registry_url)
        document = manifest_of(image, manifest)
        body = image_object(
            image,
            document,
            namespace=self.env,
            public=public,
            source=f"{source}:{MANIFEST_PATH}" if manifest is None else "--manifest",
        )
        name = body["metadata"]["name"]
        existing = self._existing(name)
        if existing is None:
            self.kube.create("images", self.env, body)
        elif existing.get("spec") != body["spec"]:
            raise Conflict(
                f"Image {self.env}/{name} exists with another spec (image "
                f"{existing.get('spec', {}).get('image')}): an imported version is immutable; "
                "bump the manifest's version"
            )
        if wait:
            return self._wait_image(name), existing is None
        info = ImageInfo.from_body(self.kube.get("images", self.env, name))
        return info, existing is None

    def _existing(self, name: str) -> JSON | None:
        try:
            return self.kube.get("images", self.env, name)
        except NotFound:
            return None

    def _wait_image(self, name: str) -> ImageInfo:
        """The Image once the operator has judged it (Ready True or False), or as it is then."""
        deadline = time.monotonic() + _IMAGE_READY_SECONDS
        body = self.kube.get("images", self.env, name)
        while ImageInfo.from_body(body).ready == "Unknown":
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            version = str(body["metadata"]["resourceVersion"])
            try:
                for kind, obj in self.kube.watch(
                    "images", self.env, version, name=name, timeout=remaining
                ):
                    if kind in ("ADDED", "MODIFIED"):
                        body = obj
                        break
                else:
                    break  # the watch ran out: report what there is
            except ApiError as err:
                if err.status != 410:
                    raise
                body = self.kube.get("images", self.env, name)
        return ImageInfo.from_body(body)

    # -- environments ------------------------------------------------------------------------

    def environments(self) -> list[EnvironmentInfo]:
        """The Environments the user may list; only this one if listing is not allowed."""
        try:
            bodies = self.kube.list("environments", None).get("items") or []
        except Forbidden:
            bodies = [self.kube.get_cluster("environments", self.env)]
        return sorted(map(EnvironmentInfo.from_body, bodies), key=lambda e: e.name)


def _spec(image: str, input: Mapping[str, Any], **resources: Any) -> JSON:
    names = {"gpu_type": "gpuType"}
    spec: JSON = {"image": image, "input": dict(input)}
    for key, value in resources.items():
        if value is not None and not (key == "cache" and value is True):
            spec[names.get(key, key)] = value
    return spec


def _job_name(image: str) -> str:
    """`<image name>-<8 random characters>`: `examples/wordcount:1.0.0` -> `wordcount-k3x9a0qz`."""
    base = image.split("@", 1)[-1].split(":", 1)[0].rsplit("/", 1)[-1].lower()
    stem = "".join(c if c.isalnum() else "-" for c in base)[:_NAME_STEM].strip("-") or "job"
    return f"{stem}-{''.join(secrets.choice(_ALPHABET) for _ in range(8))}"


def _order(info: ImageInfo) -> tuple[str, str, Any]:
    c = info.coordinates
    return ("", "", None) if c is None else c.sort_key()
