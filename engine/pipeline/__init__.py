"""Buildkite pipeline files: reading them as Buildkite does, and turning a step into the job the
controller would receive (``engine test --pipeline``)."""
