"""Intervals, timeouts and deadlines (``airflow_provider_plugz._intervals``): the validator as a
table, every value the provider takes refused through it before any request, and the floor
applied by each poller (sensor, sensor trigger, watcher) once it knows its host."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_plugz import _intervals
from airflow_provider_plugz.exceptions import PlugzConfigurationError, PlugzTriggerArgumentError
from tests.conftest import CLIENT_TOKEN, INSTANCE_ID, INSTANCE_TOKEN

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_provider_plugz.testing import PlugzSandbox

DAY = 86_400.0

#: Values no interval, timeout or deadline may take.
NEVER = [
    pytest.param(math.nan, id="nan"),
    pytest.param(math.inf, id="inf"),
    pytest.param(-math.inf, id="minus-inf"),
    pytest.param(0, id="zero"),
    pytest.param(0.0, id="zero-float"),
    pytest.param(-1, id="negative"),
    pytest.param(-1e-9, id="tiny-negative"),
    pytest.param(True, id="true"),
    pytest.param(False, id="false"),
    pytest.param(None, id="none"),
    pytest.param("60", id="text"),
    pytest.param([60], id="list"),
    pytest.param(10**400, id="int-too-big-for-a-float"),
]


# --- the validator -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text", "maximum", "seconds"),
    [
        pytest.param(60, False, DAY, 60.0, id="int"),
        pytest.param(0.5, False, DAY, 0.5, id="float"),
        pytest.param(1e-9, False, DAY, 1e-9, id="tiny-is-valid-the-floor-raises-it-later"),
        pytest.param(DAY, False, DAY, DAY, id="the-maximum"),
        pytest.param(timedelta(minutes=5), False, DAY, 300.0, id="timedelta"),
        pytest.param("0.5", True, DAY, 0.5, id="rendered-text"),
        pytest.param(" 30 ", True, DAY, 30.0, id="rendered-text-with-spaces"),
        pytest.param(366 * DAY, False, _intervals.MAX_TIMEOUT, 366 * DAY, id="the-longest-timeout"),
    ],
)
def test_seconds_accepts(value: Any, text: bool, maximum: float, seconds: float) -> None:
    assert _intervals.seconds(value, name="x", maximum=maximum, text=text) == seconds


@pytest.mark.parametrize(
    ("value", "text"),
    [
        *[pytest.param(p.values[0], False, id=str(p.id)) for p in NEVER],
        pytest.param(timedelta(0), False, id="zero-timedelta"),
        pytest.param(timedelta(seconds=-5), False, id="negative-timedelta"),
        pytest.param(DAY + 0.001, False, id="over-a-day"),
        pytest.param(timedelta(days=2), False, id="timedelta-over-a-day"),
        pytest.param("nan", True, id="rendered-nan"),
        pytest.param("inf", True, id="rendered-inf"),
        pytest.param("0", True, id="rendered-zero"),
        pytest.param("-1", True, id="rendered-negative"),
        pytest.param("1e-400", True, id="rendered-underflow-to-zero"),
        pytest.param("1e9", True, id="rendered-over-a-day"),
        pytest.param("soon", True, id="rendered-words"),
        pytest.param("1" * 100, True, id="rendered-very-long"),
    ],
)
def test_seconds_refuses(value: Any, text: bool) -> None:
    with pytest.raises(
        PlugzConfigurationError, match=r"x must be a number of seconds more than 0 and at most 1 day"
    ):
        _intervals.seconds(value, name="x", maximum=DAY, text=text)


def test_seconds_raises_the_class_asked_for_and_keeps_the_message_short() -> None:
    with pytest.raises(PlugzTriggerArgumentError) as info:
        _intervals.seconds("x" * 1000, name="T: poll_interval", maximum=DAY, error=PlugzTriggerArgumentError)
    assert isinstance(info.value, TypeError)  # a trigger's bad kwarg fails that trigger only
    assert len(str(info.value)) < 200


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        pytest.param(None, True, id="none-no-deadline"),
        pytest.param(1_800_000_000.0, True, id="a-timestamp"),
        pytest.param(1.0, True, id="long-past-ends-at-once"),
        pytest.param(lambda: time.time() + 365 * DAY, True, id="within-366-days"),
        pytest.param(lambda: time.time() + 400 * DAY, False, id="beyond-366-days"),
        pytest.param(timedelta(minutes=1), False, id="a-timedelta-is-not-a-timestamp"),
        *[
            pytest.param(p.values[0], p.values[0] is None, id=f"{p.id}")
            for p in NEVER
            if p.values[0] is not None
        ],
    ],
)
def test_deadline(value: Any, ok: bool) -> None:
    value = value() if callable(value) else value
    if ok:
        assert _intervals.deadline(value, name="d") == (None if value is None else float(value))
        return
    with pytest.raises(PlugzConfigurationError, match="d must be None or a Unix timestamp"):
        _intervals.deadline(value, name="d")


@pytest.mark.parametrize(
    ("base_url", "floor"),
    [
        pytest.param("http://127.0.0.1:8080", 0.01, id="ipv4-loopback"),
        pytest.param("http://127.5.6.7", 0.01, id="any-127"),
        pytest.param("http://[::1]:9000/base", 0.01, id="ipv6-loopback"),
        pytest.param("http://localhost:8080", 0.01, id="localhost"),
        pytest.param("https://api.plugzapi.com.br", 1.0, id="real-host"),
        pytest.param("https://127.0.0.1.example.com", 1.0, id="lookalike-name"),
        pytest.param("https://10.0.0.1", 1.0, id="private-address"),
        pytest.param(None, 1.0, id="host-not-known-yet"),
        pytest.param("http://[::1", 1.0, id="unparsable"),
    ],
)
def test_floor_is_lower_only_for_loopback_hosts(base_url: str | None, floor: float) -> None:
    assert _intervals.floor(base_url) == floor


@pytest.mark.parametrize(
    ("interval", "base_url", "used", "warned"),
    [
        pytest.param(1e-9, "https://api.plugzapi.com.br", 1.0, True, id="tiny-real-host"),
        pytest.param(0.5, "https://api.plugzapi.com.br", 1.0, True, id="half-second-real-host"),
        pytest.param(1.0, "https://api.plugzapi.com.br", 1.0, False, id="at-the-floor"),
        pytest.param(60.0, "https://api.plugzapi.com.br", 60.0, False, id="usual"),
        pytest.param(1e-9, "http://127.0.0.1:1", 0.01, True, id="tiny-loopback"),
        pytest.param(0.05, "http://127.0.0.1:1", 0.05, False, id="fast-loopback"),
        pytest.param(0.5, None, 1.0, True, id="unknown-host"),
    ],
)
def test_at_least_floor_raises_with_a_warning(
    interval: float, base_url: str | None, used: float, warned: bool, caplog: pytest.LogCaptureFixture
) -> None:
    logger = logging.getLogger("tests.intervals")
    caplog.set_level(logging.WARNING, logger=logger.name)
    assert _intervals.at_least_floor(interval, name="poll_interval", base_url=base_url, log=logger) == used
    warnings = [r.getMessage() for r in caplog.records]
    assert bool(warnings) == warned
    if warned:
        assert "poll_interval" in warnings[0]
        assert "under the floor" in warnings[0]


# --- every value the provider takes, refused before any request ----------------------------------


def _pin_sensor(**kwargs: Any) -> Any:
    from airflow_provider_plugz.sensors.plugz import PlugzPinStatusSensor

    return PlugzPinStatusSensor(task_id="wait", **kwargs)


def _status_sensor(**kwargs: Any) -> Any:
    from airflow_provider_plugz.sensors.plugz import PlugzInstanceStatusSensor

    return PlugzInstanceStatusSensor(task_id="wait", **kwargs)


def _pin_trigger(**kwargs: Any) -> Any:
    from airflow_provider_plugz.triggers.plugz import PlugzPinStatusTrigger

    return PlugzPinStatusTrigger("plugz_default", **kwargs)


def _status_trigger(**kwargs: Any) -> Any:
    from airflow_provider_plugz.triggers.plugz import PlugzInstanceStatusTrigger

    return PlugzInstanceStatusTrigger("plugz_default", **kwargs)


def _watcher(**kwargs: Any) -> Any:
    from airflow_provider_plugz.triggers.events import PlugzSecurityEventTrigger

    return PlugzSecurityEventTrigger("plugz_default", **kwargs)


def _audit(**kwargs: Any) -> Any:
    from airflow_provider_plugz.operators.audit import PlugzPinAuditOperator

    return PlugzPinAuditOperator(task_id="audit", plugz_conn_ids=["plugz_default"], **kwargs)


#: (what builds it, the argument, the error class, a value it takes, the largest it takes).
TAKERS = [
    pytest.param(
        _pin_sensor, "poke_interval", PlugzConfigurationError, 30, DAY, id="pin-sensor-poke-interval"
    ),
    pytest.param(
        _status_sensor, "poke_interval", PlugzConfigurationError, 30, DAY, id="status-sensor-poke-interval"
    ),
    pytest.param(_pin_sensor, "timeout", PlugzConfigurationError, 600, 366 * DAY, id="sensor-timeout"),
    pytest.param(
        _pin_trigger, "poll_interval", PlugzTriggerArgumentError, 30, DAY, id="pin-trigger-poll-interval"
    ),
    pytest.param(
        _status_trigger,
        "poll_interval",
        PlugzTriggerArgumentError,
        30,
        DAY,
        id="status-trigger-poll-interval",
    ),
    pytest.param(_watcher, "poll_interval", PlugzTriggerArgumentError, 30, DAY, id="watcher-poll-interval"),
    pytest.param(_audit, "audit_timeout", PlugzConfigurationError, 600, 366 * DAY, id="audit-timeout"),
]


@pytest.mark.parametrize(
    "bad",
    [p.values[0] for p in NEVER if p.values[0] is not None],
    ids=[str(p.id) for p in NEVER if p.values[0] is not None],
)
@pytest.mark.parametrize(("build", "name", "error", "good", "largest"), TAKERS)
def test_every_interval_and_timeout_refuses_what_is_not_a_finite_positive_number(
    sandbox: PlugzSandbox,
    build: Callable[..., Any],
    name: str,
    error: type[Exception],
    good: float,
    largest: float,
    bad: Any,
) -> None:
    if name == "poke_interval" and isinstance(bad, str):
        assert build(**{name: bad}).poke_interval == bad  # a template: checked once rendered (below)
    else:
        with pytest.raises(error, match=name):
            build(**{name: bad})
    with pytest.raises(error, match=name):
        build(**{name: largest * 1.01})
    assert build(**{name: largest}) is not None
    assert build(**{name: good}) is not None
    assert sandbox.request_count == 0  # refused when built, before any request


@pytest.mark.parametrize(
    "build", [pytest.param(_pin_trigger, id="pin"), pytest.param(_status_trigger, id="status")]
)
@pytest.mark.parametrize(
    "deadline",
    [
        pytest.param(math.nan, id="nan"),
        pytest.param(math.inf, id="inf"),
        pytest.param(0, id="zero"),
        pytest.param(-5, id="negative"),
        pytest.param(True, id="bool"),
        pytest.param("1800000000", id="text"),
        pytest.param(time.time() + 400 * DAY, id="beyond-366-days"),
    ],
)
def test_a_trigger_refuses_a_bad_deadline(build: Callable[..., Any], deadline: Any) -> None:
    with pytest.raises(PlugzTriggerArgumentError, match="deadline") as info:
        build(deadline=deadline)
    assert isinstance(info.value, TypeError)


@pytest.mark.parametrize(
    "rendered",
    [
        pytest.param("0", id="zero"),
        pytest.param("0.0", id="zero-float"),
        pytest.param("nan", id="nan"),
        pytest.param("inf", id="inf"),
        pytest.param("-1", id="negative"),
        pytest.param("1e-400", id="underflows-to-zero"),
    ],
)
@pytest.mark.parametrize("deferrable", [pytest.param(False, id="poke"), pytest.param(True, id="deferrable")])
def test_a_templated_poke_interval_that_renders_out_of_bounds_fails_before_any_request(
    sandbox: PlugzSandbox, rendered: str, deferrable: bool
) -> None:
    sensor = _pin_sensor(poke_interval="{{ params.every }}", deferrable=deferrable, timeout=60)
    sensor.poke_interval = rendered  # what template rendering does before execute
    with pytest.raises(PlugzConfigurationError, match="poke_interval must be a number of seconds"):
        sensor.execute({"ti": None})
    assert sandbox.request_count == 0


# --- the floor, applied by each poller -----------------------------------------------------------


def use_real_host(monkeypatch: pytest.MonkeyPatch) -> None:
    """``plugz_default`` on the real API's host: the loopback-only guard makes every request a
    transient connect error, so nothing leaves this machine."""
    conn = {
        "conn_type": "plugz",
        "host": "https://api.plugzapi.com.br",
        "login": INSTANCE_ID,
        "password": INSTANCE_TOKEN,
        "extra": {"client_token": CLIENT_TOKEN, "max_attempts": 1},
    }
    monkeypatch.setenv("AIRFLOW_CONN_PLUGZ_DEFAULT", json.dumps(conn))


class Sleeps:
    """``asyncio`` as a trigger module sees it, but ``sleep`` records the delay and returns at
    once; after ``stop_after`` sleeps it cancels the trigger, as a triggerer that stops does."""

    def __init__(self, stop_after: int) -> None:
        self.delays: list[float] = []
        self.stop_after = stop_after

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)

    async def sleep(self, delay: float) -> None:
        self.delays.append(delay)
        if len(self.delays) >= self.stop_after:
            raise asyncio.CancelledError
        await asyncio.sleep(0)


@pytest.mark.parametrize(
    ("host", "floor"),
    [pytest.param("sandbox", 0.01, id="loopback"), pytest.param("real", 1.0, id="real-host")],
)
@pytest.mark.parametrize(
    "build", [pytest.param(_pin_trigger, id="pin"), pytest.param(_status_trigger, id="status")]
)
def test_a_sensor_trigger_polls_no_faster_than_its_hosts_floor(
    sandbox: PlugzSandbox,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    host: str,
    floor: float,
    build: Callable[..., Any],
) -> None:
    from airflow_provider_plugz.triggers import plugz as triggers

    if host == "real":
        use_real_host(monkeypatch)
    sandbox.set_state(INSTANCE_ID, "disconnected")  # neither trigger is done: it keeps polling
    sleeps = Sleeps(stop_after=3)
    monkeypatch.setattr(triggers, "asyncio", sleeps)
    caplog.set_level(logging.WARNING, logger=triggers.__name__)
    trigger = build(poll_interval=1e-9)  # waits for a PIN / a connected number: never here

    async def run() -> None:
        async for _event in trigger.run():
            pytest.fail("the trigger fired instead of polling on")

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(run())
    assert sleeps.delays == [floor] * 3
    assert sum("under the floor" in r.getMessage() for r in caplog.records) == 1


@pytest.mark.parametrize(
    ("host", "floor"),
    [pytest.param("sandbox", 0.01, id="loopback"), pytest.param("real", 1.0, id="real-host")],
)
def test_the_watcher_polls_no_faster_than_its_hosts_floor(
    sandbox: PlugzSandbox,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    host: str,
    floor: float,
) -> None:
    from airflow_provider_plugz.triggers import events

    if host == "real":
        use_real_host(monkeypatch)
    sleeps = Sleeps(stop_after=3)
    monkeypatch.setattr(events, "asyncio", sleeps)
    caplog.set_level(logging.WARNING, logger=events.__name__)

    async def run() -> None:
        async for _event in _watcher(poll_interval=1e-9).run():
            pass

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(run())
    assert sleeps.delays == [floor] * 3
    assert sum("under the floor" in r.getMessage() for r in caplog.records) == 1


@pytest.mark.parametrize(
    ("host", "floor"),
    [pytest.param("sandbox", 0.01, id="loopback"), pytest.param("real", 1.0, id="real-host")],
)
def test_a_sensor_raises_its_poke_interval_to_its_hosts_floor(
    sandbox: PlugzSandbox, monkeypatch: pytest.MonkeyPatch, host: str, floor: float
) -> None:
    from airflow_provider_plugz._compat import TaskDeferred

    if host == "real":
        use_real_host(monkeypatch)
    sensor = _pin_sensor(poke_interval="{{ params.every }}", deferrable=True, timeout=60)
    sensor.poke_interval = "1e-9"
    with pytest.raises(TaskDeferred) as info:
        sensor.execute({"ti": None})
    assert sensor.poke_interval == floor
    assert info.value.trigger.serialize()[1]["poll_interval"] == floor
