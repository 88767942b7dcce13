"""What the sandbox answers a request: control API, or a recorded API call with its fault and latency.

Control requests are answered at once, never recorded, delayed or faulted. Every other request is
an API call: counted and recorded, it takes the oldest queued fault that applies to it, waits out
the latency (plus the fault's delay), then gets the fault's answer or the API's.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING
from urllib.parse import unquote

from airflow_provider_plugz.testing.sandbox._api import PlugzApi
from airflow_provider_plugz.testing.sandbox._control import ControlApi, is_control
from airflow_provider_plugz.testing.sandbox._faults import Fault, keeps_connection
from airflow_provider_plugz.testing.sandbox._http import Reply, Request
from airflow_provider_plugz.testing.sandbox._models import RecordedRequest

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_provider_plugz.testing.sandbox._state import SandboxState


def instance_of(path: str) -> str | None:
    """The instance id an API path names (also for unknown endpoints), else None."""
    parts = path.split("/", 3)
    if len(parts) >= 3 and parts[1] == "instances" and parts[2]:
        return unquote(parts[2])
    return None


def fault_answer(fault: Fault | None, normal: Callable[[], Reply]) -> Reply | None:
    """How ``fault`` plays: an answer in its place, the ``normal`` one altered, or None (drop)."""
    if fault is None or fault.kind == "slow":  # a slow fault has already waited
        return normal()
    if fault.kind == "drip":
        return normal()._replace(drip_interval=fault.interval, drip_head=fault.head)
    if fault.kind == "drop":
        return None
    if fault.kind == "raw":
        return Reply(0, close=True, raw=fault.body)
    return Reply(
        fault.code,
        fault.body,
        fault.content_type,
        fault.headers,
        close=not keeps_connection(fault.headers, fault.body),
    )


class SandboxApp:
    """The application the wire layer calls: ``await app(request)`` gives the answer (None: drop)."""

    def __init__(self, state: SandboxState) -> None:
        self._state = state
        self._api = PlugzApi(state)
        self._control = ControlApi(state)
        # Touched only by the event loop thread; plain ints are safe to read from others.
        self.in_flight = 0
        self.max_in_flight = 0

    async def __call__(self, request: Request) -> Reply | None:
        if is_control(request.path):
            return self._control.answer(request)
        recorded = RecordedRequest(
            request.method, request.target, request.headers, request.body, instance_of(request.path)
        )
        fault, wait = self._state.receive(recorded)
        if fault is not None:
            wait += fault.delay + fault.seconds
        if wait > 0:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            try:
                await asyncio.sleep(wait)
            finally:
                self.in_flight -= 1
        if fault is None:
            return self._api.answer(request)
        return fault_answer(fault, lambda: self._api.answer(request))
