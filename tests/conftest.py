"""Shared pytest configuration: fixtures live in ``tests/harness`` and are registered here."""

pytest_plugins: list[str] = ["tests.harness.cluster_fixtures"]
