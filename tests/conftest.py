"""Shared fixtures: the real cluster, S3 server and operator come from these plugins."""

pytest_plugins = [
    "tests.fixtures_cluster",
    "tests.fixtures_operator",
    "tests.fixtures_s3",
    "tests.fixtures_jobs",
]


def pytest_collection_finish(session: object) -> None:
    """Nothing collected may import the handlers: importing them fixes the resync timer's
    interval from the environment of that moment, before the operator fixtures set the tests'
    short resync (then every resync test waits a minute, and fails)."""
    import sys  # noqa: PLC0415 - only for this check

    assert "batchx.handlers.environment" not in sys.modules, (
        "a test module imports batchx.handlers at collection; import what it needs from a "
        "module outside the handlers package instead"
    )
