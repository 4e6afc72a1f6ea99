"""Adapters for Buildkite's GraphQL API and Agent REST API."""
