"""A job's own Kubernetes identity: a per-job ServiceAccount, its RoleBinding, and the token.

Job pods run with no service-account token (``automountServiceAccountToken: false``): the
user's image is untrusted. A job that must call the API (a pipeline creating its children,
`batchx.planning.pipeline`) gets an identity of its own, planned here and reusable by any other
kind of job that needs one (an `Identity` names the prefix and the role):

- a **ServiceAccount** ``<prefix><job name>`` in the job's namespace, owned by the Job (it goes
  with it) and deleted by the operator when the job ends: tokens bound to it stop validating
  (the API server checks that a token's ServiceAccount still exists with the same uid; it
  caches a success for 10 s), whatever their expiry;
- a **RoleBinding** of the same name, owned by the Job, that grants a fixed ClusterRole shipped
  with the CRDs (``crds/batchx-roles.yaml``) *in the job's namespace only*. A shared ClusterRole
  rather than a Role per job: RBAC lets a subject create a Role only with rights it holds itself,
  so per-job Roles would need the operator to create Jobs; binding needs only ``bind`` on that
  one role (``resourceNames``), and there is one definition of the rights to audit;
- the token, a **projected volume** in the job container alone (the runner containers and every
  other job get none): a ``serviceAccountToken`` the kubelet mints and rotates, valid for
  `TOKEN_SECONDS` (the least the API allows) and bound to the pod, with the cluster's CA
  (``kube-root-ca.crt``) and the namespace next to it, at the standard in-cluster path, so any
  Kubernetes client (``batchx.client``) finds it by itself. Its audience is the API server's
  own (none given): a custom audience is refused by the API server unless it is configured in
  ``--api-audiences``, and this token is for the API server only.

The pipeline's rights (ClusterRole ``batchx-pipeline``): create, get, list, watch and patch
(cancel) ``jobs.batchx.io``; nothing else (no Secrets, Pods, Images, other namespaces). The
Jobs it creates must name it as parent: enforced by the API server (the
ValidatingAdmissionPolicy ``batchx-pipeline-children``, which derives the parent from the
ServiceAccount name), and checked again by the operator's admission (its uid).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from batchx import API_VERSION
from batchx.planning import labels

__all__ = [
    "PIPELINE",
    "TOKEN_DIR",
    "TOKEN_SECONDS",
    "Identity",
    "JobOwner",
]

JSON = dict[str, Any]
# Where in-cluster clients look for the token, the CA and the namespace.
TOKEN_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
TOKEN_SECONDS = 600  # the minimum expirationSeconds; the kubelet refreshes it at 80 %
_VOLUME = "bx-identity"
NAME_MAX = 253


@dataclass(frozen=True)
class JobOwner:
    """The Job an identity belongs to."""

    name: str
    namespace: str
    uid: str


@dataclass(frozen=True)
class Identity:
    """One kind of job identity: its name prefix and the ClusterRole it is bound to."""

    prefix: str
    cluster_role: str

    def name(self, job_name: str) -> str:
        """``<prefix><job name>``; the job's name must leave room (`fits`)."""
        return self.prefix + job_name

    def fits(self, job_name: str) -> bool:
        return len(self.name(job_name)) <= NAME_MAX

    def service_account(self, job: JobOwner) -> JSON:
        return {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": self._meta(job),
            # Only the projected volume of the one container that needs it carries a token.
            "automountServiceAccountToken": False,
        }

    def role_binding(self, job: JobOwner) -> JSON:
        return {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": self._meta(job),
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": self.cluster_role,
            },
            "subjects": [
                {"kind": "ServiceAccount", "name": self.name(job.name), "namespace": job.namespace}
            ],
        }

    def with_token(self, pod: JSON, job: JobOwner, container: str) -> JSON:
        """`pod` (as planned) running as this identity, its token in `container` only."""
        spec = dict(pod["spec"])
        spec["serviceAccountName"] = self.name(job.name)
        spec["volumes"] = [*spec.get("volumes", []), _token_volume()]
        spec["containers"] = [
            {
                **c,
                "volumeMounts": [
                    *c.get("volumeMounts", []),
                    {"name": _VOLUME, "mountPath": TOKEN_DIR, "readOnly": True},
                ],
            }
            if c["name"] == container
            else c
            for c in spec["containers"]
        ]
        return {**pod, "spec": spec}

    def _meta(self, job: JobOwner) -> JSON:
        return {
            "name": self.name(job.name),
            "namespace": job.namespace,
            # Not the environment's child labels (MANAGED_BY + ENVIRONMENT): the Environment's
            # reconcile deletes every RoleBinding with those that is not a member's.
            "labels": {labels.MANAGED_BY: labels.MANAGED_BY_VALUE, labels.LEDGER_JOB: job.name},
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": "Job",
                    "name": job.name,
                    "uid": job.uid,
                    "blockOwnerDeletion": True,
                }
            ],
        }


def _token_volume() -> JSON:
    return {
        "name": _VOLUME,
        "projected": {
            "sources": [
                {"serviceAccountToken": {"path": "token", "expirationSeconds": TOKEN_SECONDS}},
                {
                    "configMap": {
                        "name": "kube-root-ca.crt",
                        "items": [{"key": "ca.crt", "path": "ca.crt"}],
                    }
                },
                {
                    "downwardAPI": {
                        "items": [
                            {"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}
                        ]
                    }
                },
            ],
        },
    }


# The pipeline's identity: the VAP in crds/batchx-pipeline-policy.yaml reads the parent's name
# from the ServiceAccount name after this prefix; keep the two in step.
PIPELINE = Identity(prefix="bx-pipeline-", cluster_role="batchx-pipeline")
