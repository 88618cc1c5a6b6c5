"""Shared fixtures: the real cluster, the real S3 server and the operator come from these plugins."""

pytest_plugins = [
    "tests.fixtures_cluster",
    "tests.fixtures_operator",
    "tests.fixtures_s3",
]
