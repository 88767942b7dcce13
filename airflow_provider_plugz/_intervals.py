"""Intervals, timeouts and deadlines: the one check every such value the provider takes goes through.

==========================  ===============================  =======================================
value                       bounds                           floor (raised to it, with a warning)
==========================  ===============================  =======================================
sensor ``poke_interval``    more than 0 s, at most 1 day     1 s; 0.01 s when the host is loopback
trigger ``poll_interval``   more than 0 s, at most 1 day     the same, once the connection is read
watcher ``poll_interval``   more than 0 s, at most 1 day     the same, once the connection is read
sensor ``timeout``          more than 0 s, at most 366 days  none (a short timeout costs no request)
audit ``audit_timeout``     more than 0 s, at most 366 days  none
trigger ``deadline``        a Unix timestamp, at most        none (a past deadline ends the wait
                            366 days from now                after one check)
==========================  ===============================  =======================================

NaN, infinities, zero, negatives, ``True``/``False`` and anything that is not a number (or a
``timedelta``; a rendered template may also be a numeric text) are a
:class:`~airflow_provider_plugz.exceptions.PlugzConfigurationError` - for a trigger's kwargs a
:class:`~airflow_provider_plugz.exceptions.PlugzTriggerArgumentError`, also a ``TypeError`` - raised
before any request. The floor is where polling a real API starts to hammer it; a loopback host
(the sandbox, a local test server) gets a lower one, so tests run fast. A trigger knows its host
only once it has read its connection in the triggerer, so its floor applies from then on (until
then, and whenever the connection cannot be read, the real-host floor applies).

Pure and cheap to import: DAG files reach this through the sensors.
"""

from __future__ import annotations

import math
import time
from datetime import timedelta
from typing import Any, Protocol

from airflow_provider_plugz.exceptions import PlugzConfigurationError


class _Log(Protocol):
    """A logger: the stdlib's, or the one Airflow gives an operator."""

    def warning(self, msg: str, /, *args: Any) -> Any: ...


#: Shortest interval between two polls of a real host, in seconds.
MIN_INTERVAL = 1.0
#: Shortest interval between two polls of a loopback host (the sandbox), in seconds.
MIN_INTERVAL_LOOPBACK = 0.01
#: Longest interval between two polls: a day.
MAX_INTERVAL = 86_400.0
#: Longest timeout (a sensor's ``timeout``, the audit's ``audit_timeout``) and furthest
#: deadline: 366 days.
MAX_TIMEOUT = 366 * 86_400.0


def seconds(
    value: object,
    *,
    name: str,
    maximum: float,
    text: bool = False,
    error: type[PlugzConfigurationError] = PlugzConfigurationError,
    hint: str = "",
) -> float:
    """``value`` as a number of seconds: finite, more than 0 and at most ``maximum``.

    :param name: how the value is called in the message (``"poke_interval"``).
    :param maximum: the largest value allowed (:data:`MAX_INTERVAL`, :data:`MAX_TIMEOUT`).
    :param text: also take a numeric text (``"0.5"``), as a rendered template gives it.
    :param error: the class raised (a trigger's kwargs raise ``PlugzTriggerArgumentError``).
    :param hint: a sentence added to the message (where the value came from).
    :raises PlugzConfigurationError: (or ``error``) naming the value and the bounds.
    """
    number = _number(value, text=text)
    if not 0 < number <= maximum:  # also refuses NaN
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        raise error(
            f"{name} must be a number of seconds more than 0 and at most {_say(maximum)}, not {shown}"
            + (f"; {hint}" if hint else ".")
        )
    return number


def deadline(
    value: object, *, name: str, error: type[PlugzConfigurationError] = PlugzConfigurationError
) -> float | None:
    """``value`` as a deadline: ``None`` (no deadline) or a Unix timestamp, finite, more than 0
    and at most :data:`MAX_TIMEOUT` seconds from now (a past one is fine: the wait ends at once).

    :raises PlugzConfigurationError: (or ``error``) naming the value and the bounds.
    """
    if value is None:
        return None
    number = _number(value, text=False, timedeltas=False)
    if not 0 < number <= time.time() + MAX_TIMEOUT:
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        raise error(
            f"{name} must be None or a Unix timestamp at most {_say(MAX_TIMEOUT)} from now, not {shown}."
        )
    return number


def floor(base_url: str | None) -> float:
    """The shortest poll interval for a connection's base URL (None: not known yet)."""
    from urllib.parse import urlsplit

    from airflow_provider_plugz.connection import is_loopback

    if base_url is None:
        return MIN_INTERVAL
    try:
        host = urlsplit(base_url).hostname or ""
    except ValueError:
        return MIN_INTERVAL
    return MIN_INTERVAL_LOOPBACK if is_loopback(host) else MIN_INTERVAL


def at_least_floor(interval: float, *, name: str, base_url: str | None, log: _Log) -> float:
    """``interval`` raised to the floor of ``base_url`` (see :func:`floor`), with a warning when raised."""
    lowest = floor(base_url)
    if interval >= lowest:
        return interval
    where = "a loopback host" if lowest == MIN_INTERVAL_LOOPBACK else "a real Plugz host"
    log.warning(
        "%s of %s is under the floor of %s for %s; polling every %s instead.",
        name,
        _say(interval),
        _say(lowest),
        where,
        _say(lowest),
    )
    return lowest


def _number(value: object, *, text: bool, timedeltas: bool = True) -> float:
    """``value`` as a float, or NaN when it is not a number of the accepted kinds."""
    try:
        if isinstance(value, bool):
            return math.nan
        if timedeltas and isinstance(value, timedelta):
            return value.total_seconds()
        if isinstance(value, int | float):
            return float(value)
        if text and isinstance(value, str) and len(value) <= 40:
            return float(value.strip())
    except (OverflowError, ValueError):
        pass
    return math.nan


def _say(value: float) -> str:
    """Seconds in words: ``0.01 s``, ``1 day``, ``366 days``."""
    if value >= 86_400 and value % 86_400 == 0:
        days = int(value // 86_400)
        return f"{days} day" + ("s" if days != 1 else "")
    return f"{value:g} s"
