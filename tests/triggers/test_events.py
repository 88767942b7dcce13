"""PlugzSecurityEventTrigger: its kwargs, its change rules (pure), and the trigger in an event
loop against the sandbox - each flip one event, steady states and transient faults none, a
permanent error once, a restart (rebuilt from ``serialize()``) none - and, where Airflow has
shared poll streams, many watchers served by one poll."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
from typing import TYPE_CHECKING, Any, ClassVar

import pytest

from airflow_provider_plugz._compat import has_shared_streams
from airflow_provider_plugz.exceptions import PlugzConfigurationError
from airflow_provider_plugz.testing import Fault
from airflow_provider_plugz.triggers.events import ChangeDetector, PlugzSecurityEventTrigger
from tests.conftest import CLIENT_TOKEN, INSTANCE_ID, PHONE_ECHOES, assert_no_phone, assert_no_secrets

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from airflow_provider_plugz.testing import PlugzSandbox
    from tests.triggers.conftest import UnreadableConnection

CLASSPATH = "airflow_provider_plugz.triggers.events.PlugzSecurityEventTrigger"
TICK = 0.01  # the poll interval of every trigger here


# --- kwargs ------------------------------------------------------------------------------------


def test_trigger_serialize_exactly() -> None:
    trigger = PlugzSecurityEventTrigger(
        plugz_conn_id="plugz_x", watch=["connection", "pin"], poll_interval=30, fire_on_bad_baseline=True
    )
    assert trigger.serialize() == (
        CLASSPATH,
        {
            "plugz_conn_id": "plugz_x",
            "watch": ["pin", "connection"],
            "poll_interval": 30.0,
            "fire_on_bad_baseline": True,
        },
    )
    _path, kwargs = trigger.serialize()
    assert json.loads(json.dumps(kwargs)) == kwargs  # JSON-safe
    assert PlugzSecurityEventTrigger(**kwargs).serialize() == trigger.serialize()
    assert PlugzSecurityEventTrigger().serialize()[1] == {
        "plugz_conn_id": "plugz_default",
        "watch": ["pin", "connection"],
        "poll_interval": 60.0,
        "fire_on_bad_baseline": False,
    }
    assert PlugzSecurityEventTrigger(watch="pin").serialize()[1]["watch"] == ["pin"]


def test_serialized_kwargs_and_repr_hold_no_secret(sandbox: PlugzSandbox) -> None:
    trigger = PlugzSecurityEventTrigger("plugz_default")
    assert_no_secrets(json.dumps(trigger.serialize()), repr(trigger))


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"watch": []}, id="watch-nothing"),
        pytest.param({"watch": "phone"}, id="watch-unknown"),
        pytest.param({"watch": ["pin", "battery"]}, id="watch-one-unknown"),
        pytest.param({"watch": 1}, id="watch-not-a-list"),
        pytest.param({"poll_interval": 0}, id="interval-zero"),
        pytest.param({"poll_interval": -1.5}, id="interval-negative"),
        pytest.param({"poll_interval": "60"}, id="interval-string"),
        pytest.param({"poll_interval": True}, id="interval-bool"),
        pytest.param({"fire_on_bad_baseline": "yes"}, id="flag-string"),
    ],
)
def test_trigger_refuses_bad_kwargs(kwargs: dict[str, Any]) -> None:
    with pytest.raises(PlugzConfigurationError, match="PlugzSecurityEventTrigger") as info:
        PlugzSecurityEventTrigger("plugz_default", **kwargs)
    # Airflow's triggerer fails only the one trigger on a TypeError from its constructor; any
    # other exception there escapes its loop and stops every trigger it runs.
    assert isinstance(info.value, TypeError)


def test_shared_stream_key_groups_watchers_of_one_connection_endpoints_and_interval() -> None:
    key = PlugzSecurityEventTrigger.shared_stream_key
    a, b = (
        PlugzSecurityEventTrigger("plugz_a"),
        PlugzSecurityEventTrigger("plugz_a", fire_on_bad_baseline=True),
    )
    assert key(a) == key(b) == ("plugz-security", "plugz_a", ("pin", "connection"), 60.0)
    assert key(a) != key(PlugzSecurityEventTrigger("plugz_b"))
    assert key(a) != key(PlugzSecurityEventTrigger("plugz_a", watch="pin"))
    assert key(a) != key(PlugzSecurityEventTrigger("plugz_a", poll_interval=5))


# --- the rules, without I/O --------------------------------------------------------------------


def snap(pin: bool | None = None, connection: str | None = None, error: str | None = None) -> dict[str, Any]:
    """A snapshot as the poll yields it; ``error`` is ``"Class status: message"`` (status or ``-``)."""
    failure = None
    if error:
        head, message = error.split(": ", 1)
        error_class, status = head.split(" ")
        failure = {
            "error_class": error_class,
            "http_status": None if status == "-" else int(status),
            "message": message,
        }
    return {
        "observed_at": "2026-12-02T01:00:00.000+00:00",
        "pin": pin,
        "connection": connection,
        "error": failure,
    }


def fired(snapshots: list[dict[str, Any]], fire_on_bad_baseline: bool = False) -> list[list[str]]:
    """For each snapshot, the events it fired, each as ``status:change-or-error-class``."""
    detector = ChangeDetector("plugz_x", ("pin", "connection"), fire_on_bad_baseline)
    return [
        [f"{e['status']}:{e.get('change') or e.get('error_class')}" for e in detector.feed(s)]
        for s in snapshots
    ]


AUTH = "PlugzAuthenticationError 403: Client-Token *** not allowed"
NOT_FOUND = "PlugzNotFoundError 404: unknown instance"
BAD_CONN = "PlugzConfigurationError -: Plugz connection 'plugz_x' does not exist"
OK = snap(True, "connected")
PIN_GONE = snap(False, "connected")
DOWN = snap(True, "disconnected")
NONE: list[str] = []


def not_found(request_id: int) -> dict[str, Any]:
    """A 404 whose text carries a request id: a new text on every poll."""
    return snap(error=f"PlugzNotFoundError 404: unknown instance (request id {request_id:08x})")


@pytest.mark.parametrize(
    ("snapshots", "flag", "expected"),
    [
        pytest.param([OK] * 4, False, [NONE] * 4, id="steady-good-state-fires-nothing"),
        pytest.param(
            [snap(False, "disconnected")] * 4, False, [NONE] * 4, id="steady-bad-state-fires-nothing"
        ),
        pytest.param(
            [snap(False, "disconnected")] * 3,
            True,
            [["baseline:no_pin", "baseline:not_connected"], NONE, NONE],
            id="bad-baseline-fires-once-when-asked",
        ),
        pytest.param([OK] * 2, True, [NONE, NONE], id="good-baseline-fires-nothing-when-asked"),
        pytest.param(
            [OK, OK, PIN_GONE, PIN_GONE, PIN_GONE, PIN_GONE, OK, OK],
            False,
            [NONE, NONE, NONE, ["change:pin_removed"], NONE, NONE, NONE, ["change:pin_set"]],
            id="a-change-fires-on-the-second-poll-that-sees-it",
        ),
        pytest.param(
            [OK, *[snap(True, "phone_offline")] * 4, *[snap(True, "session_lost")] * 4, *[OK] * 3],
            False,
            [
                NONE,
                NONE,
                ["change:disconnected"],
                NONE,
                NONE,
                NONE,
                ["change:connection_changed"],
                NONE,
                NONE,
                NONE,
                ["change:reconnected"],
                NONE,
            ],
            id="three-changes-that-hold-still-are-three-changes-not-flapping",
        ),
        pytest.param(
            [OK, snap(False, "disconnected"), snap(False, "disconnected")],
            False,
            [NONE, NONE, ["change:pin_removed", "change:disconnected"]],
            id="two-changes-in-one-poll-two-events",
        ),
        pytest.param(
            [OK, snap(None, None), snap(None, "connected"), snap(False, None), snap(None, None), PIN_GONE],
            False,
            [NONE, NONE, NONE, NONE, NONE, ["change:pin_removed"]],
            id="unanswered-polls-learn-nothing-and-break-no-run",
        ),
        pytest.param(
            [OK, snap(True, "phone_offline"), DOWN, DOWN],
            False,
            [NONE, NONE, NONE, ["change:disconnected"]],
            id="a-new-value-replaced-before-it-settled-reports-the-last",
        ),
        pytest.param(
            [OK, PIN_GONE, OK, OK, OK],
            False,
            [NONE, NONE, ["flapping:flapping"], NONE, NONE],
            id="a-one-poll-blip-is-reported-as-flapping",
        ),
        pytest.param(
            [OK, DOWN, OK, DOWN, OK, DOWN, OK, DOWN, DOWN, DOWN],
            False,
            [NONE, NONE, ["flapping:flapping"], NONE, NONE, NONE, NONE, NONE, NONE, ["change:disconnected"]],
            id="flapping-fires-once-then-the-value-it-settles-on-within-3-polls",
        ),
        pytest.param(
            [OK, DOWN, OK, DOWN, OK, OK, OK, OK],
            False,
            [NONE, NONE, ["flapping:flapping"], NONE, NONE, NONE, NONE, NONE],
            id="flapping-that-settles-back-fires-nothing-more",
        ),
        pytest.param(
            [OK, OK, DOWN, DOWN, OK, OK, DOWN, DOWN, OK, OK],
            False,
            [
                NONE,
                NONE,
                NONE,
                ["change:disconnected"],
                NONE,
                ["change:reconnected"],
                NONE,
                ["change:disconnected"],
                ["flapping:flapping"],
                NONE,
            ],
            id="slow-flapping-is-caught-by-its-count-of-changes",
        ),
        pytest.param(
            [snap(error=AUTH)] * 3 + [snap(error=NOT_FOUND)] * 10,
            False,
            [["error:PlugzAuthenticationError"], *[NONE] * 9, ["error:PlugzNotFoundError"], NONE, NONE],
            id="an-error-fires-once-another-error-at-most-one-per-10-polls",
        ),
        pytest.param(
            [not_found(i) for i in range(29)],
            False,
            [["error:PlugzNotFoundError"], *[NONE] * 28],
            id="an-error-is-its-class-and-status-not-its-text",
        ),
        pytest.param(
            [snap(error=AUTH), snap(error=AUTH.replace("403", "401"))],
            False,
            [["error:PlugzAuthenticationError"], NONE],
            id="another-status-is-another-error-but-not-within-10-polls",
        ),
        pytest.param(
            [OK, snap(error=AUTH), OK, snap(error=AUTH)] * 5,
            False,
            [
                NONE,
                ["error:PlugzAuthenticationError"],
                *[NONE] * 9,
                ["error:PlugzAuthenticationError"],
                *[NONE] * 8,
            ],
            id="an-error-between-good-answers-at-most-once-per-10-polls",
        ),
        pytest.param(
            [OK, snap(error=AUTH), PIN_GONE, PIN_GONE],
            False,
            [NONE, ["error:PlugzAuthenticationError"], NONE, ["change:pin_removed"]],
            id="a-change-behind-an-error-fires-when-answers-come-back",
        ),
        pytest.param(
            [snap(error=BAD_CONN), PIN_GONE],
            True,
            [["error:PlugzConfigurationError"], ["baseline:no_pin"]],
            id="an-error-first-then-the-baseline",
        ),
    ],
)
def test_change_rules(snapshots: list[dict[str, Any]], flag: bool, expected: list[list[str]]) -> None:
    assert fired(snapshots, fire_on_bad_baseline=flag) == expected


CYCLES = {
    "pin": [True, False],
    "connected-disconnected": ["connected", "disconnected"],
    "three-states": ["connected", "phone_offline", "disconnected"],
    "each-value-twice": ["connected", "connected", "session_lost", "session_lost"],
}


@pytest.mark.parametrize("cycle", [pytest.param(values, id=name) for name, values in CYCLES.items()])
@pytest.mark.parametrize(
    "error_every", [pytest.param(0, id="no-errors"), pytest.param(3, id="errors-between")]
)
def test_a_value_that_keeps_changing_fires_at_most_one_event_per_10_polls(
    cycle: list[Any], error_every: int
) -> None:
    """200 polls of a value that changes on every poll (or every other), with or without a
    permanent error between them: it is found flapping within the first 10 polls that answered,
    and from then on never more than one event in any 10 polls; errors at most one per 10 polls."""
    name = "pin" if isinstance(cycle[0], bool) else "connection"
    detector = ChangeDetector("plugz_x", (name,), False)
    per_poll: list[list[dict[str, Any]]] = []
    for poll in range(200):
        if error_every and poll % error_every == error_every - 1:
            per_poll.append(detector.feed(snap(error=AUTH)))
            continue
        per_poll.append(detector.feed(snap(**{name: cycle[poll % len(cycle)]})))
    statuses = [e["status"] for events in per_poll for e in events]
    assert "flapping" in statuses
    first_flap = next(
        i for i, events in enumerate(per_poll) if any(e["status"] == "flapping" for e in events)
    )
    assert first_flap < (15 if error_every else 10)  # every third poll is an error
    for start in range(first_flap, 200 - 10):
        window = [e for events in per_poll[start : start + 10] for e in events if e["status"] != "error"]
        assert len(window) <= 1, (start, window)
    errors = [i for i, events in enumerate(per_poll) for e in events if e["status"] == "error"]
    assert all(b - a >= 10 for a, b in itertools.pairwise(errors))


HISTORIES = {
    "steady": [OK] * 5,
    "after-a-change": [OK, PIN_GONE, PIN_GONE, OK, OK],
    "after-a-blip": [OK, OK, PIN_GONE, OK, OK],
    "after-flapping": [OK, PIN_GONE, OK, PIN_GONE, OK, PIN_GONE, OK],
    "after-an-error": [OK, snap(error=AUTH), OK],
    "after-transient-gaps": [OK, snap(), OK, snap(), OK],
}


@pytest.mark.parametrize("history", [pytest.param(h, id=name) for name, h in HISTORIES.items()])
def test_a_change_that_holds_still_fires_within_3_polls(history: list[dict[str, Any]]) -> None:
    detector = ChangeDetector("plugz_x", ("pin",), False)
    for snapshot in history:
        detector.feed(snapshot)
    assert detector.known == {"pin": True}
    fired_after = [
        [e["change"] for e in detector.feed(PIN_GONE) if e["status"] == "change"] for _poll in range(3)
    ]
    assert ["pin_removed"] in fired_after, fired_after
    assert [kind for kinds in fired_after for kind in kinds] == ["pin_removed"]


def test_change_and_flapping_event_payloads_are_small_and_json_safe() -> None:
    detector = ChangeDetector("plugz_x", ("pin",), False)
    detector.feed(snap(pin=True))
    detector.feed(snap(pin=False))
    (event,) = detector.feed(snap(pin=False))
    assert event == {
        "status": "change",
        "plugz_conn_id": "plugz_x",
        "watch": "pin",
        "change": "pin_removed",
        "old": True,
        "new": False,
        "observed_at": "2026-12-02T01:00:00.000+00:00",
    }
    detector.feed(snap(pin=True))
    (flapping,) = detector.feed(snap(pin=False))
    assert flapping == {
        "status": "flapping",
        "plugz_conn_id": "plugz_x",
        "watch": "pin",
        "change": "flapping",
        "old": False,
        "new": False,
        "values": [True, False],
        "changes": 3,
        "polls": 5,
        "observed_at": "2026-12-02T01:00:00.000+00:00",
    }
    for payload in (event, flapping):
        assert json.loads(json.dumps(payload)) == payload


# --- in an event loop, against the sandbox -----------------------------------------------------


@pytest.fixture
def plugz(sandbox: PlugzSandbox, monkeypatch: pytest.MonkeyPatch) -> PlugzSandbox:
    """The sandbox, its connection with one attempt per call: each fault reaches the trigger."""
    conn = json.loads(sandbox.connection_json(INSTANCE_ID))
    conn["extra"]["max_attempts"] = 1
    monkeypatch.setenv("AIRFLOW_CONN_PLUGZ_DEFAULT", json.dumps(conn))
    sandbox.set_has_code(INSTANCE_ID, True)
    return sandbox


class Watch:
    """A trigger's ``run()`` consumed in the background; its events collected as they fire."""

    def __init__(self, trigger: PlugzSecurityEventTrigger, sandbox: PlugzSandbox) -> None:
        self.trigger, self.sandbox = trigger, sandbox
        self.events: list[dict[str, Any]] = []
        self.task: asyncio.Task[None] | None = None

    async def _consume(self) -> None:
        async for event in self.trigger.run():
            self.events.append(event.payload)

    def start(self) -> Watch:
        self.task = asyncio.ensure_future(self._consume())
        return self

    async def until_events(self, count: int) -> None:
        """Wait until ``count`` events fired in all (bounded)."""
        await until(lambda: len(self.events) >= count, what=f"{count} events")

    async def polls(self, count: int) -> None:
        """Wait until ``count`` more polls (each: one request per watched endpoint) ended."""
        target = self.sandbox.request_count + count * len(self.trigger.watch)
        await until(lambda: self.sandbox.request_count >= target, what=f"{count} polls")
        await asyncio.sleep(TICK / 2)  # the last answer is read and fed before we look

    async def stop(self) -> None:
        """Cancel it, as a triggerer that stops does; it must end at once."""
        assert self.task is not None
        self.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(self.task, timeout=5)


async def until(condition: Callable[[], bool], *, what: str, timeout: float = 10) -> None:
    async def wait() -> None:
        while not condition():
            await asyncio.sleep(0.002)

    try:
        await asyncio.wait_for(wait(), timeout)
    except TimeoutError:
        pytest.fail(f"waited {timeout} s for {what}")


def changes(events: list[dict[str, Any]]) -> list[str]:
    return [e.get("change") or e["error_class"] for e in events]


def test_each_flip_fires_exactly_one_event_and_steady_states_none(plugz: PlugzSandbox) -> None:
    async def scenario() -> list[dict[str, Any]]:
        watch = Watch(PlugzSecurityEventTrigger("plugz_default", poll_interval=TICK), plugz).start()
        await watch.polls(3)
        assert watch.events == []  # baseline: PIN set, connected
        seen = []
        for flip, kind in (
            (lambda: plugz.set_has_code(INSTANCE_ID, False), "pin_removed"),
            (lambda: plugz.set_state(INSTANCE_ID, "disconnected"), "disconnected"),
            (lambda: plugz.set_state(INSTANCE_ID, "phone-offline"), "connection_changed"),
            (lambda: plugz.set_state(INSTANCE_ID, "connected"), "reconnected"),
            (lambda: plugz.set_has_code(INSTANCE_ID, True), "pin_set"),
        ):
            flip()
            await watch.polls(4)  # the flip seen, then a steady state for 3 more polls
            seen.append(kind)
            assert changes(watch.events) == seen
        await watch.stop()
        return watch.events

    events = asyncio.run(scenario())
    assert [(e["old"], e["new"]) for e in events] == [
        (True, False),
        ("connected", "disconnected"),
        ("disconnected", "phone_offline"),
        ("phone_offline", "connected"),
        (False, True),
    ]
    for event in events:
        assert event["status"] == "change"
        assert event["plugz_conn_id"] == "plugz_default"
        assert event["observed_at"].endswith("+00:00")
        assert json.loads(json.dumps(event)) == event


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param(Fault.status(503), id="503"),
        pytest.param(Fault.status(429), id="429"),
        pytest.param(Fault.drop(), id="dropped-connection"),
    ],
)
def test_transient_faults_fire_nothing(plugz: PlugzSandbox, fault: Fault) -> None:
    async def scenario() -> list[dict[str, Any]]:
        watch = Watch(
            PlugzSecurityEventTrigger("plugz_default", watch="pin", poll_interval=TICK), plugz
        ).start()
        await watch.polls(2)
        plugz.inject(fault, times=5)
        await watch.polls(8)
        assert plugz.pending_faults == []
        plugz.set_has_code(INSTANCE_ID, False)  # and it still sees a change afterwards
        await watch.polls(2)
        await watch.stop()
        return watch.events

    assert changes(asyncio.run(scenario())) == ["pin_removed"]


def test_transient_faults_before_the_baseline_fire_nothing(plugz: PlugzSandbox) -> None:
    plugz.set_has_code(INSTANCE_ID, False)
    plugz.inject(Fault.status(503), times=3)

    async def scenario() -> list[dict[str, Any]]:
        trigger = PlugzSecurityEventTrigger("plugz_default", watch="pin", poll_interval=TICK)
        watch = Watch(trigger, plugz).start()
        await watch.polls(6)
        await watch.stop()
        return watch.events

    assert asyncio.run(scenario()) == []


def test_a_permanent_error_fires_once_and_the_fixed_connection_is_read_again(
    plugz: PlugzSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = json.loads(plugz.connection_json(INSTANCE_ID))
    revoked = json.loads(json.dumps(good))
    revoked["extra"]["client_token"] = "REVOKED-CLIENT-TOKEN-0001"

    async def scenario() -> list[dict[str, Any]]:
        watch = Watch(PlugzSecurityEventTrigger("plugz_default", poll_interval=TICK), plugz).start()
        await watch.polls(2)
        plugz.inject(
            Fault.status(403, body={"error": f"Client-Token {CLIENT_TOKEN} not allowed"}), times=1000
        )
        await watch.until_events(1)
        await watch.polls(5)
        assert changes(watch.events) == ["PlugzAuthenticationError"]  # not repeated
        plugz.clear_faults()
        monkeypatch.setenv("AIRFLOW_CONN_PLUGZ_DEFAULT", json.dumps(revoked))  # read again: another text
        await until(
            lambda: plugz.requests[-1].headers.get("client-token") == "REVOKED-CLIENT-TOKEN-0001",
            what="a poll with the connection read again",
        )
        await watch.polls(5)
        assert changes(watch.events) == ["PlugzAuthenticationError"]  # same class and status: same error
        plugz.set_has_code(INSTANCE_ID, False)  # a change while the credentials are bad
        monkeypatch.setenv("AIRFLOW_CONN_PLUGZ_DEFAULT", json.dumps(good))  # fixed: no restart needed
        await watch.until_events(2)
        await watch.polls(3)
        await watch.stop()
        return watch.events

    events = asyncio.run(scenario())
    assert changes(events) == ["PlugzAuthenticationError", "pin_removed"]
    first = events[0]
    assert set(first) == {"status", "plugz_conn_id", "error_class", "message", "observed_at"}
    assert first["status"] == "error"
    assert "Client-Token *** not allowed" in first["message"]
    assert_no_secrets(json.dumps(events), secrets=(CLIENT_TOKEN, "REVOKED-CLIENT-TOKEN-0001"))


def test_an_unknown_instance_is_one_error_event(plugz: PlugzSandbox) -> None:
    async def scenario() -> list[dict[str, Any]]:
        watch = Watch(PlugzSecurityEventTrigger("plugz_default", poll_interval=TICK), plugz).start()
        await watch.polls(2)
        plugz.remove_instance(INSTANCE_ID)
        await watch.until_events(1)
        await watch.polls(4)
        await watch.stop()
        return watch.events

    assert changes(asyncio.run(scenario())) == ["PlugzNotFoundError"]


@pytest.fixture
def flipping(plugz: PlugzSandbox, monkeypatch: pytest.MonkeyPatch) -> Callable[[bool], None]:
    """``flip(True)``: from now on the sandbox answers every ``GET .../status`` with the other of
    connected and disconnected, whatever the instance's state; ``flip(False)``: the state again."""
    from airflow_provider_plugz.testing.sandbox import _api

    real = dict(_api._STATUS)

    class Flipping(dict):  # type: ignore[type-arg]
        on = False
        answers = 0

        def __getitem__(self, state: Any) -> Any:
            if not self.on:
                return real[state]
            self.answers += 1
            return real["disconnected" if self.answers % 2 else "connected"]

    table = Flipping(real)
    monkeypatch.setattr(_api, "_STATUS", table)

    def flip(on: bool) -> None:
        table.on = on

    return flip


def test_a_server_flapping_on_every_poll_fires_one_event_then_the_state_it_settles_on(
    plugz: PlugzSandbox, flipping: Callable[[bool], None]
) -> None:
    """Connected and disconnected on alternate polls for 40 polls: one ``flapping`` event (not 40
    changes, not one per 10 polls either); settled on disconnected, one ``disconnected`` within
    3 polls."""

    async def scenario() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        trigger = PlugzSecurityEventTrigger("plugz_default", watch="connection", poll_interval=TICK)
        watch = Watch(trigger, plugz).start()
        await watch.polls(2)
        flipping(True)
        await watch.polls(40)
        while_flapping = list(watch.events)
        plugz.set_state(INSTANCE_ID, "disconnected")
        flipping(False)
        await watch.polls(4)  # at most one poll in flight answered the flip, then 3 that hold still
        await watch.stop()
        return while_flapping, watch.events

    while_flapping, events = asyncio.run(scenario())
    assert [e["status"] for e in while_flapping] == ["flapping"]
    (flap,) = while_flapping
    assert flap["watch"] == "connection"
    assert flap["old"] == "connected"
    assert sorted(flap["values"]) == ["connected", "disconnected"]
    assert changes(events) == ["flapping", "disconnected"]
    assert (events[1]["old"], events[1]["new"]) == ("connected", "disconnected")


def test_a_connection_that_cannot_be_read_is_one_error_event_and_the_watch_starts_when_fixed(
    plugz: PlugzSandbox, monkeypatch: pytest.MonkeyPatch, unreadable_connection: UnreadableConnection
) -> None:
    """The watcher never dies on its connection: one error event saying what to fix, then it keeps
    polling (reading the connection every time) and fires nothing more; once the connection is
    fixed it takes its baseline and reports what changes after. No host is known while the
    connection cannot be read, so it polls at the real-host floor, lowered here for speed."""
    from airflow_provider_plugz import _intervals
    from airflow_provider_plugz.hooks.plugz import PlugzHook

    monkeypatch.setattr(_intervals, "MIN_INTERVAL", TICK)
    good = os.environ["AIRFLOW_CONN_PLUGZ_DEFAULT"]
    reads: list[str] = []
    real = PlugzHook._read_config

    def counted(self: PlugzHook) -> Any:
        reads.append(self.plugz_conn_id)
        return real(self)

    monkeypatch.setattr(PlugzHook, "_read_config", counted)

    async def scenario() -> list[dict[str, Any]]:
        with unreadable_connection:
            watch = Watch(PlugzSecurityEventTrigger("plugz_default", poll_interval=TICK), plugz).start()
            await watch.until_events(1)
            before = len(reads)
            await until(lambda: len(reads) >= before + 5, what="5 more polls reading the connection")
            assert len(watch.events) == 1  # nothing more while it stays broken
            assert plugz.request_count == 0  # and nothing sent with a connection it could not read
        assert os.environ["AIRFLOW_CONN_PLUGZ_DEFAULT"] == good  # fixed
        await watch.polls(3)  # the baseline: fires nothing
        plugz.set_has_code(INSTANCE_ID, False)
        await watch.until_events(2)
        await watch.stop()
        return watch.events

    events = asyncio.run(scenario())
    assert changes(events) == ["PlugzConfigurationError", "pin_removed"]
    unreadable_connection.check(events[0]["message"])


def test_an_unexpected_exception_is_one_error_event_and_the_watch_goes_on(
    plugz: PlugzSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug (here: the hook raising a KeyError whose text holds a secret) never ends the watch:
    an error event named by the class, its text left out; cancellation still ends it (stop())."""
    from airflow_provider_plugz.hooks.plugz import PlugzHook

    real = PlugzHook.acall
    failing = {"on": False}

    async def acall(self: PlugzHook, *args: Any, **kwargs: Any) -> Any:
        if failing["on"]:
            raise KeyError(CLIENT_TOKEN)
        return await real(self, *args, **kwargs)

    monkeypatch.setattr(PlugzHook, "acall", acall)

    async def scenario() -> list[dict[str, Any]]:
        watch = Watch(
            PlugzSecurityEventTrigger("plugz_default", watch="pin", poll_interval=TICK), plugz
        ).start()
        await watch.polls(2)
        failing["on"] = True
        await watch.until_events(1)
        await asyncio.sleep(TICK * 5)
        failing["on"] = False
        plugz.set_has_code(INSTANCE_ID, False)
        await watch.until_events(2)
        await watch.stop()
        return watch.events

    events = asyncio.run(scenario())
    assert changes(events) == ["KeyError", "pin_removed"]
    assert "bug" in events[0]["message"]
    assert_no_secrets(json.dumps(events))


def test_a_bug_in_the_change_rules_is_one_error_event_per_kind_and_the_watch_goes_on(
    plugz: PlugzSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = ChangeDetector.feed
    broken = {"on": False}

    def feed(self: ChangeDetector, snapshot: Any) -> Any:
        if broken["on"]:
            raise ZeroDivisionError(CLIENT_TOKEN)
        return real(self, snapshot)

    monkeypatch.setattr(ChangeDetector, "feed", feed)

    async def scenario() -> list[dict[str, Any]]:
        watch = Watch(
            PlugzSecurityEventTrigger("plugz_default", watch="pin", poll_interval=TICK), plugz
        ).start()
        await watch.polls(2)
        broken["on"] = True
        await watch.polls(5)  # five polls, one bug: one event
        broken["on"] = False
        plugz.set_has_code(INSTANCE_ID, False)
        await watch.until_events(2)
        await watch.stop()
        return watch.events

    events = asyncio.run(scenario())
    assert changes(events) == ["ZeroDivisionError", "pin_removed"]
    assert set(events[0]) == {"status", "plugz_conn_id", "error_class", "message", "observed_at"}
    assert_no_secrets(json.dumps(events))


def load_stored(kwargs: dict[str, Any]) -> PlugzSecurityEventTrigger:
    """Build the trigger as the triggerer does after a restart: classpath and stored kwargs."""
    try:  # Airflow 3
        from airflow._shared.module_loading import import_string
    except ImportError:  # Airflow 2
        from airflow.utils.module_loading import import_string  # type: ignore[import-not-found,no-redef]

    trigger: PlugzSecurityEventTrigger = import_string(CLASSPATH)(**json.loads(json.dumps(kwargs)))
    return trigger


@pytest.mark.parametrize(
    ("fire_on_bad_baseline", "after_restart"),
    [
        pytest.param(False, [], id="re-baselines-silently"),
        pytest.param(True, ["no_pin"], id="bad-baseline-fires-once-when-asked"),
    ],
)
def test_a_restart_rebuilds_from_serialize_and_fires_nothing_spurious(
    plugz: PlugzSandbox, fire_on_bad_baseline: bool, after_restart: list[str]
) -> None:
    async def scenario() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        first = PlugzSecurityEventTrigger("plugz_default", watch="pin", poll_interval=TICK)
        before = Watch(first, plugz).start()
        await before.polls(2)
        plugz.set_has_code(INSTANCE_ID, False)
        await before.polls(2)
        await before.stop()  # the triggerer stops
        path, kwargs = first.serialize()
        assert path == CLASSPATH
        kwargs["fire_on_bad_baseline"] = fire_on_bad_baseline
        after = Watch(load_stored(kwargs), plugz).start()  # a new triggerer takes it over
        await after.polls(5)
        assert changes(after.events) == after_restart
        plugz.set_has_code(INSTANCE_ID, True)
        await after.polls(2)
        await after.stop()
        return before.events, after.events

    before, after = asyncio.run(scenario())
    assert changes(before) == ["pin_removed"]
    assert changes(after) == [*after_restart, "pin_set"]


def test_a_change_during_the_downtime_is_the_new_baseline(plugz: PlugzSandbox) -> None:
    async def scenario() -> list[dict[str, Any]]:
        trigger = PlugzSecurityEventTrigger("plugz_default", poll_interval=TICK)
        before = Watch(trigger, plugz).start()
        await before.polls(2)
        await before.stop()
        plugz.set_has_code(INSTANCE_ID, False)  # while no triggerer runs
        after = Watch(load_stored(trigger.serialize()[1]), plugz).start()
        await after.polls(4)
        await after.stop()
        return before.events + after.events

    assert asyncio.run(scenario()) == []


# --- many watchers, one poll (Airflow 3.3's shared streams) ------------------------------------

needs_shared_streams = pytest.mark.skipif(
    not has_shared_streams(), reason="this Airflow's triggerer has no shared poll streams (3.3+)"
)


class CountingTrigger(PlugzSecurityEventTrigger):
    """The trigger, counting how many shared polls the manager opened for its watchers."""

    opened: ClassVar[list[tuple[str, ...]]] = []

    @classmethod
    async def open_shared_stream(cls, kwargs: dict[str, Any]) -> AsyncIterator[Any]:
        cls.opened.append(tuple(kwargs["watch"]))
        async for snapshot in super().open_shared_stream(kwargs):
            yield snapshot


class Subscribers:
    """Watchers subscribed to Airflow's own SharedStreamManager, as the 3.3 triggerer does it
    (``shared_stream_key`` -> ``subscribe`` -> ``filter_shared_stream`` -> ``unsubscribe``)."""

    def __init__(self) -> None:
        from airflow.triggers.shared_stream import SharedStreamManager

        self.manager = SharedStreamManager()
        self.events: dict[int, list[dict[str, Any]]] = {}
        self.tasks: list[asyncio.Future[None]] = []

    def add(self, trigger: PlugzSecurityEventTrigger) -> int:
        trigger_id = len(self.tasks)
        self.events[trigger_id] = []

        async def consume() -> None:
            key = trigger.shared_stream_key()
            stream = self.manager.subscribe(trigger_id=trigger_id, trigger=trigger, key=key)
            try:
                async for event in trigger.filter_shared_stream(stream):
                    self.events[trigger_id].append(event.payload)
            finally:
                await self.manager.unsubscribe(trigger_id, key)

        self.tasks.append(asyncio.ensure_future(consume()))
        return trigger_id

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        assert self.manager._groups == {}  # the last one to leave stopped each poll


@needs_shared_streams
def test_watchers_of_one_instance_share_one_poll_in_airflows_shared_stream_manager(
    plugz: PlugzSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three watchers with one key: one poll, each its own events; one watching only the PIN polls
    apart (another key)."""
    monkeypatch.setattr(CountingTrigger, "opened", [])
    both = [
        CountingTrigger("plugz_default", poll_interval=TICK),
        CountingTrigger("plugz_default", poll_interval=TICK),
        CountingTrigger("plugz_default", poll_interval=TICK, fire_on_bad_baseline=True),
    ]
    pin_only = CountingTrigger("plugz_default", watch="pin", poll_interval=TICK)

    async def scenario() -> dict[int, list[dict[str, Any]]]:
        subscribers = Subscribers()
        for trigger in [*both, pin_only]:
            subscribers.add(trigger)
        watch = Watch(both[0], plugz)
        await watch.polls(6)
        plugz.set_has_code(INSTANCE_ID, False)
        await watch.polls(6)
        await subscribers.stop()
        return subscribers.events

    events = asyncio.run(scenario())
    assert sorted(CountingTrigger.opened) == [("pin",), ("pin", "connection")]
    assert [changes(events[i]) for i in range(4)] == [["pin_removed"]] * 4
    # The three of one key saw the flip in the same poll.
    assert len({events[i][0]["observed_at"] for i in range(3)}) == 1


@needs_shared_streams
def test_a_watcher_joining_a_running_stream_takes_its_own_baseline(plugz: PlugzSandbox) -> None:
    early, late = (
        PlugzSecurityEventTrigger("plugz_default", watch="pin", poll_interval=TICK) for _ in range(2)
    )

    async def scenario() -> dict[int, list[dict[str, Any]]]:
        subscribers = Subscribers()
        watch = Watch(early, plugz)
        subscribers.add(early)
        await watch.polls(2)
        plugz.set_has_code(INSTANCE_ID, False)
        await watch.polls(2)
        subscribers.add(late)  # joins the running poll with the PIN already removed
        await watch.polls(3)
        plugz.set_has_code(INSTANCE_ID, True)
        await watch.polls(2)
        await subscribers.stop()
        return subscribers.events

    events = asyncio.run(scenario())
    assert (changes(events[0]), changes(events[1])) == (["pin_removed", "pin_set"], ["pin_set"])


@pytest.mark.parametrize(("echo", "shown"), PHONE_ECHOES)
def test_an_error_event_masks_a_phone_the_server_echoes(plugz: PlugzSandbox, echo: str, shown: str) -> None:
    plugz.inject(Fault.status(400, body={"error": echo}))

    async def scenario() -> list[dict[str, Any]]:
        watch = Watch(PlugzSecurityEventTrigger("plugz_default", poll_interval=TICK), plugz).start()
        await watch.until_events(1)
        await watch.stop()
        return watch.events

    (event,) = asyncio.run(scenario())
    assert event["status"] == "error"
    assert f"HTTP 400: {shown}." in event["message"]
    assert_no_phone(json.dumps(event))


def test_the_queue_is_watchable_by_its_declaration_alone(plugz: PlugzSandbox) -> None:
    """``watch="queue"``: messages piling up fire ``queue_filled``, the queue draining
    ``queue_emptied`` (the names the fact declares); a bad baseline ``messages_queued``. A queued
    message's phone and text are never in an event."""
    from airflow_provider_plugz.hooks.plugz import PlugzHook

    phone, text = "5511987654321", "Paciente Joao S. HIV+"

    async def scenario() -> list[dict[str, Any]]:
        trigger = PlugzSecurityEventTrigger("plugz_default", watch="queue", poll_interval=TICK)
        assert trigger.serialize()[1]["watch"] == ["queue"]
        watch = Watch(trigger, plugz).start()
        await watch.polls(3)
        assert watch.events == []  # baseline: an empty queue
        plugz.set_state(INSTANCE_ID, "disconnected")
        await asyncio.to_thread(PlugzHook().send_text, phone, text)  # waits: not connected
        await watch.polls(4)
        plugz.set_state(INSTANCE_ID, "connected")  # connecting sends what was queued
        await watch.polls(4)
        await watch.stop()
        return watch.events

    events = asyncio.run(scenario())
    assert [(e["watch"], e["change"], e["old"], e["new"]) for e in events] == [
        ("queue", "queue_filled", "empty", "queued"),
        ("queue", "queue_emptied", "queued", "empty"),
    ]
    assert "HIV" not in json.dumps(events)
    assert "87654321" not in json.dumps(events)


def test_a_queue_already_filled_fires_its_baseline_when_asked() -> None:
    detector = ChangeDetector("plugz_default", ("queue",), fire_on_bad_baseline=True)
    [event] = detector.feed({"queue": "queued", "error": None, "observed_at": "t"})
    assert (event["status"], event["change"], event["new"]) == ("baseline", "messages_queued", "queued")
