"""The member ClusterRoles: shipped next to the CRDs, identical to the operator's copy."""

from __future__ import annotations

from pathlib import Path

from batchx.rbac import ROLES_FILE, cluster_roles

REPO = Path(__file__).resolve().parents[2]


def test_crds_copy_has_not_drifted() -> None:
    package = (REPO / "operator" / "batchx" / "rbac" / ROLES_FILE).read_text()
    assert (REPO / "crds" / "batchx-roles.yaml").read_text() == package, (
        "cp operator/batchx/rbac/cluster-roles.yaml crds/batchx-roles.yaml"
    )


def test_roles_the_operator_binds_exist_and_aggregate() -> None:
    roles = {r["metadata"]["name"]: r for r in cluster_roles()}
    for role in ("admin", "member", "viewer"):
        selector = roles[f"batchx-{role}"]["aggregationRule"]["clusterRoleSelectors"][0]
        assert selector == {"matchLabels": {f"batchx.io/aggregate-to-{role}": "true"}}
    # viewer < member < admin: every rule holder a role selects is selected by the wider ones
    holders = [r for r in roles.values() if "aggregationRule" not in r]
    for holder in holders:
        labels = holder["metadata"]["labels"]
        if labels.get("batchx.io/aggregate-to-viewer") == "true":
            assert labels.get("batchx.io/aggregate-to-member") == "true"
        if labels.get("batchx.io/aggregate-to-member") == "true":
            assert labels.get("batchx.io/aggregate-to-admin") == "true"
