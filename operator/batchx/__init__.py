"""BatchX on Kubernetes: versioned tool images run as Jobs inside budgeted Environments."""

__version__ = "0.1.0"

GROUP = "batchx.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
