"""Triggers that wait in the triggerer until a Plugz instance is in a wanted state.

:class:`PlugzPollingTrigger` is the machinery of every such wait: it polls one endpoint
(``hook.acall(endpoint)``), turns each answer into a JSON-safe *observation* (a dict) and
compares it with the *expected* condition; transient failures are logged and polling goes on,
any other ``PlugzError``, a connection that cannot be read (missing, of another type,
malformed) or the deadline ends the wait with one event; so does an unexpected exception (a bug),
reported by its class name: nothing but the documented events leaves ``run()``. The sensors in
:mod:`airflow_provider_plugz.sensors.plugz` use the same trigger object as the description of
their wait, so a poke in a worker and a poll in the triggerer decide alike.

- :class:`PlugzPinStatusTrigger`: until the PIN is (or is no longer) set.
- :class:`PlugzInstanceStatusTrigger`: until the number is connected, or in another state.

Both keep their classpath here: Airflow stores a deferred task's trigger by classpath and
kwargs, and loads it again after an upgrade.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_plugz import _intervals
from airflow_provider_plugz._vocabulary import (
    STATUS_FIELDS,
    describe_state,
    instance_state,
    instance_status_condition,
)
from airflow_provider_plugz.exceptions import (
    PlugzConfigurationError,
    PlugzError,
    PlugzTransientError,
    PlugzTriggerArgumentError,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from airflow_provider_plugz._declarations import Endpoint
    from airflow_provider_plugz.connection import PlugzConfig
    from airflow_provider_plugz.hooks.plugz import PlugzHook

log = logging.getLogger(__name__)

# Event payload keys and statuses: the contract between these triggers and the sensors.
EVENT_SUCCESS = "success"
EVENT_ERROR = "error"
EVENT_TIMEOUT = "timeout"

_NONE = type(None)


class PlugzPollingTrigger(BaseTrigger):
    """Poll one Plugz endpoint until its observation matches ``expected``; fire exactly one event.

    A base class: a subclass names the endpoint (:attr:`endpoint_name`, resolved when it runs),
    the fields of its observation (:attr:`observation_types`) and how ``expected`` reads as a
    condition over them (:meth:`condition`, :meth:`facts`). Only JSON-safe, non-secret values
    are serialized; the connection is read inside the triggerer.

    Events: ``{"status": "success", "observation": {...}}`` (a subclass may shape it),
    ``{"status": "error", "error_class": "PlugzNotFoundError", "message": "..."}``,
    ``{"status": "timeout", "message": "..."}``.

    :param plugz_conn_id: the Airflow connection to use.
    :param expected: what to wait for (JSON-safe; its form is the subclass's).
    :param poll_interval: seconds between two checks (bounds and floor: :mod:`.._intervals`).
    :param deadline: a Unix timestamp after which the wait ends with a ``timeout`` event.
    :raises PlugzTriggerArgumentError: an interval or deadline out of bounds (also a ``TypeError``).
    """

    #: The endpoint's name in :mod:`airflow_provider_plugz.endpoints`.
    endpoint_name: ClassVar[str]
    #: What one poll is called in log lines ("Plugz <check> failed, will try again").
    check: ClassVar[str]
    #: The observation's fields and the exact types each may have (``True`` is not ``1``).
    observation_types: ClassVar[Mapping[str, tuple[type, ...]]]

    def __init__(
        self,
        plugz_conn_id: str,
        expected: Any,
        poll_interval: float = 60.0,
        deadline: float | None = None,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        self.plugz_conn_id = plugz_conn_id
        self.expected = expected
        self.poll_interval = _intervals.seconds(
            poll_interval,
            name=f"{name}: poll_interval",
            maximum=_intervals.MAX_INTERVAL,
            error=PlugzTriggerArgumentError,
        )
        self.deadline = _intervals.deadline(
            deadline, name=f"{name}: deadline", error=PlugzTriggerArgumentError
        )

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "plugz_conn_id": self.plugz_conn_id,
                "expected": self.expected,
                "poll_interval": self.poll_interval,
                "deadline": self.deadline,
            },
        )

    # --- the wait: shared by every subclass

    def endpoint(self) -> Endpoint[Any]:
        """The endpoint polled (imported on use: DAG files never load it through a sensor)."""
        from airflow_provider_plugz import endpoints

        endpoint: Endpoint[Any] = getattr(endpoints, self.endpoint_name)
        return endpoint

    def observe(self, result: Any) -> dict[str, Any]:
        """One answer (a frozen result of :mod:`..endpoints`) as a JSON-safe dict."""
        return dataclasses.asdict(result)

    def matches(self, observation: Mapping[str, Any]) -> bool:
        """Whether ``observation`` meets the condition: each of its keys equal, strictly (a bool
        is only ever equal to a bool), or one of its values when the condition gives a list."""
        facts = self.facts(observation)
        for key, wanted in self.condition().items():
            choices = wanted if isinstance(wanted, list) else [wanted]
            value = facts.get(key)
            if not any(type(value) is type(choice) and value == choice for choice in choices):
                return False
        return True

    def observation_from_event(self, event: Mapping[str, Any]) -> dict[str, Any] | None:
        """The observation a success event carries, or None when it is not a well-formed one."""
        return self._checked(event.get("observation"))

    def success_event(self, observation: dict[str, Any]) -> dict[str, Any]:
        return {"status": EVENT_SUCCESS, "observation": observation}

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook_type = await hook_class()  # its module imported off the loop

        # A client of its own (~3 KiB, the TLS context shared): one httpx client shared by every
        # trigger on the loop costs more, since httpcore matches queued requests to connections
        # in O(requests x connections) each time (benchmarks/README.md, d').
        hook = hook_type(self.plugz_conn_id, require_conn_type=True)
        try:
            yield TriggerEvent(await self._wait(hook))
        finally:
            await close_hook(hook)

    async def _wait(self, hook: Any) -> dict[str, Any]:
        """The one event of this wait; whatever goes wrong becomes an ``error`` event."""
        try:
            return await self._poll(hook)
        except PlugzError as err:  # permanent, or the connection cannot be read
            return error_event(err)
        except Exception as err:  # a bug: said in an event, not a trigger that dies with a traceback
            return unexpected_error_event(err, f"the {self.check}", self.plugz_conn_id)

    async def _poll(self, hook: Any) -> dict[str, Any]:
        config = await read_connection(hook)
        interval = _intervals.at_least_floor(
            self.poll_interval, name=f"{type(self).__name__} poll_interval", base_url=config.base_url, log=log
        )
        endpoint = self.endpoint()
        last: dict[str, Any] | None = None
        while True:
            try:
                observation = self.observe(await hook.acall(endpoint))
            except PlugzTransientError as err:
                self.log.warning("Plugz %s failed, will try again: %s", self.check, err)
            else:
                if self.matches(observation):
                    return self.success_event(observation)
                # What it waits on, at INFO when first seen or changed; every other poll at DEBUG
                # (a line per poll of 1,000 triggers is most of a triggerer's log, and its CPU).
                self._log_waiting(observation, changed=observation != last)
                last = observation
            delay = interval
            if self.deadline is not None:
                remaining = self.deadline - time.time()
                if remaining <= 0:
                    return {"status": EVENT_TIMEOUT, "message": self.timeout_message()}
                delay = min(delay, remaining)
            await asyncio.sleep(delay)

    def _checked(self, observation: object) -> dict[str, Any] | None:
        types = self.observation_types
        if not isinstance(observation, dict) or set(observation) != set(types):
            return None
        if not all(type(observation[key]) in allowed for key, allowed in types.items()):
            return None
        return observation

    def _log_waiting(self, observation: Mapping[str, Any], *, changed: bool = True) -> None:
        log = self.log.info if changed else self.log.debug
        log("%s; waiting for %s.", self.describe(observation), self.wanted())

    # --- what a subclass says

    def condition(self) -> Mapping[str, Any]:
        """``expected`` as ``{fact: value or list of values}``; by default ``expected`` itself."""
        condition: Mapping[str, Any] = self.expected
        return condition

    def facts(self, observation: Mapping[str, Any]) -> Mapping[str, Any]:
        """What the condition is checked against: the observation, plus anything derived from it."""
        return observation

    def describe(self, observation: Mapping[str, Any]) -> str:
        """The observation in a few words, for log lines."""
        return ", ".join(f"{key} = {value}" for key, value in observation.items())

    def wanted(self) -> str:
        """The condition in a few words, for log lines and the timeout message."""
        return ", ".join(f"{key}={value}" for key, value in self.condition().items())

    def timeout_message(self) -> str:
        return f"the {self.check} did not show {self.wanted()} in time"


class PlugzPinStatusTrigger(PlugzPollingTrigger):
    """Poll the PIN status until ``has_code == expected``, then fire exactly one event.

    Only JSON-safe, non-secret values are serialized; the connection is read inside the
    triggerer. Transient failures (network, 429, 5xx) are logged and polling goes on;
    any other ``PlugzError`` ends the wait with an ``error`` event.

    Events: ``{"status": "success", "has_code": bool}``,
    ``{"status": "error", "error_class": "PlugzNotFoundError", "message": "..."}``,
    ``{"status": "timeout", "message": "..."}``.

    :param plugz_conn_id: the Airflow connection to use.
    :param expected: the ``has_code`` value to wait for.
    :param poll_interval: seconds between two checks.
    :param deadline: a Unix timestamp after which the wait ends with a ``timeout`` event.
    """

    endpoint_name = "PIN_STATUS"
    check = "PIN check"
    observation_types: ClassVar[Mapping[str, tuple[type, ...]]] = {"has_code": (bool,)}

    def __init__(
        self,
        plugz_conn_id: str,
        expected: bool = True,
        poll_interval: float = 60.0,
        deadline: float | None = None,
    ) -> None:
        super().__init__(plugz_conn_id, expected, poll_interval, deadline)

    def condition(self) -> Mapping[str, Any]:
        return {"has_code": self.expected}

    # The event keeps its first shape: sensors deferred before the shared machinery read it.
    def success_event(self, observation: dict[str, Any]) -> dict[str, Any]:
        return {"status": EVENT_SUCCESS, "has_code": observation["has_code"]}

    def observation_from_event(self, event: Mapping[str, Any]) -> dict[str, Any] | None:
        return self._checked({"has_code": event.get("has_code")})

    def describe(self, observation: Mapping[str, Any]) -> str:
        return f"PIN set = {observation['has_code']}"

    def wanted(self) -> str:
        return str(self.expected)

    def timeout_message(self) -> str:
        return f"the PIN state did not become has_code={self.expected} in time"

    def _log_waiting(self, observation: Mapping[str, Any], *, changed: bool = True) -> None:
        log = self.log.info if changed else self.log.debug
        log("PIN set: %s; waiting for %s.", observation["has_code"], self.expected)


# --- what every Plugz trigger shares: reading the connection, error events ---------------------

# The hooks module, once hook_class() imported it (one in sys.modules may still be loading).
_HOOKS_MODULE: list[Any] = []


async def hook_class() -> type[PlugzHook]:
    """``PlugzHook``, its module imported in a worker thread by the first trigger that needs it.

    That first import (requests, urllib3, the protocol, the endpoints: 0.1-0.5 s) would hold
    the triggerer's event loop, and every trigger on it, if done there (Airflow logs it as
    "Triggerer's async thread was blocked"). An import in a thread holds nothing the loop needs.
    """
    if not _HOOKS_MODULE:
        import importlib

        module = await asyncio.to_thread(importlib.import_module, "airflow_provider_plugz.hooks.plugz")
        _HOOKS_MODULE[:] = [module]
    hook: type[PlugzHook] = _HOOKS_MODULE[0].PlugzHook
    return hook


async def read_connection(hook: PlugzHook) -> PlugzConfig:
    """The hook's connection, read without blocking the loop; any failure a ``PlugzConfigurationError``.

    Airflow's ``AirflowNotFoundException`` (no such connection, or an ``AIRFLOW_CONN_*`` value that
    is neither JSON nor a URI) and anything else a secrets backend raises become one error that
    says what to fix, with no secret and no traceback; a connection of another type or with a bad
    field already is one (:func:`~airflow_provider_plugz.connection.parse_connection`).
    """
    try:
        return await hook.aget_config()
    except PlugzError:
        raise
    except Exception as err:
        raise connection_error(hook.plugz_conn_id, err) from None


def connection_error(conn_id: str, err: Exception) -> PlugzConfigurationError:
    """A failure to read connection ``conn_id`` as an error that says what to fix (no secret)."""
    from airflow.exceptions import AirflowNotFoundException  # type: ignore[attr-defined]

    shown = repr(conn_id) if len(repr(conn_id)) <= 80 else repr(conn_id)[:77] + "..."
    env = "AIRFLOW_CONN_" + re.sub(r"[^0-9A-Za-z]", "_", str(conn_id)).upper()[:80]
    if isinstance(err, AirflowNotFoundException):
        return PlugzConfigurationError(
            f"Plugz connection {shown} does not exist (or its {env} value is neither JSON nor a "
            "connection URI): create it in Admin > Connections with type Plugz, or set "
            f"{env} or the secrets backend entry."
        )
    return PlugzConfigurationError(
        f"Plugz connection {shown} could not be read ({type(err).__name__}): check the connection in "
        f"Admin > Connections, its {env} value, or the secrets backend that serves it."
    )


def error_event(err: PlugzError) -> dict[str, Any]:
    """The ``error`` event of a ``PlugzError`` (its message is already free of secrets)."""
    return {"status": EVENT_ERROR, "error_class": type(err).__name__, "message": str(err)}


def unexpected_error_event(err: Exception, doing: str, conn_id: str) -> dict[str, Any]:
    """The ``error`` event of an exception that is not a ``PlugzError`` (a bug somewhere).

    The event names its class only: its text may hold anything (a URL, a token). The traceback
    goes to the triggerer's log, through Airflow's secrets masker.
    """
    log.error("Plugz: %s of connection %r failed unexpectedly.", doing, conn_id, exc_info=err)
    return {
        "status": EVENT_ERROR,
        "error_class": type(err).__name__,
        "message": (
            f"{doing} of Plugz connection {conn_id!r} failed unexpectedly ({type(err).__name__}); this "
            "is a bug in airflow-provider-plugz or a library it uses: please report it with the "
            "triggerer's log, which has the traceback."
        ),
    }


async def close_hook(hook: PlugzHook) -> None:
    """Close the hook's client; a failure to close is logged, never raised past ``run()``."""
    try:
        await hook.aclose()
    except Exception:
        log.warning("Plugz: closing the client of connection %r failed.", hook.plugz_conn_id, exc_info=True)


class PlugzInstanceStatusTrigger(PlugzPollingTrigger):
    """Poll ``GET .../status`` until the number is in the wanted connection state; fire one event.

    ``expected`` is the condition :func:`~airflow_provider_plugz._vocabulary.instance_status_condition`
    builds (as ``PlugzInstanceStatusSensor`` does), e.g. ``{"state": ["connected"]}`` (the default) or
    ``{"connected": True, "smartphone_connected": False}``; it is checked when the trigger is built.

    Events: ``{"status": "success", "observation": {"connected": bool, "session": bool | None,
    "smartphone_connected": bool, "error": str | None}}``, and ``error`` / ``timeout`` events as
    :class:`PlugzPollingTrigger`'s.

    :param plugz_conn_id: the Airflow connection to use.
    :param expected: the condition to wait for; default: the number is connected.
    :param poll_interval: seconds between two checks.
    :param deadline: a Unix timestamp after which the wait ends with a ``timeout`` event.
    """

    endpoint_name = "INSTANCE_STATUS"
    check = "instance status check"
    observation_types: ClassVar[Mapping[str, tuple[type, ...]]] = {
        "connected": (bool,),
        "session": (bool, _NONE),
        "smartphone_connected": (bool,),
        "error": (str, _NONE),
    }

    def __init__(
        self,
        plugz_conn_id: str,
        expected: Mapping[str, Any] | None = None,
        poll_interval: float = 60.0,
        deadline: float | None = None,
    ) -> None:
        super().__init__(plugz_conn_id, _checked_condition(expected), poll_interval, deadline)

    def facts(self, observation: Mapping[str, Any]) -> Mapping[str, Any]:
        return {**observation, "state": instance_state(observation)}

    def describe(self, observation: Mapping[str, Any]) -> str:
        return describe_state(instance_state(observation), observation.get("error"))

    def wanted(self) -> str:
        states = self.condition().get("state")
        if states is not None:
            return "state " + " or ".join(states)
        return super().wanted()

    def timeout_message(self) -> str:
        return f"the number did not reach {self.wanted()} in time"


def _checked_condition(expected: Mapping[str, Any] | None) -> dict[str, Any]:
    """A serialized condition, checked again: trigger kwargs may come from an older release."""
    if expected is None:
        return instance_status_condition()
    fields = {"state", *STATUS_FIELDS}
    if not isinstance(expected, Mapping) or not expected or not set(expected) <= fields:
        raise PlugzTriggerArgumentError(
            "PlugzInstanceStatusTrigger: expected must be a condition such as {'state': ['connected']} "
            "or {'connected': True}, with keys among " + ", ".join(sorted(fields)) + "; build it with "
            "PlugzInstanceStatusSensor(state=... or connected=..., smartphone_connected=...)."
        )
    try:
        return instance_status_condition(**dict(expected))
    except PlugzConfigurationError as err:  # a TypeError too, so the triggerer fails only this one
        raise PlugzTriggerArgumentError(str(err)) from None
