"""Fixtures of the unit tests: a local-directory store (the embedded mode) per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from batchx.store import EnvFiles, Store, open_store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A fresh store in the test's folder; a lease held by a crashed writer is waited 0.5 s."""
    with open_store(f"file://{tmp_path / 'store'}", lease_wait=0.5) as opened:
        yield opened


@pytest.fixture
def files(store: Store) -> EnvFiles:
    """The files of the environment `lab` in `store`."""
    return store.env("lab")
