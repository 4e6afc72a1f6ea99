"""A policy-driven Buildkite agent stack for Kubernetes.

The package is layered (see ``pyproject.toml`` import-linter contracts): ``engine.model`` holds plain
data models, ``engine.core`` the pure policy engine, ``engine.policy`` loads policy files,
``engine.buildkite``/``engine.kube`` talk to the outside world, ``engine.controller`` runs the loop and
``engine.cli`` is the command line.
"""

__version__ = "0.1.0"
