"""Benchmarks: scripts that print figures (never timed tests); see each module's docstring."""
