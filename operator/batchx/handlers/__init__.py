"""Kopf handlers: thin glue from Kopf's events to the reconcilers.

Importing this package registers every handler (`kopf run -m batchx.handlers`, or
`python -m batchx`, which imports it).
"""

from batchx.handlers import environment, image, job, ledger, setup

__all__ = ["environment", "image", "job", "ledger", "setup"]
