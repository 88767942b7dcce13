"""The retry policy shared by the sync hook and the async trigger path: data plus one predicate.

Retried: connection errors and timeouts, HTTP 429, 502, 503 and 504 — with exponential
backoff, jitter and a ceiling, honouring ``Retry-After`` (seconds or HTTP date) up to a cap,
all inside a total time budget. Never retried: 400, 401, 403, 404, 405, 415 and everything
else that says the request itself is wrong. A non-idempotent call (a POST that changes state)
is retried only when it provably never left: a failed connect or a connect timeout.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

from airflow_provider_plugz.exceptions import (
    NEVER_SENT,
    PlugzAPIError,
    PlugzConfigurationError,
    PlugzConnectionError,
    PlugzError,
    PlugzRateLimitedError,
)

RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try. Defaults: 4 attempts, waits of ~0.5, 1, 2 s (ceiling 8 s), 30 s budget.

    :param max_attempts: attempts in all, the first included (1 disables retries).
    :param backoff: the first wait in seconds; each further wait doubles it.
    :param backoff_max: the ceiling of one wait.
    :param jitter: fraction of each wait that is randomised (0 to 1), to spread retries out.
    :param retry_after_max: the longest ``Retry-After`` honoured; a longer one ends the retries.
    :param budget: seconds from the first attempt after which no new attempt starts.
    """

    max_attempts: int = 4
    backoff: float = 0.5
    backoff_max: float = 8.0
    jitter: float = 0.5
    retry_after_max: float = 30.0
    budget: float = 30.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if min(self.backoff, self.backoff_max, self.retry_after_max, self.budget) < 0:
            raise ValueError("retry waits and budget must not be negative")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter must be between 0 and 1")

    def is_retryable(self, error: PlugzError, *, idempotent: bool = True) -> bool:
        """The one predicate: may the call that raised ``error`` be sent again?"""
        if isinstance(error, NEVER_SENT):
            return True  # the request never left
        if not idempotent:
            # Anything else may come after the server applied the request (a dropped
            # connection, a read timeout, a 502 from a gateway): never send it twice.
            return False
        return isinstance(error, PlugzConnectionError) or error.http_status in RETRYABLE_STATUSES

    def backoff_delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """The wait after failed attempt number ``attempt`` (1-based), without Retry-After."""
        ceiling = min(self.backoff_max, self.backoff * 2.0 ** (attempt - 1))
        fraction: float = (rng or random).random()
        return ceiling * (1 - self.jitter * fraction)

    def start(self, *, idempotent: bool = True) -> Retrying:
        """State for one call: feed it each failure, it says how long to wait or gives up."""
        return Retrying(self, idempotent)


def may_have_been_applied(error: PlugzError) -> bool:
    """Whether the server may have carried out the request that ended in ``error``.

    No when it provably never left (:data:`~..exceptions.NEVER_SENT`, or stopped before sending
    as a configuration error) or when the server answered that it refused it (any
    ``PlugzAPIError``: 3xx, 4xx, a ``success: false`` or ``error`` body; a 429). Yes for
    everything else: a timeout or dropped connection after sending, a 408 or 5xx (a gateway may
    have passed it on), an answer we could not read.
    """
    return not isinstance(error, (*NEVER_SENT, PlugzConfigurationError, PlugzAPIError, PlugzRateLimitedError))


@dataclass
class Retrying:
    """The retry state of one call. Shared by the sync and async loops; it never sleeps itself."""

    policy: RetryPolicy
    idempotent: bool
    attempts: int = 0
    started: float = field(default_factory=lambda: time.monotonic())  # noqa: PLW0108 (read at call time, for tests)

    def delay_after(self, error: PlugzError) -> float:
        """Seconds to wait before the next attempt; re-raises ``error`` when it is time to stop.

        The re-raised error keeps its class; its message and ``attempts`` say how many
        attempts were made and why there was no further one.
        """
        self.attempts += 1
        policy = self.policy
        if not policy.is_retryable(error, idempotent=self.idempotent):
            raise self._final(error, None)
        if self.attempts >= policy.max_attempts:
            raise self._final(error, "no attempts left")
        delay = policy.backoff_delay(self.attempts)
        retry_after = error.retry_after if isinstance(error, PlugzRateLimitedError) else None
        if retry_after is not None:
            if retry_after > policy.retry_after_max:
                raise self._final(
                    error,
                    f"Retry-After of {retry_after:.0f} s is over the {policy.retry_after_max:.0f} s cap",
                )
            delay = retry_after
        if time.monotonic() - self.started + delay > policy.budget:
            raise self._final(error, f"the {policy.budget:g} s retry budget is used up")
        return delay

    def _final(self, error: PlugzError, reason: str | None) -> PlugzError:
        error.attempts = self.attempts
        if reason is not None:
            error.args = (f"{error.args[0]} (gave up after {self.attempts} attempt(s): {reason})",)
        elif self.attempts > 1:
            error.args = (f"{error.args[0]} (on attempt {self.attempts})",)
        return error
