"""Test support that talks to a real Kubernetes control plane: cluster lifecycle, fixtures, fake kubelet."""
