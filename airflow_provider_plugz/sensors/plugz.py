"""Sensors that wait until a Plugz instance is in a wanted state, in any sensor mode.

- :class:`PlugzPinStatusSensor`: until a PIN is set (or removed);
- :class:`PlugzInstanceStatusSensor`: until the number is connected (or disconnected, ...).

Both are thin subclasses of :class:`PlugzPollingSensor`, which does the waiting: poke and
reschedule modes, deferring (one check in the worker first), transient errors, the templated
``poke_interval`` and the validation of the trigger's event. What is polled and what is waited
for is described by the sensor's trigger (:mod:`airflow_provider_plugz.triggers.plugz`), used
in the worker too, so a poke and the triggerer decide alike.

Cheap to import: DAG files import this on every parse, so the hook, the endpoints and the
triggers are loaded only when a task runs.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow_provider_plugz import _intervals, exceptions
from airflow_provider_plugz._compat import (
    AirflowSensorTimeout,
    BaseSensorOperator,
    PokeReturnValue,
    default_deferrable,
)
from airflow_provider_plugz._vocabulary import CONNECTION_STATES, instance_status_condition
from airflow_provider_plugz.connection import DEFAULT_CONN_ID
from airflow_provider_plugz.operators._base import PlugzHookMixin

__all__ = [
    "INSTANCE_STATES",
    "PlugzInstanceStatusSensor",
    "PlugzPinStatusSensor",
    "PlugzPollingSensor",
    "instance_status_condition",
]

#: The connection states a :class:`PlugzInstanceStatusSensor` may wait for (``-`` may stand for
#: ``_``): the provider's :data:`~airflow_provider_plugz._vocabulary.CONNECTION_STATES`.
INSTANCE_STATES = CONNECTION_STATES

if TYPE_CHECKING:
    from collections.abc import Collection, Sequence

    from airflow.sdk import Context

    from airflow_provider_plugz.connection import PlugzConfig
    from airflow_provider_plugz.triggers.plugz import PlugzPollingTrigger


class PlugzPollingSensor(PlugzHookMixin, BaseSensorOperator):
    """The waiting every Plugz sensor does; a base class (use one of its subclasses).

    Works with ``mode="poke"``, ``mode="reschedule"`` and ``deferrable=True`` (the wait then
    runs in the triggerer, costing no worker slot; the default comes from Airflow's
    ``[operators] default_deferrable``). A deferrable sensor checks once in the worker first
    and defers only when it is not done yet. While waiting, transient errors (network, 429,
    5xx) are logged and the wait goes on; any other ``PlugzError`` (configuration,
    credentials, unknown instance, bad request, malformed answer) fails the task at once.
    ``timeout``, ``soft_fail`` and ``poke_interval`` mean what they mean on every sensor.

    A subclass says what it waits for by building its trigger (:meth:`_trigger`) and may shape
    its XCom value (:meth:`_xcom`).

    :param plugz_conn_id: the Plugz connection (templated).
    :param deferrable: wait in the triggerer instead of a worker.
    :param poke_interval: seconds between checks, as on every sensor; here it may also be a
        template (``"{{ params.poll_interval }}"``), rendered when the task runs, so a run's
        params can shorten the wait without copying the DAG. More than 0 and at most a day; under
        the floor (1 s, 0.01 s for a loopback host) it is raised to it, with a warning.
    :param timeout: as on every sensor; more than 0 s and at most 366 days.
    :raises PlugzConfigurationError: an interval or timeout out of those bounds (a templated
        ``poke_interval`` when the task runs, before any request).
    """

    template_fields: Sequence[str] = (*PlugzHookMixin.template_fields, "poke_interval")
    ui_color = "#25d366"
    # Only a Plugz connection: the credentials of another type are never sent to Plugz (and the
    # trigger, which reads the same connection, refuses it too).
    require_plugz_conn_type = True

    def __init__(
        self,
        *,
        plugz_conn_id: str = DEFAULT_CONN_ID,
        deferrable: bool | None = None,
        poke_interval: float | timedelta | str = 60,
        **kwargs: Any,
    ) -> None:
        # Ours before Airflow's own checks, which let NaN through and fail on infinity with a raw
        # OverflowError. A template is checked once rendered (execute).
        if not isinstance(poke_interval, str):
            poke_interval = _poke_interval(poke_interval)
        if kwargs.get("timeout") is not None:
            kwargs["timeout"] = _timeout(kwargs["timeout"])
        super().__init__(
            plugz_conn_id=plugz_conn_id,
            poke_interval=60 if isinstance(poke_interval, str) else poke_interval,
            **kwargs,
        )
        if isinstance(poke_interval, str):
            self.poke_interval = poke_interval  # type: ignore[assignment]
        self.timeout = _timeout(self.timeout)  # Airflow's default comes from its configuration
        self.deferrable = default_deferrable() if deferrable is None else deferrable

    def _config(self) -> PlugzConfig:
        """The connection, read as the trigger reads it: any failure a ``PlugzConfigurationError``
        that says what to fix (Airflow's own "conn_id isn't defined" names no fix)."""
        from airflow_provider_plugz.triggers.plugz import connection_error

        try:
            return self.hook.config
        except exceptions.PlugzError:
            raise
        except Exception as err:
            raise connection_error(self.plugz_conn_id, err) from None

    def _trigger(self, *, poll_interval: float = 60.0, deadline: float | None = None) -> PlugzPollingTrigger:
        """The trigger that waits for what this sensor waits for (also its condition in a poke)."""
        raise NotImplementedError(f"{type(self).__name__} must say what it waits for (_trigger)")

    def _xcom(self, observation: dict[str, Any]) -> Any:
        """The XCom value of an observation; by default the observation itself (JSON-safe)."""
        return observation

    def poke(self, context: Context) -> PokeReturnValue:
        wait = self._trigger()
        try:
            observation = wait.observe(self.hook.call(wait.endpoint()))
        except exceptions.PlugzTransientError as err:
            self.log.warning("Plugz %s failed, will try again: %s", wait.check, err)
            return PokeReturnValue(is_done=False)
        self.log.info(
            "Plugz connection %r: %s (waiting for %s)",
            self.plugz_conn_id,
            wait.describe(observation),
            wait.wanted(),
        )
        return PokeReturnValue(is_done=wait.matches(observation), xcom_value=self._xcom(observation))

    def execute(self, context: Context) -> Any:
        interval = _poke_interval(self.poke_interval, rendered=True)
        self.timeout = _timeout(self.timeout)
        # The floor depends on the host: reading the connection is what the first poke does anyway.
        self.poke_interval = _intervals.at_least_floor(
            interval, name="poke_interval", base_url=self._config().base_url, log=self.log
        )
        if not self.deferrable:
            return super().execute(context)
        # One check in the worker first: no trip through the triggerer if it is already done.
        first = self.poke(context)
        if first.is_done:
            return first.xcom_value
        self.defer(
            trigger=self._trigger(
                poll_interval=float(self.poke_interval), deadline=time.time() + self.timeout
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout),
        )

    def execute_complete(self, context: Context, event: Any = None) -> Any:
        """Validate the trigger's event before trusting it; return what a poke would push."""
        from airflow_provider_plugz.triggers.plugz import EVENT_ERROR, EVENT_SUCCESS, EVENT_TIMEOUT

        wait = self._trigger()
        status = event.get("status") if isinstance(event, dict) else None
        if status == EVENT_SUCCESS:
            observation = wait.observation_from_event(event)
            if observation is not None and wait.matches(observation):
                self.log.info("Plugz connection %r: %s", self.plugz_conn_id, wait.describe(observation))
                return self._xcom(observation)
        elif status == EVENT_TIMEOUT:
            raise AirflowSensorTimeout(f"Plugz connection {self.plugz_conn_id!r}: {event.get('message')}")
        elif status == EVENT_ERROR:
            error_class = getattr(exceptions, str(event.get("error_class")), None)
            if not (isinstance(error_class, type) and issubclass(error_class, exceptions.PlugzError)):
                error_class = exceptions.PlugzError
            raise error_class(str(event.get("message")))
        raise exceptions.PlugzError(
            f"Plugz connection {self.plugz_conn_id!r}: the trigger sent an event this sensor does not "
            "understand; this is a bug in airflow-provider-plugz, please report it."
        )


class PlugzPinStatusSensor(PlugzPollingSensor):
    """Wait until the instance's PIN state equals ``expected``; push ``has_code`` to XCom.

    Waits as every :class:`PlugzPollingSensor` does (poke, reschedule, deferrable through
    :class:`~airflow_provider_plugz.triggers.plugz.PlugzPinStatusTrigger`).

    :param expected: ``True`` waits for a PIN to be set, ``False`` for it to be removed.
    :param plugz_conn_id: the Plugz connection (templated).
    :param deferrable: wait in the triggerer instead of a worker.
    :param poke_interval: seconds between checks, or a template of them.
    """

    def __init__(
        self,
        *,
        expected: bool = True,
        plugz_conn_id: str = DEFAULT_CONN_ID,
        deferrable: bool | None = None,
        poke_interval: float | timedelta | str = 60,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            plugz_conn_id=plugz_conn_id, deferrable=deferrable, poke_interval=poke_interval, **kwargs
        )
        if not isinstance(expected, bool):
            raise TypeError("expected must be True (wait for a PIN) or False (wait for no PIN)")
        self.expected = expected

    def _trigger(self, *, poll_interval: float = 60.0, deadline: float | None = None) -> PlugzPollingTrigger:
        from airflow_provider_plugz.triggers.plugz import PlugzPinStatusTrigger

        return PlugzPinStatusTrigger(
            plugz_conn_id=self.plugz_conn_id,
            expected=self.expected,
            poll_interval=poll_interval,
            deadline=deadline,
        )

    def _xcom(self, observation: dict[str, Any]) -> bool:
        return bool(observation["has_code"])


class PlugzInstanceStatusSensor(PlugzPollingSensor):
    """Wait until the number is in a connection state; push its status to XCom.

    By default it waits until the number is ``connected`` (connected to Plugz, session held and
    phone online: messages go out). Give either a named ``state`` (or a list of them: any one
    will do), or a condition over the status fields, where ``None`` means "don't care":

    =================  ====================================================================
    ``state``          what ``GET .../status`` says
    =================  ====================================================================
    ``connected``      connected, session held (or not reported), phone online
    ``disconnected``   not connected, phone offline
    ``session_lost``   not connected while the phone is online (or no session): restore it
    ``phone_offline``  connected, phone offline: messages wait in Plugz's queue
    =================  ====================================================================

    ``PlugzInstanceStatusSensor(task_id="wait_for_connection")``,
    ``PlugzInstanceStatusSensor(task_id="alert_when_down", state=["disconnected", "session_lost"])``,
    ``PlugzInstanceStatusSensor(task_id="phone_back", connected=True, smartphone_connected=True)``.

    Returns (XCom ``return_value``) the status it saw when done, as
    ``PlugzInstanceStatusOperator`` does: ``{"connected", "session", "smartphone_connected",
    "error"}``. Waits as every :class:`PlugzPollingSensor` does (poke, reschedule, deferrable
    through :class:`~airflow_provider_plugz.triggers.plugz.PlugzInstanceStatusTrigger`).

    :param state: a state of the table above (``-`` may stand for ``_``), or a list of them.
    :param connected: wait for this ``connected`` value (``None``: don't care).
    :param session: wait for this ``session`` value (``None``: don't care).
    :param smartphone_connected: wait for this ``smartphone_connected`` value (``None``: don't care).
    :param plugz_conn_id: the Plugz connection (templated).
    :param deferrable: wait in the triggerer instead of a worker.
    :param poke_interval: seconds between checks, or a template of them.
    """

    def __init__(
        self,
        *,
        state: str | Collection[str] | None = None,
        connected: bool | None = None,
        session: bool | None = None,
        smartphone_connected: bool | None = None,
        plugz_conn_id: str = DEFAULT_CONN_ID,
        deferrable: bool | None = None,
        poke_interval: float | timedelta | str = 60,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            plugz_conn_id=plugz_conn_id, deferrable=deferrable, poke_interval=poke_interval, **kwargs
        )
        self.expected = instance_status_condition(
            state, connected=connected, session=session, smartphone_connected=smartphone_connected
        )

    def _trigger(self, *, poll_interval: float = 60.0, deadline: float | None = None) -> PlugzPollingTrigger:
        from airflow_provider_plugz.triggers.plugz import PlugzInstanceStatusTrigger

        return PlugzInstanceStatusTrigger(
            plugz_conn_id=self.plugz_conn_id,
            expected=self.expected,
            poll_interval=poll_interval,
            deadline=deadline,
        )


def _poke_interval(value: object, *, rendered: bool = False) -> float:
    """A ``poke_interval`` in seconds, within :mod:`airflow_provider_plugz._intervals`' bounds."""
    return _intervals.seconds(
        value,
        name="poke_interval",
        maximum=_intervals.MAX_INTERVAL,
        text=rendered,
        hint="check the DAG param or template it is rendered from." if rendered else "",
    )


def _timeout(value: object) -> float:
    """A sensor's ``timeout`` in seconds, within :mod:`airflow_provider_plugz._intervals`' bounds."""
    return _intervals.seconds(value, name="timeout", maximum=_intervals.MAX_TIMEOUT)
