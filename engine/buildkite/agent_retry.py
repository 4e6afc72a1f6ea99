"""How often, and how patiently, each Agent REST API step is retried (behaviour spec §4.7).

The numbers are the upstream agent library's, so a failing job is reported with the same persistence:
registering waits out a few minutes of API trouble, acquiring gives up after about 270 s, and
disconnecting barely retries because nothing depends on it. Intervals are in seconds before the
client's ``retry_scale`` is applied.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """``attempts`` tries in all; the wait after failed try ``n`` (1-based) is computed by :meth:`delay`."""

    attempts: int
    interval: float
    exponential: bool = False
    max_interval: float | None = None
    jitter: float = 0.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Constant ``interval``, or ``interval * 2**(attempt-1)``; capped, plus up to ``jitter`` seconds."""
        base = self.interval * (2 ** (attempt - 1) if self.exponential else 1)
        if self.max_interval is not None:
            base = min(base, self.max_interval)
        return base + (rng.uniform(0.0, self.jitter) if self.jitter else 0.0)


REGISTER = RetryPolicy(attempts=30, interval=10.0)
CONNECT = RetryPolicy(attempts=10, interval=5.0)
ACQUIRE = RetryPolicy(attempts=10, interval=3.0)
ACQUIRE_BUDGET_SECONDS = 270.0
"""Acquisition stops once waiting longer would pass this many seconds in total."""
LOCKED_WAIT_RANGE = (1.0, 2.0)
"""A 423 (job waiting on a dependency) without ``Retry-After`` is retried after a random 1–2 s."""
START = RetryPolicy(attempts=7, interval=2.0, exponential=True)
CHUNK = RetryPolicy(attempts=10, interval=1.0, exponential=True, max_interval=60.0, jitter=1.0)
"""Not fixed by the spec; patient like the agent's log upload, but bounded to about ten minutes."""
FINISH = RetryPolicy(attempts=20, interval=1.0, exponential=True, max_interval=60.0, jitter=1.0)
DISCONNECT = RetryPolicy(attempts=4, interval=1.0)
