"""Shared fixtures: the real cluster and the real S3 server come from the plugins below."""

pytest_plugins = ["tests.fixtures_cluster"]
