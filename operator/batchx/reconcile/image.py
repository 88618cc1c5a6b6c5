"""Image reconcile: plan all Images of one namespace together and write labels and statuses."""

from __future__ import annotations

from datetime import UTC, datetime

from batchx import metrics
from batchx.clients.kube import NotFound
from batchx.planning.image import ImageObject, plan_images
from batchx.planning.manifest import check_manifest
from batchx.reconcile.context import Context, Notice, Outcome

PLURAL = "images"


async def reconcile_images(ctx: Context, namespace: str) -> Outcome:
    """Recompute validity, duplicates and `latest` for every Image of `namespace`.

    Called for any create, update, resume or deletion of an Image in the namespace, and on each
    resync of its Environment; serialised per namespace so that the last run sees every change.
    """
    async with ctx.locks.hold(f"images/{namespace}"):
        with metrics.timed("images"):
            return await _reconcile(ctx, namespace)


async def _reconcile(ctx: Context, namespace: str) -> Outcome:
    environment = await ctx.kube.get_cluster_object("environments", namespace)
    bodies = await ctx.kube.list_objects(PLURAL, namespace)
    images = [
        ImageObject.from_body(b)
        for b in bodies
        # An Image being deleted no longer holds its coordinates or the latest label.
        if not b.get("metadata", {}).get("deletionTimestamp")
    ]
    plans = plan_images(
        images,
        check=check_manifest,
        allow_tags=ctx.settings.allow_tags,
        # The Environment must exist *and* own the namespace (not a NamespaceConflict).
        env_exists=((environment or {}).get("status") or {}).get("namespace") == namespace,
        now=datetime.now(UTC),
    )
    outcome = Outcome()
    for p in plans:
        try:
            if p.labels is not None:
                await ctx.kube.patch_labels(PLURAL, namespace, p.image.name, p.labels)
            if p.status is not None:
                await ctx.kube.patch_status(
                    PLURAL, namespace, p.image.name, _status_patch(p.status.to_json())
                )
        except NotFound:
            continue  # deleted while we planned; its deletion triggers another run
        outcome.notices.extend(Notice(p.image.ref, e.type, e.reason, e.message) for e in p.events)
    return outcome


def _status_patch(status: dict[str, object]) -> dict[str, object]:
    # Merge patch: a key left out keeps its old value, so clear what is no longer true.
    return {"coordinates": None, "baseName": None, **status}
