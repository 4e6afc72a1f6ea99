"""Adapters for the Kubernetes API."""
