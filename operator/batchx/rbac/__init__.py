"""The ClusterRoles Environment members are bound to (batchx-admin, batchx-member,
batchx-viewer) and pipeline jobs' identities to (batchx-pipeline), with the admission policy for
pipelines' children, kept as YAML next to the code that binds them."""

from __future__ import annotations

from importlib import resources
from typing import Any

import yaml

ROLES_FILE = "cluster-roles.yaml"
# The API server's rule for pipelines' children (batchx.planning.job_identity).
POLICY_FILE = "pipeline-policy.yaml"


def cluster_roles() -> list[dict[str, Any]]:
    """The ClusterRole manifests, for crdgen, the Helm chart and the test bed to apply."""
    text = resources.files(__package__).joinpath(ROLES_FILE).read_text()
    return [doc for doc in yaml.safe_load_all(text) if doc]


def pipeline_policy() -> list[dict[str, Any]]:
    """The ValidatingAdmissionPolicies (pipelines' children, then the finished label) and their
    bindings, for the test bed to apply."""
    text = resources.files(__package__).joinpath(POLICY_FILE).read_text()
    return [doc for doc in yaml.safe_load_all(text) if doc]
