"""The retry policy as data: which failures are retried, how long it waits, when it stops."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_provider_plugz._protocol import parse_retry_after
from airflow_provider_plugz.exceptions import (
    PlugzAuthenticationError,
    PlugzBadRequestError,
    PlugzConnectError,
    PlugzConnectionError,
    PlugzConnectTimeoutError,
    PlugzError,
    PlugzMalformedResponseError,
    PlugzMethodNotAllowedError,
    PlugzNotFoundError,
    PlugzRateLimitedError,
    PlugzServerError,
    PlugzTimeoutError,
    PlugzUnsupportedMediaTypeError,
)
from airflow_provider_plugz.retry import RetryPolicy


def error(error_class: type[PlugzError], status: int | None = None, **kwargs: Any) -> PlugzError:
    return error_class("boom", http_status=status, **kwargs)


@pytest.mark.parametrize(
    ("failure", "idempotent", "retryable"),
    [
        pytest.param(error(PlugzConnectionError), True, True, id="connection-error"),
        pytest.param(error(PlugzConnectionError), False, False, id="dropped-connection-post-never"),
        pytest.param(error(PlugzConnectError), True, True, id="connect-failed"),
        pytest.param(error(PlugzConnectError), False, True, id="connect-failed-post"),
        pytest.param(error(PlugzConnectTimeoutError), False, True, id="connect-timeout-post"),
        pytest.param(error(PlugzTimeoutError), True, True, id="read-timeout-get"),
        pytest.param(error(PlugzTimeoutError), False, False, id="read-timeout-post-never"),
        pytest.param(error(PlugzRateLimitedError, 429), True, True, id="429"),
        pytest.param(error(PlugzServerError, 502), True, True, id="502"),
        pytest.param(error(PlugzServerError, 503), True, True, id="503"),
        pytest.param(error(PlugzServerError, 504), True, True, id="504"),
        pytest.param(error(PlugzRateLimitedError, 429), False, False, id="429-post-never"),
        pytest.param(error(PlugzServerError, 502), False, False, id="502-post-never"),
        pytest.param(error(PlugzServerError, 503), False, False, id="503-post-never"),
        pytest.param(error(PlugzServerError, 500), True, False, id="500"),
        pytest.param(error(PlugzServerError, 408), True, False, id="408"),
        pytest.param(error(PlugzBadRequestError, 400), True, False, id="400"),
        pytest.param(error(PlugzAuthenticationError, 401), True, False, id="401"),
        pytest.param(error(PlugzAuthenticationError, 403), True, False, id="403"),
        pytest.param(error(PlugzNotFoundError, 404), True, False, id="404"),
        pytest.param(error(PlugzMethodNotAllowedError, 405), True, False, id="405"),
        pytest.param(error(PlugzUnsupportedMediaTypeError, 415), True, False, id="415"),
        pytest.param(error(PlugzMalformedResponseError, 200), True, False, id="malformed"),
    ],
)
def test_predicate(failure: PlugzError, idempotent: bool, retryable: bool) -> None:
    assert RetryPolicy().is_retryable(failure, idempotent=idempotent) is retryable


def test_backoff_doubles_up_to_the_ceiling_with_bounded_jitter() -> None:
    policy = RetryPolicy(backoff=0.5, backoff_max=3.0, jitter=0.5)
    rng = random.Random(7)
    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 3.0), (9, 3.0)]:
        delays = [policy.backoff_delay(attempt, rng) for _ in range(200)]
        assert min(delays) >= ceiling * 0.5
        assert max(delays) <= ceiling
        assert max(delays) - min(delays) > ceiling * 0.3  # really jittered


def test_no_jitter_is_exact() -> None:
    assert [RetryPolicy(jitter=0).backoff_delay(n) for n in (1, 2, 3)] == [0.5, 1.0, 2.0]


def test_gives_up_after_max_attempts_saying_so() -> None:
    retrying = RetryPolicy(max_attempts=3, jitter=0).start()
    failure = error(PlugzServerError, 503)
    assert retrying.delay_after(failure) == 0.5
    assert retrying.delay_after(failure) == 1.0
    with pytest.raises(PlugzServerError) as info:
        retrying.delay_after(failure)
    assert info.value is failure
    assert info.value.attempts == 3
    assert str(info.value) == "boom (gave up after 3 attempt(s): no attempts left)"


def test_non_retryable_after_retries_says_which_attempt() -> None:
    retrying = RetryPolicy().start()
    retrying.delay_after(error(PlugzServerError, 503))
    with pytest.raises(PlugzNotFoundError, match=r"^boom \(on attempt 2\)$"):
        retrying.delay_after(error(PlugzNotFoundError, 404))


def test_first_failure_not_retryable_is_raised_unchanged() -> None:
    with pytest.raises(PlugzAuthenticationError, match=r"^boom$") as info:
        RetryPolicy().start().delay_after(error(PlugzAuthenticationError, 403))
    assert info.value.attempts == 1


@pytest.mark.parametrize(
    ("retry_after", "outcome"),
    [
        pytest.param(2.0, 2.0, id="honoured"),
        pytest.param(0.0, 0.0, id="zero"),
        pytest.param(30.0, 30.0, id="at-cap"),
        pytest.param(31.0, "over the 30 s cap", id="over-cap-stops"),
    ],
)
def test_retry_after_is_honoured_up_to_a_cap(retry_after: float, outcome: Any) -> None:
    retrying = RetryPolicy(budget=100).start()
    failure = error(PlugzRateLimitedError, 429, retry_after=retry_after)
    if isinstance(outcome, float):
        assert retrying.delay_after(failure) == outcome
    else:
        with pytest.raises(PlugzRateLimitedError, match=outcome):
            retrying.delay_after(failure)


def test_budget_bounds_the_whole_call(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr("airflow_provider_plugz.retry.time.monotonic", lambda: clock[0])
    retrying = RetryPolicy(max_attempts=10, jitter=0, budget=5).start()
    failure = error(PlugzServerError, 503)
    clock[0] += 1
    assert retrying.delay_after(failure) == 0.5
    clock[0] += 3.4  # 4.4 s used: a 1 s wait would end past the 5 s budget
    with pytest.raises(PlugzServerError, match="the 5 s retry budget is used up"):
        retrying.delay_after(failure)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"max_attempts": 0}, "max_attempts", id="zero-attempts"),
        pytest.param({"backoff": -1}, "negative", id="negative-backoff"),
        pytest.param({"jitter": 2}, "jitter", id="jitter"),
    ],
)
def test_invalid_policy(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RetryPolicy(**kwargs)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        pytest.param("120", 120.0, id="seconds"),
        pytest.param(" 5 ", 5.0, id="spaces"),
        pytest.param("Wed, 25 Nov 2026 10:00:30 GMT", 30.0, id="http-date"),
        pytest.param("Wed, 25 Nov 2026 09:59:00 GMT", 0.0, id="date-in-the-past"),
        pytest.param("-3", None, id="negative"),
        pytest.param("soon", None, id="garbage"),
        pytest.param("", None, id="empty"),
        pytest.param(None, None, id="absent"),
        # What a hostile server sends: never an exception, always a number, inf or None.
        pytest.param("\u00b2", None, id="superscript-two-isdigit"),
        pytest.param("\u0663", None, id="arabic-indic-digit"),
        pytest.param("1e3", None, id="float-notation"),
        pytest.param("9" * 13, math.inf, id="longer-than-a-lifetime"),
        pytest.param("9" * 5000, math.inf, id="over-int-str-digits-limit"),
        pytest.param("Fri, 31 Dec 9999 23:59:59 GMT", 253402300799.0 - 1795600800.0, id="year-9999"),
        pytest.param("Fri, 31 Dec 99999 23:59:59 GMT", None, id="year-99999"),
        pytest.param("Mon, 99 Foo 1 25:61:61 GMT", None, id="broken-date"),
        pytest.param("Wed, 25 Nov 2026 10:00:30", None, id="date-without-zone"),
        pytest.param("Wed, 25 Nov 2026 10:00:30 GMT" + " " * 100, 30.0, id="padded-date"),
        pytest.param("x" * 10_000, None, id="huge-garbage"),
    ],
)
def test_parse_retry_after(header: str | None, expected: float | None) -> None:
    now = 1795600800.0  # Wed, 25 Nov 2026 10:00:00 GMT
    assert parse_retry_after(header, now=now) == expected


@given(st.text(max_size=80) | st.from_regex(r"[0-9]{1,30}", fullmatch=True))
def test_parse_retry_after_never_raises(header: str) -> None:
    delay = parse_retry_after(header, now=1795600800.0)
    assert delay is None or delay == math.inf or (math.isfinite(delay) and delay >= 0)
