"""Image planning: validity, coordinates, duplicates and the `latest` label of one environment.

All Images of a namespace (= environment) are planned together, because one image's verdict
depends on its siblings: the Image already accepted with given coordinates keeps them, otherwise
the oldest wins (ties broken by name, so the answer never depends on the order of events), and
``batchx.io/latest=true`` marks exactly the highest accepted version of each major of each base
name. Planning the whole set on every create, update, delete and resync keeps both true after
deletions, whatever order events arrive in.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from batchx.domain.coordinates import Coordinates, default_listing
from batchx.models import ConditionStatus, ImageStatus
from batchx.planning import labels
from batchx.planning.conditions import find_condition
from batchx.planning.events import involved
from batchx.planning.kstatus import READY, Progress, Standing, standard_conditions

JSON = dict[str, Any]
OUR_LABELS = (labels.BASE_NAME, labels.MAJOR, labels.VERSION, labels.LATEST, labels.PUBLIC)
_DIGEST = re.compile(r"@sha256:[a-f0-9]{64}$")


@dataclass(frozen=True)
class ManifestProblem:
    """Why a manifest is refused: the JSON path of the offending value and what is wrong."""

    path: str
    message: str


# (manifest, environment) -> its coordinates, or the problem that prevents them.
ManifestCheck = Callable[[JSON, str], "Coordinates | ManifestProblem"]


@dataclass(frozen=True)
class ImageObject:
    """An Image as read from the API, reduced to what planning needs."""

    name: str
    namespace: str
    uid: str
    generation: int
    created: str
    labels: dict[str, str]
    spec: JSON
    status: ImageStatus

    @classmethod
    def from_body(cls, body: JSON) -> ImageObject:
        meta = body.get("metadata") or {}
        return cls(
            name=str(meta["name"]),
            namespace=str(meta["namespace"]),
            uid=str(meta.get("uid", "")),
            generation=int(meta.get("generation") or 0),
            created=str(meta.get("creationTimestamp") or ""),
            labels=dict(meta.get("labels") or {}),
            spec=dict(body.get("spec") or {}),
            status=ImageStatus.model_validate(body.get("status") or {}),
        )

    @property
    def ref(self) -> JSON:
        """Enough of the object to post an Event about it."""
        return involved("Image", self.name, self.uid, self.namespace)


@dataclass(frozen=True)
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass(frozen=True)
class ImagePlan:
    """The writes for one image: a label patch and a status, each None when already true."""

    image: ImageObject
    labels: dict[str, str | None] | None
    status: ImageStatus | None
    events: tuple[Event, ...]


@dataclass(frozen=True)
class _Verdict:
    coordinates: Coordinates | None  # parsed from the manifest, even if the image is refused
    ready: bool
    reason: str
    message: str


def _progress(verdict: _Verdict) -> Progress:
    """An Image waiting for its Environment is accepted once it exists (GitOps applies both at
    once); any other refusal stands until the Image is replaced (its spec is immutable)."""
    if verdict.ready:
        return Progress.CURRENT
    return Progress.RECONCILING if verdict.reason == "EnvironmentNotFound" else Progress.STALLED


def is_pinned(reference: str) -> bool:
    return bool(_DIGEST.search(reference))


def _judge(
    image: ImageObject, check: ManifestCheck, allow_tags: bool, env_exists: bool
) -> _Verdict:
    if not env_exists:
        return _Verdict(
            None,
            False,
            "EnvironmentNotFound",
            f"namespace {image.namespace} is not the namespace of a ready Environment: create "
            f"the Environment {image.namespace} or import the image into an environment's "
            "namespace",
        )
    manifest = image.spec.get("manifest")
    result = (
        check(manifest, image.namespace)
        if isinstance(manifest, dict)
        else ManifestProblem("$.spec.manifest", "the manifest must be an object")
    )
    if isinstance(result, ManifestProblem):
        return _Verdict(None, False, "InvalidManifest", f"{result.path}: {result.message}")
    reference = str(image.spec.get("image", ""))
    if not allow_tags and not is_pinned(reference):
        return _Verdict(
            result,
            False,
            "ImageNotPinned",
            f"$.spec.image: {reference!r} is not pinned to a digest (name@sha256:<64 hex>); "
            "the operator is configured to refuse tags (allowTags: false)",
        )
    return _Verdict(result, True, "Accepted", f"coordinates {result}")


def _winners(
    candidates: Iterable[tuple[ImageObject, Coordinates]],
) -> dict[str, tuple[ImageObject, Coordinates]]:
    """For each coordinates string, the Image that owns them (see `_precedence`)."""
    best: dict[str, tuple[ImageObject, Coordinates]] = {}
    for image, coords in candidates:
        key = str(coords)
        current = best.get(key)
        if current is None or _precedence(image, key) < _precedence(current[0], key):
            best[key] = (image, coords)
    return best


def _precedence(image: ImageObject, coordinates: str) -> tuple[bool, str, str]:
    """Who owns `coordinates`: the Image already accepted with them, else the oldest, by name.

    creationTimestamp has one-second resolution, so a duplicate created within the same second
    as the accepted Image would win on its name alone; an owner is never displaced (jobs have
    resolved to it and `kubectl get` showed it Ready).
    """
    ready = find_condition(image.status.conditions, READY)
    owner = (
        image.status.coordinates == coordinates
        and ready is not None
        and ready.status is ConditionStatus.TRUE
    )
    return (not owner, image.created, image.name)


def desired_labels(image: ImageObject, coords: Coordinates | None, latest: bool) -> dict[str, str]:
    if coords is None:
        return {}
    out = {
        labels.BASE_NAME: labels.base_name_label(coords.name),
        labels.MAJOR: str(coords.version.major),
        labels.VERSION: str(coords.version),
    }
    if latest:
        out[labels.LATEST] = "true"
    if image.spec.get("public") is True:
        out[labels.PUBLIC] = "true"
    return out


def _label_patch(image: ImageObject, desired: dict[str, str]) -> dict[str, str | None] | None:
    patch: dict[str, str | None] = {k: v for k, v in desired.items() if image.labels.get(k) != v}
    patch.update({k: None for k in OUR_LABELS if k in image.labels and k not in desired})
    return patch or None


def plan_images(
    images: Iterable[ImageObject],
    *,
    check: ManifestCheck,
    allow_tags: bool,
    env_exists: bool,
    now: datetime,
) -> list[ImagePlan]:
    """Plans for every image of one namespace, in name order."""
    ordered = sorted(images, key=lambda i: i.name)
    verdicts = {i.name: _judge(i, check, allow_tags, env_exists) for i in ordered}
    owners = _winners(
        (i, v.coordinates)
        for i in ordered
        if (v := verdicts[i.name]).ready and v.coordinates is not None
    )
    latest = {str(c) for c in default_listing(c for _, c in owners.values())}
    plans = []
    for image in ordered:
        verdict = verdicts[image.name]
        coords = verdict.coordinates
        if verdict.ready and coords is not None and owners[str(coords)][0].name != image.name:
            verdict = _Verdict(
                coords,
                False,
                "DuplicateCoordinates",
                f"coordinates {coords} are already taken by Image {owners[str(coords)][0].name} "
                "(the older one wins); images are immutable: bump the manifest version",
            )
        is_latest = verdict.ready and str(coords) in latest
        plans.append(_plan_one(image, verdict, is_latest, now))
    return plans


def _plan_one(image: ImageObject, verdict: _Verdict, latest: bool, now: datetime) -> ImagePlan:
    coords = verdict.coordinates if verdict.ready else None
    message = verdict.message + (" (latest of its major version)" if latest else "")
    status = ImageStatus(
        coordinates=str(coords) if coords else None,
        base_name=str(coords.base_name) if coords else None,
        conditions=standard_conditions(
            image.status.conditions,
            Standing(_progress(verdict), verdict.reason, message),
            generation=image.generation,
            now=now,
        ),
        observed_generation=image.generation,
    )
    events: list[Event] = []
    previous = find_condition(image.status.conditions, READY)
    if previous is None or previous.reason != verdict.reason:
        events.append(
            Event("Normal" if verdict.ready else "Warning", verdict.reason, verdict.message)
        )
    was_latest = image.labels.get(labels.LATEST) == "true"
    if latest != was_latest:
        events.append(
            Event(
                "Normal",
                "Latest" if latest else "NotLatest",
                f"{coords or image.name} is {'now' if latest else 'no longer'} the latest "
                "version of its major",
            )
        )
    return ImagePlan(
        image=image,
        labels=_label_patch(image, desired_labels(image, verdict.coordinates, latest)),
        status=None if status.to_json() == image.status.to_json() else status,
        events=tuple(events),
    )
