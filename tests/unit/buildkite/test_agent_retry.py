"""Retry intervals of the agent API steps."""

from __future__ import annotations

import random

from engine.buildkite import agent_retry
from engine.buildkite.agent_retry import RetryPolicy


def test_constant_policy_waits_the_same_each_time() -> None:
    rng = random.Random(1)
    assert [agent_retry.REGISTER.delay(n, rng) for n in (1, 2, 29)] == [10.0, 10.0, 10.0]


def test_exponential_policy_doubles_from_its_interval() -> None:
    rng = random.Random(1)
    assert [agent_retry.START.delay(n, rng) for n in range(1, 7)] == [2.0, 4.0, 8.0, 16.0, 32.0, 64.0]


def test_cap_and_jitter_bound_the_wait() -> None:
    policy = RetryPolicy(attempts=20, interval=1.0, exponential=True, max_interval=60.0, jitter=1.0)
    rng = random.Random(7)
    waits = [policy.delay(n, rng) for n in range(1, 20)]
    assert all(min(2 ** (n - 1), 60) <= w <= min(2 ** (n - 1), 60) + 1 for n, w in enumerate(waits, 1))
    assert max(waits) <= 61


def test_the_spec_counts() -> None:
    assert (agent_retry.REGISTER.attempts, agent_retry.CONNECT.attempts, agent_retry.ACQUIRE.attempts) == (
        30,
        10,
        10,
    )
    assert (agent_retry.START.attempts, agent_retry.FINISH.attempts, agent_retry.DISCONNECT.attempts) == (
        7,
        20,
        4,
    )
    assert agent_retry.ACQUIRE_BUDGET_SECONDS == 270
