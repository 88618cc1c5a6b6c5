"""Where job Pods may run: the site's tolerations and node selector, added to every job Pod.

A cluster often keeps nodes for batch work behind a taint (and a label), so that nothing else
lands there; the operator's settings ``jobTolerations`` and ``jobNodeSelector`` let job Pods in.
The scale benchmark uses the same to put job Pods on KWOK's simulated nodes
(`benchmarks/bench_scale.py`). Kept apart from the Pod builder (`batchx.planning.job_pod`): a
site's placement is not a job's, and it is added on top of what the job itself asks for (a GPU
toleration, the ``gpuType`` node selector), never replacing it.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Placement", "place"]

JSON = dict[str, Any]


@dataclass(frozen=True)
class Placement:
    """The operator's ``jobTolerations`` and ``jobNodeSelector``."""

    tolerations: Sequence[Mapping[str, str]] = ()
    node_selector: Mapping[str, str] = field(default_factory=dict)


def place(pod: Mapping[str, Any], placement: Placement) -> JSON:
    """`pod` with the site's tolerations appended and its node selector merged in (a copy).

    A label the job itself selects on (the GPU product of ``spec.gpuType``) keeps the job's
    value: the job's own need wins over the site's default, and a conflicting pair would only
    leave the Pod unschedulable. A toleration already there is not repeated.
    """
    out = copy.deepcopy(dict(pod))
    if not placement.tolerations and not placement.node_selector:
        return out
    spec = out.setdefault("spec", {})
    tolerations = list(spec.get("tolerations") or [])
    for toleration in placement.tolerations:
        if dict(toleration) not in tolerations:
            tolerations.append(dict(toleration))
    if tolerations:
        spec["tolerations"] = tolerations
    selector = {**placement.node_selector, **(spec.get("nodeSelector") or {})}
    if selector:
        spec["nodeSelector"] = selector
    return out
