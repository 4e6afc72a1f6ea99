"""Integration tests of the Kubernetes adapters and the watchers against the real control plane."""
