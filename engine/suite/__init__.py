"""Declarative policy test suites (``engine test --suite``): ``PolicySuite`` files of cases, each a job
and what must be true of its decision."""
