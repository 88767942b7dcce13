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
    {"status": "error", "plugz_conn_id": "...", "error_class": "PlugzAuthenticationError",
     "message": "...", "observed_at": "..."}
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import Hashable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import TriggerEvent

from airflow_provider_plugz._compat import event_trigger_base
from airflow_provider_plugz.exceptions import PlugzError, PlugzTransientError, PlugzTriggerArgumentError
from airflow_provider_plugz.triggers.plugz import EVENT_ERROR

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from airflow.triggers.base import BaseEventTrigger
else:
    BaseEventTrigger = event_trigger_base()

log = logging.getLogger(__name__)

#: What a watcher can watch: the PIN (``has_code``) and the connection state.
WATCH_PIN = "pin"
WATCH_CONNECTION = "connection"
WATCHES = (WATCH_PIN, WATCH_CONNECTION)

EVENT_CHANGE = "change"
EVENT_BASELINE = "baseline"

#: ``change`` of a change event: PIN.
PIN_REMOVED, PIN_SET = "pin_removed", "pin_set"
#: ``change`` of a change event: connection (between two not-connected states: ``connection_changed``).
DISCONNECTED, RECONNECTED, CONNECTION_CHANGED = "disconnected", "reconnected", "connection_changed"
#: ``change`` of a baseline event (``fire_on_bad_baseline``).
NO_PIN, NOT_CONNECTED = "no_pin", "not_connected"


class PlugzSecurityEventTrigger(BaseEventTrigger):
    """Watch one Plugz connection's PIN and/or connection state; fire an event on each change.

    The first good observation is the baseline: it fires nothing, unless
    ``fire_on_bad_baseline`` and the state is bad (no PIN, not connected), which fires one
    ``baseline`` event. After that, each change of a watched value fires one ``change`` event
    (two values changing in one poll fire two). Transient errors (network, 429, 5xx) are logged
    and never fire. A permanent error (bad credentials, unknown instance, a bad connection)
    fires one ``error`` event; it is not fired again while the same error (same class and
    message) repeats, only when it changes or comes back after a good answer. After a
    permanent error the connection is read again on the next poll, so a fixed connection is
    picked up without a restart; the baseline is kept, so a change hidden behind the error
    fires when the answers come back.

    After a triggerer restart the trigger is built again from :meth:`serialize` and takes a new
    baseline: a change that happened while no triggerer ran fires nothing (with
    ``fire_on_bad_baseline`` a bad state then fires its one ``baseline`` event).

    :param plugz_conn_id: the Airflow connection of the number to watch.
    :param watch: ``"pin"``, ``"connection"`` or both (the default).
    :param poll_interval: seconds between two polls.
    :param fire_on_bad_baseline: fire once when the first observation is already bad.
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
        self.poll_interval = _checked_interval(poll_interval)
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
        async for snapshot in shared_stream:
            payloads = detector.feed(snapshot)
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
    "error": None | {"error_class": ..., "message": ...}}``; a value is None when it was not
    watched or its check failed transiently. A poll where every check failed transiently
    yields nothing. After a permanent error the hook is dropped: the next poll reads the
    connection again.
    """
    from airflow_provider_plugz.hooks.plugz import PlugzHook

    hook: PlugzHook | None = None
    try:
        while True:
            if hook is None:
                hook = PlugzHook(conn_id)
            snapshot = await observe(hook, watch)
            if snapshot["error"] is not None:
                await hook.aclose()
                hook = None
            if snapshot["error"] is not None or any(snapshot[name] is not None for name in watch):
                yield snapshot
            await asyncio.sleep(poll_interval)
    finally:
        if hook is not None:
            await hook.aclose()


async def observe(hook: Any, watch: tuple[str, ...]) -> dict[str, Any]:
    """One poll of the watched endpoints through ``hook.acall`` (see :func:`poll_snapshots`)."""
    from airflow_provider_plugz import endpoints

    snapshot: dict[str, Any] = dict.fromkeys(WATCHES)
    snapshot["error"] = None
    for name in watch:
        endpoint: Any = endpoints.PIN_STATUS if name == WATCH_PIN else endpoints.INSTANCE_STATUS
        try:
            result = await hook.acall(endpoint)
        except PlugzTransientError as err:
            log.warning("Plugz %s of %s failed, will try again: %s", endpoint.action, hook.plugz_conn_id, err)
            continue
        except PlugzError as err:
            snapshot["error"] = {"error_class": type(err).__name__, "message": str(err)}
            break
        if name == WATCH_PIN:
            snapshot[name] = result.has_code
        else:
            snapshot[name] = endpoints.connection_state(
                result.connected, result.session, result.smartphone_connected
            )
    snapshot["observed_at"] = utc_now()
    return snapshot


def utc_now() -> str:
    """Now, ISO-8601 in UTC to the millisecond (``2026-12-02T01:02:03.456+00:00``)."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")


# --- the baseline: snapshots in, events out ---------------------------------------------------


class ChangeDetector:
    """One watcher's memory: the last value seen of each watched field and the last error.

    Pure (no I/O, no clock): :meth:`feed` takes one snapshot and returns the event payloads it
    causes, in watch order. "The error changed" means its class or its message differ from the
    last error event's; a good answer in between forgets the error.
    """

    def __init__(self, conn_id: str, watch: tuple[str, ...], fire_on_bad_baseline: bool) -> None:
        self.conn_id = conn_id
        self.watch = watch
        self.fire_on_bad_baseline = fire_on_bad_baseline
        self.known: dict[str, Any] = {}
        self.last_error: tuple[str, str] | None = None

    def feed(self, snapshot: Mapping[str, Any]) -> list[dict[str, Any]]:
        seen = str(snapshot.get("observed_at"))
        error = snapshot.get("error")
        if error:
            key = (str(error["error_class"]), str(error["message"]))
            if key == self.last_error:
                return []
            self.last_error = key
            return [
                {
                    "status": EVENT_ERROR,
                    "plugz_conn_id": self.conn_id,
                    "error_class": key[0],
                    "message": key[1],
                    "observed_at": seen,
                }
            ]
        events = []
        for name in self.watch:
            new = snapshot.get(name)
            if new is None:  # not answered this time (a transient failure): nothing learnt
                continue
            self.last_error = None
            if name not in self.known:
                self.known[name] = new
                if self.fire_on_bad_baseline and is_bad(name, new):
                    kind = NO_PIN if name == WATCH_PIN else NOT_CONNECTED
                    events.append(self._event(EVENT_BASELINE, name, kind, None, new, seen))
                continue
            old = self.known[name]
            if new != old:
                self.known[name] = new
                events.append(self._event(EVENT_CHANGE, name, change_kind(name, old, new), old, new, seen))
        return events

    def describe(self) -> str:
        """The values known, for log lines (``pin = True, connection = connected``)."""
        return ", ".join(f"{name} = {self.known[name]}" for name in self.watch if name in self.known)

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


def is_bad(name: str, value: Any) -> bool:
    """No PIN, or a connection state other than ``connected``."""
    return value is False if name == WATCH_PIN else value != "connected"


def change_kind(name: str, old: Any, new: Any) -> str:
    """What a change is called in the event's ``change`` field."""
    if name == WATCH_PIN:
        return PIN_SET if new else PIN_REMOVED
    if new == "connected":
        return RECONNECTED
    return DISCONNECTED if old == "connected" else CONNECTION_CHANGED


def _checked_watch(watch: str | Iterable[str]) -> tuple[str, ...]:
    names = [watch] if isinstance(watch, str) else list(watch) if isinstance(watch, Iterable) else None
    if not names or not all(isinstance(n, str) for n in names) or not set(names) <= set(WATCHES):
        raise PlugzTriggerArgumentError(
            f"PlugzSecurityEventTrigger: watch must be 'pin', 'connection' or both, not {watch!r}."
        )
    return tuple(name for name in WATCHES if name in names)


def _checked_interval(poll_interval: float) -> float:
    if isinstance(poll_interval, bool) or not isinstance(poll_interval, int | float) or poll_interval <= 0:
        raise PlugzTriggerArgumentError(
            "PlugzSecurityEventTrigger: poll_interval must be a number of seconds > 0, "
            f"not {poll_interval!r}."
        )
    return float(poll_interval)
