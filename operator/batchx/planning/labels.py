"""Label and annotation keys the operator sets, and the rules for their values.

Selectors users can rely on (documented in the README):

- ``batchx.io/latest=true``: the highest version of each major of each base name
  (``kubectl get bximg -l batchx.io/latest=true`` is BatchX's default image listing);
- ``batchx.io/base-name=<value of base_name_label(name)>``: every version of one base name
  (``kubectl delete bximg -l batchx.io/base-name=tutorial.hello-world`` deletes them all);
- ``batchx.io/major=<major>`` and ``batchx.io/version=<x.y.z>`` on each valid image;
- ``batchx.io/public=true`` on images other environments may run;
- ``batchx.io/finished=<state>`` on a finished Job (``kubectl get bxjob -l '!batchx.io/finished'``
  lists the unfinished ones), and ``batchx.io/cache-key=<hex>`` on a finished Job whose admission
  computed a cache key (`cache_key_label`).
"""

from __future__ import annotations

import hashlib
import re

MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "batchx-operator"
ENVIRONMENT = "batchx.io/environment"
LATEST = "batchx.io/latest"
BASE_NAME = "batchx.io/base-name"
MAJOR = "batchx.io/major"
VERSION = "batchx.io/version"
PUBLIC = "batchx.io/public"
LEDGER = "batchx.io/ledger"
LEDGER_JOB = "batchx.io/job"
# On a child Job of a pipeline: its parent Job's name (required by the API server's policy for a
# pipeline identity's Jobs, batchx.planning.pipeline); `kubectl get bxjob -l batchx.io/parent=P`.
PARENT = "batchx.io/parent"
# On a finished Job: its final state. Set by the operator only once the final status (and the
# charge record of a charged job) is stored, never on an unfinished Job (the API server's policy
# refuses it). Admission passes and the ledger list only `UNFINISHED` jobs, so finished ones cost
# them nothing; the cache finds its entries by `CACHE_KEY` (batchx.planning.finished).
FINISHED = "batchx.io/finished"
UNFINISHED = f"!{FINISHED}"
CACHE_KEY = "batchx.io/cache-key"
# The GPU product of a node (NVIDIA's GPU feature discovery sets it): what spec.gpuType selects.
GPU_PRODUCT = "nvidia.com/gpu.product"

_READABLE_NAME = re.compile(
    r"^[A-Za-z0-9]([A-Za-z0-9_-]*[A-Za-z0-9])?(/[A-Za-z0-9]([A-Za-z0-9_-]*[A-Za-z0-9])?)*$"
)
_LABEL_VALUE_MAX = 63


def base_name_label(name: str) -> str:
    """The ``batchx.io/base-name`` value of an image name: readable and injective.

    Label values cannot hold ``/`` or ``@``, and the namespace already is the environment, so the
    value is the manifest name with ``/`` written as ``.`` (``tutorial/hello-world`` ->
    ``tutorial.hello-world``). That is reversible only for names without dots, so any other name
    (dots, other characters, or longer than a label value) becomes ``h..<sha256 prefix>``,
    which no readable value can be: ``..`` would need an empty path segment.
    """
    if _READABLE_NAME.match(name) and len(name) <= _LABEL_VALUE_MAX:
        return name.replace("/", ".")
    return "h.." + hashlib.sha256(name.encode()).hexdigest()[:40]


def cache_key_label(key: str) -> str:
    """The ``batchx.io/cache-key`` value of a cache key ``sha256:<hex>``: its first 63 hex digits
    (a label value holds 63 characters, no colon). A match is only a candidate: the full key in
    ``status.admission.cacheKey`` is compared before a job is served."""
    return key.removeprefix("sha256:")[:_LABEL_VALUE_MAX]
