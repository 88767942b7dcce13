"""``PlugzPinStatusSensor``: wait until a PIN is set (or removed), in any sensor mode."""

from __future__ import annotations

import math
import time
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow_provider_plugz import exceptions
from airflow_provider_plugz._compat import (
    AirflowSensorTimeout,
    BaseSensorOperator,
    PokeReturnValue,
    default_deferrable,
)
from airflow_provider_plugz.connection import DEFAULT_CONN_ID

_MAX_INTERVAL = 86400.0

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import Context

    from airflow_provider_plugz.hooks.plugz import PlugzHook


class PlugzPinStatusSensor(BaseSensorOperator):
    """Wait until the instance's PIN state equals ``expected``; push ``has_code`` to XCom.

    Works with ``mode="poke"``, ``mode="reschedule"`` and ``deferrable=True`` (the wait then
    runs in the triggerer, costing no worker slot; the default comes from Airflow's
    ``[operators] default_deferrable``). While waiting, transient errors (network, 429, 5xx)
    are logged and the wait goes on; any other ``PlugzError`` (configuration, credentials,
    unknown instance, bad request, malformed answer) fails the task at once.
    ``timeout``, ``soft_fail`` and ``poke_interval`` mean what they mean on every sensor.

    :param expected: ``True`` waits for a PIN to be set, ``False`` for it to be removed.
    :param plugz_conn_id: the Plugz connection (templated).
    :param deferrable: wait in the triggerer instead of a worker.
    :param poke_interval: seconds between checks, as on every sensor; here it may also be a
        template (``"{{ params.poll_interval }}"``), rendered when the task runs, so a run's
        params can shorten the wait without copying the DAG.
    """

    template_fields: Sequence[str] = ("plugz_conn_id", "poke_interval")
    ui_color = "#25d366"

    def __init__(
        self,
        *,
        expected: bool = True,
        plugz_conn_id: str = DEFAULT_CONN_ID,
        deferrable: bool | None = None,
        poke_interval: float | timedelta | str = 60,
        **kwargs: Any,
    ) -> None:
        # A template is checked once rendered (execute); Airflow's own check wants a number now.
        super().__init__(poke_interval=60 if isinstance(poke_interval, str) else poke_interval, **kwargs)
        if isinstance(poke_interval, str):
            self.poke_interval = poke_interval  # type: ignore[assignment]
        if not isinstance(expected, bool):
            raise TypeError("expected must be True (wait for a PIN) or False (wait for no PIN)")
        self.expected = expected
        self.plugz_conn_id = plugz_conn_id
        self.deferrable = default_deferrable() if deferrable is None else deferrable

    @cached_property
    def hook(self) -> PlugzHook:
        from airflow_provider_plugz.hooks.plugz import PlugzHook

        return PlugzHook(plugz_conn_id=self.plugz_conn_id)

    def poke(self, context: Context) -> PokeReturnValue:
        try:
            has_code = self.hook.get_pin_status().has_code
        except exceptions.PlugzTransientError as err:
            self.log.warning("Plugz PIN check failed, will try again: %s", err)
            return PokeReturnValue(is_done=False)
        self.log.info(
            "Plugz connection %r: PIN set = %s (waiting for %s)", self.plugz_conn_id, has_code, self.expected
        )
        return PokeReturnValue(is_done=has_code == self.expected, xcom_value=has_code)

    def execute(self, context: Context) -> Any:
        self.poke_interval = _seconds(self.poke_interval)
        if not self.deferrable:
            return super().execute(context)
        # One check in the worker first: no trip through the triggerer if it is already done.
        first = self.poke(context)
        if first.is_done:
            return first.xcom_value
        from airflow_provider_plugz.triggers.plugz import PlugzPinStatusTrigger

        self.defer(
            trigger=PlugzPinStatusTrigger(
                plugz_conn_id=self.plugz_conn_id,
                expected=self.expected,
                poll_interval=float(self.poke_interval),
                deadline=time.time() + self.timeout,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout),
        )

    def execute_complete(self, context: Context, event: Any = None) -> bool:
        """Validate the trigger's event before trusting it; return ``has_code``."""
        from airflow_provider_plugz.triggers.plugz import EVENT_ERROR, EVENT_SUCCESS, EVENT_TIMEOUT

        status = event.get("status") if isinstance(event, dict) else None
        if status == EVENT_SUCCESS and event.get("has_code") is self.expected:
            self.log.info("Plugz connection %r: PIN set = %s", self.plugz_conn_id, self.expected)
            return bool(event["has_code"])
        if status == EVENT_TIMEOUT:
            raise AirflowSensorTimeout(f"Plugz connection {self.plugz_conn_id!r}: {event.get('message')}")
        if status == EVENT_ERROR:
            error_class = getattr(exceptions, str(event.get("error_class")), None)
            if not (isinstance(error_class, type) and issubclass(error_class, exceptions.PlugzError)):
                error_class = exceptions.PlugzError
            raise error_class(str(event.get("message")))
        raise exceptions.PlugzError(
            f"Plugz connection {self.plugz_conn_id!r}: the trigger sent an event this sensor does not "
            "understand; this is a bug in airflow-provider-plugz, please report it."
        )


def _seconds(value: object) -> float:
    """A rendered ``poke_interval``: a positive, finite number of seconds (at most a day)."""
    try:
        if isinstance(value, bool):
            raise TypeError
        seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        seconds = math.nan
    if not 0 <= seconds <= _MAX_INTERVAL:  # also refuses nan
        raise exceptions.PlugzConfigurationError(
            f"poke_interval must be a number of seconds between 0 and {_MAX_INTERVAL:g}, got "
            f"{str(value)[:40]!r}; check the DAG param or template it is rendered from."
        )
    return seconds
