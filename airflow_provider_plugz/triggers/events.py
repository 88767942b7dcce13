"""A watcher for event-driven DAGs: fire the moment a number loses (or regains) its PIN or connection.

:class:`PlugzSecurityEventTrigger` is a ``BaseEventTrigger``: put it in an ``AssetWatcher`` and
the DAG scheduled on that asset runs as soon as something changes, with the waiting done in
the triggerer. It never ends: each poll is compared with the last one seen and only a *change*
fires (a steady state fires nothing, or the DAG would run forever).

The work is split the way Airflow 3.3's shared poll streams want it:

- :meth:`~PlugzSecurityEventTrigger.open_shared_stream` polls the instance every
  ``poll_interval`` seconds and yields one raw *snapshot* per poll (what each watched endpoint
  answered, or the permanent error). Where the running triggerer has shared streams, one such
  poll serves every watcher with the same :meth:`~PlugzSecurityEventTrigger.shared_stream_key`.
- :meth:`~PlugzSecurityEventTrigger.filter_shared_stream` turns the snapshots into this
  watcher's events through a :class:`ChangeDetector`, which keeps the baseline.
- :meth:`~PlugzSecurityEventTrigger.run` chains the two for one watcher alone (Airflow 3.0-3.2,
  tests).

Events (JSON-safe, secret-free; ``observed_at`` is ISO-8601 UTC)::

    {"status": "change", "plugz_conn_id": "plugz_default", "watch": "pin",
     "change": "pin_removed", "old": True, "new": False, "observed_at": "2026-..."}
    {"status": "baseline", ..., "change": "no_pin", "old": None, "new": False, ...}
    {"status": "flapping", ..., "watch": "connection", "change": "flapping", "old": "connected",
     "new": "connected", "values": ["connected", "disconnected"], "changes": 2, "polls": 3, ...}
    {"status": "error", "plugz_conn_id": "...", "error_class": "PlugzAuthenticationError",
     "message": "...", "observed_at": "..."}

Nothing else leaves :meth:`~PlugzSecurityEventTrigger.run`: a connection that cannot be read
(missing, of another type, malformed) is a ``PlugzConfigurationError`` error event, and an
unexpected exception (a bug) an error event named by its class; the watcher keeps polling
either way. Only cancellation (the triggerer stopping it) ends it.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import datetime
import itertools
import logging
from collections.abc import Hashable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import TriggerEvent

from airflow_provider_plugz import _intervals
from airflow_provider_plugz._compat import event_trigger_base
from airflow_provider_plugz.endpoints import CONNECTION, FACTS, PIN
from airflow_provider_plugz.exceptions import PlugzError, PlugzTransientError, PlugzTriggerArgumentError
from airflow_provider_plugz.triggers.plugz import (
    EVENT_ERROR,
    close_hook,
    error_event,
    hook_class,
    read_connection,
    unexpected_error_event,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from airflow.triggers.base import BaseEventTrigger

    from airflow_provider_plugz.hooks.plugz import PlugzHook
else:
    BaseEventTrigger = event_trigger_base()

log = logging.getLogger(__name__)

#: What a watcher watches unless told: the PIN (``has_code``) and the connection state.
WATCH_PIN = PIN.name
WATCH_CONNECTION = CONNECTION.name
WATCHES = (WATCH_PIN, WATCH_CONNECTION)
#: What a watcher can watch: every fact declared beside its endpoint
#: (:data:`airflow_provider_plugz.endpoints.FACTS`), by name, each fact's state compared.
WATCHABLE = tuple(FACTS)

EVENT_CHANGE = "change"
EVENT_BASELINE = "baseline"
EVENT_FLAPPING = "flapping"

#: ``change`` of a change event: PIN (each fact names its changes, ``Fact.change``).
PIN_REMOVED, PIN_SET = PIN.change(True, False), PIN.change(False, True)
#: ``change`` of a change event: connection (between two not-connected states: ``connection_changed``).
DISCONNECTED = CONNECTION.change("connected", "disconnected")
RECONNECTED = CONNECTION.change("disconnected", "connected")
CONNECTION_CHANGED = CONNECTION.change("disconnected", "phone_offline")
#: ``change`` of a baseline event (``fire_on_bad_baseline``; each fact's ``Fact.baseline``).
NO_PIN, NOT_CONNECTED = PIN.baseline, CONNECTION.baseline
#: ``change`` of a flapping event.
FLAPPING = "flapping"


class PlugzSecurityEventTrigger(BaseEventTrigger):
    """Watch one Plugz connection's PIN and/or connection state; fire an event on each change.

    The first good observation is the baseline: it fires nothing, unless
    ``fire_on_bad_baseline`` and the state is bad (no PIN, not connected), which fires one
    ``baseline`` event. After that, a change of a watched value that holds still fires one
    ``change`` event, and a value that will not hold still fires one ``flapping`` event and then
    nothing until it settles (the rules: :class:`ChangeDetector`). Transient errors (network,
    429, 5xx) are logged and never fire. A permanent error (bad credentials, unknown instance,
    a connection that is missing, of another type or malformed) fires one ``error`` event;
    errors are told apart by class and HTTP status, never by their text, and at most one error
    event fires per 10 polls. After a permanent error the connection is read again on the next
    poll, so a fixed connection is picked up without a restart; the baseline is kept, so a
    change hidden behind the error fires when the answers come back.

    After a triggerer restart the trigger is built again from :meth:`serialize` and takes a new
    baseline: a change that happened while no triggerer ran fires nothing (with
    ``fire_on_bad_baseline`` a bad state then fires its one ``baseline`` event).

    :param plugz_conn_id: the Airflow connection of the number to watch.
    :param watch: what to watch: ``"pin"``, ``"connection"`` or both (the default), or any fact
        of :data:`WATCHABLE` (each declared beside its endpoint, e.g. ``"queue"``), by name.
    :param poll_interval: seconds between two polls (bounds and floor: :mod:`.._intervals`).
    :param fire_on_bad_baseline: fire once when the first observation is already bad.
    :raises PlugzTriggerArgumentError: a bad argument (also a ``TypeError``).
    """

    def __init__(
        self,
        plugz_conn_id: str = "plugz_default",
        watch: str | Iterable[str] = WATCHES,
        poll_interval: float = 60.0,
        fire_on_bad_baseline: bool = False,
    ) -> None:
        super().__init__()
        self.plugz_conn_id = plugz_conn_id
        self.watch = _checked_watch(watch)
        self.poll_interval = _intervals.seconds(
            poll_interval,
            name="PlugzSecurityEventTrigger: poll_interval",
            maximum=_intervals.MAX_INTERVAL,
            error=PlugzTriggerArgumentError,
        )
        if not isinstance(fire_on_bad_baseline, bool):
            raise PlugzTriggerArgumentError(
                "PlugzSecurityEventTrigger: fire_on_bad_baseline must be True or False, "
                f"not {type(fire_on_bad_baseline).__name__}."
            )
        self.fire_on_bad_baseline = fire_on_bad_baseline

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "plugz_conn_id": self.plugz_conn_id,
                "watch": list(self.watch),
                "poll_interval": self.poll_interval,
                "fire_on_bad_baseline": self.fire_on_bad_baseline,
            },
        )

    # --- Airflow 3.3's shared poll streams (older triggerers never call these)

    def shared_stream_key(self) -> Hashable | None:
        """Watchers of the same connection, endpoints and interval share one poll."""
        return ("plugz-security", self.plugz_conn_id, self.watch, self.poll_interval)

    @classmethod
    async def open_shared_stream(cls, kwargs: dict[str, Any]) -> AsyncIterator[Any]:
        """Poll forever; yield one snapshot per poll (transient failures are only logged)."""
        trigger = cls(**kwargs)  # the kwargs checked again: they may come from an older release
        async for snapshot in poll_snapshots(trigger.plugz_conn_id, trigger.watch, trigger.poll_interval):
            yield snapshot

    async def filter_shared_stream(self, shared_stream: AsyncIterator[Any]) -> AsyncIterator[TriggerEvent]:
        """This watcher's events: the changes the snapshots show against its own baseline."""
        detector = ChangeDetector(self.plugz_conn_id, self.watch, self.fire_on_bad_baseline)
        baseline_logged = False
        last_bug: str | None = None
        async for snapshot in shared_stream:
            try:
                payloads = detector.feed(snapshot)
            except Exception as err:  # a bug: one error event per kind of bug, and the watch goes on
                payloads = []
                if type(err).__name__ != last_bug:
                    last_bug = type(err).__name__
                    failure = unexpected_error_event(err, "reading a poll", self.plugz_conn_id)
                    payloads = [{**failure, "plugz_conn_id": self.plugz_conn_id, "observed_at": utc_now()}]
            if not baseline_logged and len(detector.known) == len(self.watch):
                baseline_logged = True
                log.info("Plugz watcher of %s: baseline %s.", self.plugz_conn_id, detector.describe())
            for payload in payloads:
                log.info(
                    "Plugz watcher of %s fired: %s",
                    self.plugz_conn_id,
                    payload.get("change") or payload.get("error_class"),
                )
                yield TriggerEvent(payload)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """One watcher alone: its own poll (where the triggerer has no shared streams)."""
        async for event in self.filter_shared_stream(type(self).open_shared_stream(self.serialize()[1])):
            yield event


# --- the poll: one snapshot per interval -------------------------------------------------------


async def poll_snapshots(conn_id: str, watch: tuple[str, ...], poll_interval: float) -> AsyncIterator[Any]:
    """Every ``poll_interval`` seconds, one snapshot of ``watch`` on ``conn_id``, forever.

    A snapshot: ``{"observed_at": iso, "pin": bool | None, "connection": state | None,
    "error": None | {"error_class": ..., "http_status": int | None, "message": ...}}``; a value is
    None when it was not watched or its check failed transiently. A poll where every check
    failed transiently yields nothing. A connection that cannot be read, a permanent error and
    an unexpected exception are an ``error``; after one the hook is dropped, so the next poll
    reads the connection again. The interval is raised to the floor of the connection's host
    (:mod:`.._intervals`), the real-host floor while no host is known.
    """
    hook_type = await hook_class()  # its module imported off the loop
    hook: PlugzHook | None = None
    base_url: str | None = None  # the host polled last: its floor holds while the connection is bad
    interval: float | None = None
    try:
        while True:
            if hook is None:
                hook = hook_type(conn_id, require_conn_type=True)
            try:
                base_url = (await read_connection(hook)).base_url
            except PlugzError as err:
                snapshot = _error_snapshot(err)
            else:
                snapshot = await observe(hook, watch)
            if snapshot["error"] is not None:
                await close_hook(hook)
                hook = None
            if snapshot["error"] is not None or any(snapshot[name] is not None for name in watch):
                yield snapshot
            if max(poll_interval, _intervals.floor(base_url)) != interval:  # said once per change
                interval = _intervals.at_least_floor(
                    poll_interval, name="PlugzSecurityEventTrigger poll_interval", base_url=base_url, log=log
                )
            await asyncio.sleep(interval)
    finally:
        if hook is not None:
            await close_hook(hook)


async def observe(hook: Any, watch: tuple[str, ...]) -> dict[str, Any]:
    """One poll of the watched endpoints through ``hook.acall`` (see :func:`poll_snapshots`).

    Never raises but for cancellation: a permanent ``PlugzError`` or an unexpected exception is
    the snapshot's ``error``.
    """
    snapshot: dict[str, Any] = dict.fromkeys(WATCHABLE)
    snapshot["error"] = None
    for name in watch:
        fact = FACTS[name]
        endpoint = fact.endpoint
        try:
            value = fact.state_of(await hook.acall(endpoint))
        except PlugzTransientError as err:
            log.warning("Plugz %s of %s failed, will try again: %s", endpoint.action, hook.plugz_conn_id, err)
            continue
        except Exception as err:  # a permanent PlugzError, or a bug: the snapshot's error
            return _error_snapshot(err, f"the {endpoint.action}", hook.plugz_conn_id)
        snapshot[name] = value
    snapshot["observed_at"] = utc_now()
    return snapshot


def _error_snapshot(err: Exception, doing: str = "", conn_id: str = "") -> dict[str, Any]:
    """A snapshot holding only the error ``err`` (its class, HTTP status and secret-free message)."""
    if isinstance(err, PlugzError):
        failure = {**error_event(err), "http_status": err.http_status}
    else:
        failure = {**unexpected_error_event(err, doing, conn_id), "http_status": None}
    del failure["status"]
    return {**dict.fromkeys(WATCHABLE), "error": failure, "observed_at": utc_now()}


def utc_now() -> str:
    """Now, ISO-8601 in UTC to the millisecond (``2026-12-02T01:02:03.456+00:00``)."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")


# --- the baseline: snapshots in, events out ---------------------------------------------------


@dataclasses.dataclass
class _Track:
    """What a detector remembers of one watched value."""

    reported: Any  # the value last reported: the baseline, then each change fired
    recent: collections.deque[Any]  # the last answers, newest last
    answers: int = 1  # answers so far
    flapping: bool = False
    flapping_fired_at: int | None = None  # ``answers`` when its last flapping event fired


class ChangeDetector:
    """One watcher's memory, and the rules that turn its polls into events.

    Pure (no I/O, no clock): :meth:`feed` takes one snapshot and returns the event payloads it
    causes, in watch order. For each watched value, counting only the polls that answered for it:

    - The first answer is the baseline (with ``fire_on_bad_baseline``, a bad one fires ``baseline``).
    - **Change.** A value other than the last one reported fires one ``change`` once it has been
      seen on :attr:`settle` (2) polls in a row: a change that holds still fires on the second
      poll that sees it.
    - **Flapping.** A value that goes back to the reported one before the new one held still, or
      that changed :attr:`flap_changes` (4) times within the last :attr:`window` (10) polls, is
      flapping: it fires one ``flapping`` event (``old``: the value last reported, ``new``: the
      latest, ``values``: the values it went through, ``changes`` and ``polls``: how many
      changes in how many polls) - at most one per
      :attr:`window` polls - and then nothing until it holds still for :attr:`hold` (3) polls.
      Settled on a value other than the last reported, it then fires that ``change``. So a
      value that changes on every poll fires one event, however long it keeps changing.
    - **Errors.** An error's identity is its class and HTTP status, never its text (which may
      carry a request id). The first error fires at once; after that an error fires when it
      differs from the last error fired, or comes back after a good answer - but at most one
      error event per :attr:`window` polls (one held back fires when that time is up, if it is
      still there).
    """

    #: Polls in a row a new value must be seen on before it is reported.
    settle = 2
    #: Polls a flapping value must hold still before it is reported again.
    hold = 3
    #: Polls looked back on, and the fewest polls between two flapping or two error events.
    window = 10
    #: Changes within :attr:`window` polls that make a value flapping (three changes that each
    #: hold still, e.g. connected -> phone offline -> disconnected -> connected, are not).
    flap_changes = 4

    def __init__(self, conn_id: str, watch: tuple[str, ...], fire_on_bad_baseline: bool) -> None:
        self.conn_id = conn_id
        self.watch = watch
        self.fire_on_bad_baseline = fire_on_bad_baseline
        self.tracks: dict[str, _Track] = {}
        self.polls = 0  # snapshots fed
        self.last_error: tuple[str, int | None] | None = None  # identity of the last error fired
        self.last_error_at: int | None = None  # ``polls`` when it fired
        self.answered_since_error = False

    @property
    def known(self) -> dict[str, Any]:
        """The value last reported of each watched value that has a baseline."""
        return {name: track.reported for name, track in self.tracks.items()}

    def feed(self, snapshot: Mapping[str, Any]) -> list[dict[str, Any]]:
        self.polls += 1
        seen = str(snapshot.get("observed_at"))
        error = snapshot.get("error")
        if error:
            return self._error(error, seen)
        events: list[dict[str, Any]] = []
        for name in self.watch:
            new = snapshot.get(name)
            if new is None:  # not answered this time (a transient failure): nothing learnt
                continue
            self.answered_since_error = True
            track = self.tracks.get(name)
            if track is None:
                self.tracks[name] = _Track(reported=new, recent=collections.deque([new], maxlen=self.window))
                if self.fire_on_bad_baseline and is_bad(name, new):
                    events.append(self._event(EVENT_BASELINE, name, FACTS[name].baseline, None, new, seen))
                continue
            event = self._answer(name, track, new, seen)
            if event is not None:
                events.append(event)
        return events

    def describe(self) -> str:
        """The values known, for log lines (``pin = True, connection = connected``)."""
        known = self.known
        return ", ".join(f"{name} = {known[name]}" for name in self.watch if name in known)

    def _answer(self, name: str, track: _Track, new: Any, seen: str) -> dict[str, Any] | None:
        """One answer for an already baselined value: the event it fires, if any."""
        previous = track.recent[-1]
        track.recent.append(new)
        track.answers += 1
        still = _run_length(track.recent)
        if track.flapping:
            if still < self.hold:
                return None
            track.flapping = False
            return self._report(name, track, new, seen)
        if new != previous:
            back = previous != track.reported and new == track.reported  # went back before settling
            if back or _changes(track.recent) >= self.flap_changes:
                track.flapping = True
                fired = track.flapping_fired_at
                if fired is not None and track.answers - fired < self.window:
                    return None
                track.flapping_fired_at = track.answers
                event = self._event(EVENT_FLAPPING, name, FLAPPING, track.reported, new, seen)
                values = list(dict.fromkeys(track.recent))  # each once, in the order first seen
                return {
                    **event,
                    "values": values,
                    "changes": _changes(track.recent),
                    "polls": len(track.recent),
                }
        if still < self.settle:
            return None
        return self._report(name, track, new, seen)

    def _report(self, name: str, track: _Track, new: Any, seen: str) -> dict[str, Any] | None:
        old = track.reported
        if new == old:
            return None
        track.reported = new
        return self._event(EVENT_CHANGE, name, change_kind(name, old, new), old, new, seen)

    def _error(self, error: Mapping[str, Any], seen: str) -> list[dict[str, Any]]:
        status = error.get("http_status")
        identity = (str(error.get("error_class")), status if isinstance(status, int) else None)
        fresh = identity != self.last_error or self.answered_since_error
        if not fresh:
            return []
        if self.last_error_at is not None and self.polls - self.last_error_at < self.window:
            return []  # too soon after the last error event: held back, fired later if still there
        self.last_error, self.last_error_at = identity, self.polls
        self.answered_since_error = False
        return [
            {
                "status": EVENT_ERROR,
                "plugz_conn_id": self.conn_id,
                "error_class": identity[0],
                "message": str(error.get("message")),
                "observed_at": seen,
            }
        ]

    def _event(self, status: str, name: str, kind: str, old: Any, new: Any, seen: str) -> dict[str, Any]:
        return {
            "status": status,
            "plugz_conn_id": self.conn_id,
            "watch": name,
            "change": kind,
            "old": old,
            "new": new,
            "observed_at": seen,
        }


def _run_length(values: collections.deque[Any]) -> int:
    """How many of the newest ``values`` in a row equal the newest."""
    count = 0
    for value in reversed(values):
        if value != values[-1]:
            break
        count += 1
    return count


def _changes(values: collections.deque[Any]) -> int:
    """How many times ``values`` change from one to the next."""
    return sum(1 for a, b in itertools.pairwise(values) if a != b)


def is_bad(name: str, value: Any) -> bool:
    """Whether ``value`` is a bad state of the fact ``name`` (no PIN, not connected, ...)."""
    return FACTS[name].is_bad(value)


def change_kind(name: str, old: Any, new: Any) -> str:
    """What a change is called in the event's ``change`` field (the fact's own name for it)."""
    return FACTS[name].change(old, new)


def _checked_watch(watch: str | Iterable[str]) -> tuple[str, ...]:
    names = [watch] if isinstance(watch, str) else list(watch) if isinstance(watch, Iterable) else None
    if not names or not all(isinstance(n, str) for n in names) or not set(names) <= set(WATCHABLE):
        raise PlugzTriggerArgumentError(
            "PlugzSecurityEventTrigger: watch must name what to watch among "
            f"{', '.join(map(repr, WATCHABLE))} (one name or a list), not {watch!r}."
        )
    return tuple(name for name in WATCHABLE if name in names)
