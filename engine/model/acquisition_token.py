"""Where a job's acquisition token lives in Kubernetes: one Secret per Job, named by the job's UUID.

In the Stacks API mode with ``job-acquisition-tokens`` the controller gives each pod's agent container
a job acquisition token (a short-lived credential for that one job) instead of the cluster agent
token. The token is a secret, so the Job never carries it: the controller creates this Secret, owned
by the Job, right after the Job, and the agent container reads it through a ``secretKeyRef``. The
policy that points the agent at it (``policies/66-job-acquisition-tokens.yaml``) and the controller
compute the name with this one function (the policy reads it as ``job.acquisitionTokenSecret``).
"""

from __future__ import annotations

SECRET_PREFIX = "buildkite-jat-"
"""Every job acquisition token Secret's name starts so (build pods may not reference another's)."""
SECRET_KEY = "BUILDKITE_AGENT_TOKEN"
"""The Secret's one key: what the agent reads as its registration token."""


def acquisition_token_secret_name(job_uuid: str) -> str:
    """The Secret that holds the acquisition token of the job with this UUID."""
    return f"{SECRET_PREFIX}{job_uuid.lower()}"
