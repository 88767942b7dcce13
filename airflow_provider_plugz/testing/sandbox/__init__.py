"""A local, Plugz-compatible HTTP/1.1 server for tests, demos and users' own test suites.

Standard library and h11 only (h11 comes with httpx, which Airflow installs): no Airflow, and
nothing of the client code it tests, so it runs where Airflow is not installed and cannot agree
with a bug in our hook. An ``asyncio`` server runs in a daemon thread owned by
:class:`PlugzSandbox`; the test thread changes its state (instances, PINs, faults, latency) under
a lock while it serves. Run ``python -m airflow_provider_plugz.testing.sandbox --help`` to serve it
from a shell.

The public API is what this package exports; its modules are private:

- ``_models``: the fixture credentials and the value types a test reads back
- ``_faults``: :class:`Fault` and its JSON form
- ``_state``: instances, queued faults, latency, the request record and the outbox of sent
  messages, under one lock, each bounded in count and in bytes
- ``_http``: requests, answers and route tables shared by the APIs and the wire
- ``_api``: the Plugz API, a route table keyed by ``(method, path)``
- ``_control``: the control API under ``/_sandbox/``, refusing cross-site requests
- ``_app``: control or API, recording, faults and latency
- ``_wire``: HTTP/1.1 on asyncio streams with h11; idle timeout, connection cap
- ``_server``: the :class:`PlugzSandbox` facade and its thread
- ``_cli`` / ``__main__``: the command line
"""

from __future__ import annotations

from airflow_provider_plugz.testing.sandbox._cli import main
from airflow_provider_plugz.testing.sandbox._faults import Fault, FaultKind
from airflow_provider_plugz.testing.sandbox._models import (
    DEFAULT_CLIENT_TOKEN,
    DEFAULT_INSTANCE_ID,
    DEFAULT_INSTANCE_TOKEN,
    Headers,
    InstanceKind,
    InstanceState,
    RecordedRequest,
    SandboxInstance,
    SandboxUsage,
    SentText,
)
from airflow_provider_plugz.testing.sandbox._server import PlugzSandbox
from airflow_provider_plugz.testing.sandbox._state import SandboxFullError

__all__ = [
    "DEFAULT_CLIENT_TOKEN",
    "DEFAULT_INSTANCE_ID",
    "DEFAULT_INSTANCE_TOKEN",
    "Fault",
    "FaultKind",
    "Headers",
    "InstanceKind",
    "InstanceState",
    "PlugzSandbox",
    "RecordedRequest",
    "SandboxFullError",
    "SandboxInstance",
    "SandboxUsage",
    "SentText",
    "main",
]
