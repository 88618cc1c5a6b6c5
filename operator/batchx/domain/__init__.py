"""BatchX's rules as pure code: coordinates, versions, manifests, paths, input/output schemas.

Nothing here imports Kopf, the Kubernetes client or boto3; every function is unit-testable.
"""
