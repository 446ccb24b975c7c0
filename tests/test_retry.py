"""The pure retry decision, without any event loop."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pulsora_revenue import ConfigurationError, RetryPolicy
from pulsora_revenue._retry import (
    RETRY_AFTER_JITTER,
    RETRYABLE_STATUSES,
    Observation,
    Verdict,
    decide,
    parse_retry_after,
)

HIGH = RetryPolicy(uniform=lambda low, high: high)
statuses = st.integers(min_value=100, max_value=599)
attempts = st.integers(min_value=1, max_value=20)


def test_defaults() -> None:
    policy = RetryPolicy()
    assert (policy.max_attempts, policy.initial_delay, policy.max_delay, policy.deadline) == (
        4,
        0.5,
        8.0,
        30.0,
    )


def test_durations_accept_timedelta() -> None:
    policy = RetryPolicy(initial_delay=timedelta(milliseconds=250), deadline=timedelta(minutes=1))
    assert policy.initial_delay == 0.25
    assert policy.deadline == 60.0


@pytest.mark.parametrize(
    "options",
    [
        {"max_attempts": 0},
        {"max_attempts": True},
        {"max_attempts": 2.5},
        {"initial_delay": -1},
        {"initial_delay": 10, "max_delay": 1},
        {"deadline": 0},
        {"deadline": "30"},
    ],
)
def test_refuses_nonsense(options: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        RetryPolicy(**options)  # type: ignore[arg-type]


@pytest.mark.parametrize(("retry", "ceiling"), [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 8.0)])
def test_backoff_ceiling_doubles_up_to_max_delay(retry: int, ceiling: float) -> None:
    assert HIGH.backoff(retry) == ceiling
    assert HIGH.backoff(retry + 100) == 8.0


@given(retry=st.integers(min_value=1, max_value=10_000), seed=st.integers())
def test_backoff_stays_within_floor_and_cap(retry: int, seed: int) -> None:
    policy = RetryPolicy(uniform=random.Random(seed).uniform)
    assert 0.5 <= policy.backoff(retry) <= min(8.0, 0.5 * 2 ** min(retry - 1, 64))


@given(status=st.integers(min_value=200, max_value=299), attempt=attempts)
def test_2xx_is_delivered(status: int, attempt: int) -> None:
    decision = decide(
        HIGH, Observation(status), attempt=attempt, elapsed=99.0, maybe_delivered=False
    )
    assert decision.verdict is Verdict.DELIVERED
    assert not decision.duplicate


@given(status=statuses, attempt=attempts, elapsed=st.floats(0, 100), landed=st.booleans())
def test_never_retries_a_final_status(
    status: int, attempt: int, elapsed: float, landed: bool
) -> None:
    decision = decide(
        HIGH, Observation(status), attempt=attempt, elapsed=elapsed, maybe_delivered=landed
    )
    if decision.verdict is Verdict.RETRY:
        assert status in RETRYABLE_STATUSES
        assert attempt < HIGH.max_attempts
        assert elapsed + decision.delay < HIGH.deadline


@given(attempt=attempts, elapsed=st.floats(0, 100), landed=st.booleans())
def test_409_is_delivered_only_after_a_possible_landing(
    attempt: int, elapsed: float, landed: bool
) -> None:
    decision = decide(
        HIGH, Observation(409), attempt=attempt, elapsed=elapsed, maybe_delivered=landed
    )
    assert decision.verdict is (Verdict.DELIVERED if landed else Verdict.GIVE_UP)
    assert decision.duplicate is landed


@given(retry_after=st.floats(0, 20), seed=st.integers())
def test_retry_after_is_a_floor_with_bounded_jitter(retry_after: float, seed: int) -> None:
    policy = RetryPolicy(uniform=random.Random(seed).uniform, deadline=60)
    seen = Observation(429, retry_after=retry_after)
    decision = decide(policy, seen, attempt=1, elapsed=0.0, maybe_delivered=False)
    assert decision.verdict is Verdict.RETRY
    assert retry_after <= decision.delay <= max(retry_after + RETRY_AFTER_JITTER, 0.5)


def test_retry_after_past_the_deadline_gives_up() -> None:
    seen = Observation(429, retry_after=29.9)
    decision = decide(HIGH, seen, attempt=1, elapsed=1.0, maybe_delivered=False)
    assert decision.verdict is Verdict.GIVE_UP


@pytest.mark.parametrize(
    ("seen", "landed"),
    [
        (Observation(None), True),
        (Observation(None, sent=False), False),
        (Observation(503), True),
        (Observation(429), False),
        (Observation(408), False),
        (Observation(400), False),
    ],
)
def test_may_have_landed(seen: Observation, landed: bool) -> None:
    assert seen.may_have_landed is landed


def test_no_answer_is_retried_unless_marked_final() -> None:
    retry = decide(HIGH, Observation(None), attempt=1, elapsed=0, maybe_delivered=False)
    final = decide(
        HIGH, Observation(None, retryable=False), attempt=1, elapsed=0, maybe_delivered=False
    )
    assert retry.verdict is Verdict.RETRY
    assert final.verdict is Verdict.GIVE_UP


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("2", 2.0),
        (" 120 ", 120.0),
        ("1.5", 1.5),
        ("0", 0.0),
        ("-1", None),
        ("nan", None),
        ("inf", None),
        ("soon", None),
        ("", None),
        (None, None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 60.0),
        ("Wed, 21 Oct 2015 07:26:00 GMT", 0.0),
    ],
)
def test_parse_retry_after(header: str | None, seconds: float | None) -> None:
    now = 1445412420.0  # Wed, 21 Oct 2015 07:27:00 GMT
    assert parse_retry_after(header, now) == seconds
