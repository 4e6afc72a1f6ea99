"""Unit tests of the Kubernetes adapter helpers."""
