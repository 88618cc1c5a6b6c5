"""Shared fixtures: the real cluster, S3 server and operator come from these plugins."""

pytest_plugins = [
    "tests.fixtures_cluster",
    "tests.fixtures_operator",
    "tests.fixtures_s3",
    "tests.fixtures_jobs",
]
