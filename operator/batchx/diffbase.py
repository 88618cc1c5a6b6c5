"""Kopf's diff base for BatchX objects, apart from the handlers.

Apart because importing `batchx.handlers` registers every handler and fixes the resync timer's
interval from the settings of that moment; this class is also used (and unit-tested) alone.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable

import kopf

from batchx.planning.labels import CACHE_KEY, FINISHED

OPERATOR_LABELS = frozenset({FINISHED, CACHE_KEY})


class DigestedDiffBase(kopf.AnnotationsDiffBaseStorage):
    """Kopf's last-handled configuration, with each large `spec` value kept as its digest.

    Kopf keeps an object's essence (its spec) in an annotation, and all annotations of an object
    share 256 KiB: a Job's input may itself be 256 KiB, and Kopf's patch then failed 422 at every
    pass (found by the malformed-resource corpus). The handlers are level-triggered and never
    read Kopf's diffs, so a digest tells that a value changed as well as the value would.
    """

    LARGE = 1024  # characters of compact JSON above which a spec value is kept as its digest

    def build(
        self, *, body: kopf.Body, extra_fields: Iterable[kopf.FieldSpec] | None = None
    ) -> kopf.BodyEssence:
        essence = super().build(body=body, extra_fields=extra_fields)
        # The finished labels are the operator's own record of a job's end, like its status:
        # left out, labelling a job is no change to Kopf (no diff base written again for it).
        meta = essence.get("metadata")
        if isinstance(meta, dict) and isinstance(meta.get("labels"), dict):
            labels = {k: v for k, v in meta["labels"].items() if k not in OPERATOR_LABELS}
            if labels:
                meta["labels"] = labels
            else:
                del meta["labels"]
            if not meta:
                del essence["metadata"]
        spec = essence.get("spec")
        if isinstance(spec, dict):
            for key, value in list(spec.items()):
                text = json.dumps(value, sort_keys=True, separators=(",", ":"))
                if len(text) > self.LARGE:
                    spec[key] = "sha256:" + hashlib.sha256(text.encode()).hexdigest()
        return essence
