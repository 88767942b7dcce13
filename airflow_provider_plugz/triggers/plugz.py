"""``PlugzPinStatusTrigger``: waits in the triggerer until a PIN is (or is no longer) set."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_plugz.exceptions import PlugzError, PlugzTransientError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

# Event payload keys and statuses: the contract between this trigger and the sensor.
EVENT_SUCCESS = "success"
EVENT_ERROR = "error"
EVENT_TIMEOUT = "timeout"


class PlugzPinStatusTrigger(BaseTrigger):
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

    def __init__(
        self,
        plugz_conn_id: str,
        expected: bool = True,
        poll_interval: float = 60.0,
        deadline: float | None = None,
    ) -> None:
        super().__init__()
        self.plugz_conn_id = plugz_conn_id
        self.expected = expected
        self.poll_interval = poll_interval
        self.deadline = deadline

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

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from airflow_provider_plugz.hooks.plugz import PlugzHook

        hook = PlugzHook(self.plugz_conn_id)
        try:
            yield TriggerEvent(await self._wait(hook))
        finally:
            await hook.aclose()

    async def _wait(self, hook: Any) -> dict[str, Any]:
        while True:
            try:
                status = await hook.aget_pin_status()
            except PlugzTransientError as err:
                self.log.warning("Plugz PIN check failed, will try again: %s", err)
            except PlugzError as err:
                return {"status": EVENT_ERROR, "error_class": type(err).__name__, "message": str(err)}
            else:
                if status.has_code == self.expected:
                    return {"status": EVENT_SUCCESS, "has_code": status.has_code}
                self.log.info("PIN set: %s; waiting for %s.", status.has_code, self.expected)
            delay = self.poll_interval
            if self.deadline is not None:
                remaining = self.deadline - time.time()
                if remaining <= 0:
                    return {
                        "status": EVENT_TIMEOUT,
                        "message": f"the PIN state did not become has_code={self.expected} in time",
                    }
                delay = min(delay, remaining)
            await asyncio.sleep(delay)
