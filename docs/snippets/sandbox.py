"""The sandbox page's samples (docs/sandbox.md): run by tests/test_docs.py."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any
from unittest import mock

from airflow_provider_plugz.exceptions import PlugzError
from airflow_provider_plugz.hooks.plugz import PlugzHook
from airflow_provider_plugz.retry import RetryPolicy

if TYPE_CHECKING:
    from collections.abc import Callable


def try_the_sandbox() -> dict[str, Any]:
    """Runs both samples against a real sandbox on loopback and returns what they saw."""
    seen: dict[str, Any] = {}
    with mock.patch.dict(os.environ):
        # [START howto_sandbox_plugz]
        from airflow_provider_plugz.testing import Fault, PlugzSandbox

        with PlugzSandbox() as sandbox:  # Client-Token "sandbox-client-token"
            sandbox.add_instance("inst-1", "tok-1", has_code=False)
            base_url = sandbox.base_url  # http://127.0.0.1:<random port>
            conn = sandbox.connection_json("inst-1")  # value for AIRFLOW_CONN_PLUGZ_DEFAULT
            sandbox.set_has_code("inst-1", True)  # the user just set a PIN
            sandbox.inject(Fault.status(503), times=2)  # the next two calls fail
            # [END howto_sandbox_plugz]
            os.environ["AIRFLOW_CONN_PLUGZ_DOCS_ONE"] = conn
            hook = PlugzHook(plugz_conn_id="plugz_docs_one")
            once = RetryPolicy(max_attempts=1)  # no retry, so no wait: each call meets one fault
            seen["faults"] = [_error_of(lambda: hook.get_pin_status(retry=once)) for _ in range(2)]
            seen.update(base_url=base_url, has_code=hook.get_pin_status(retry=once).has_code)

            # [START howto_sandbox_plugz_messages]
            sandbox.add_instance("inst-2", "tok-2", state="disconnected", phone="5521987654321")
            sandbox.set_state("inst-1", "phone-offline")  # or connected, disconnected, session-lost
            hook.send_text("5511999999999", "disk full")  # POST .../send-text -> 200 {"zaapId", "messageId"}
            queued = [m.delivered for m in sandbox.messages]  # [False]: queued while the phone is away
            sandbox.set_state("inst-1", "connected")  # the queue is delivered
            delivered = [m.delivered for m in sandbox.messages]  # [True]
            sandbox.clear_messages()
            # [END howto_sandbox_plugz_messages]
            seen.update(queued=queued, delivered=delivered, after_clear=list(sandbox.messages))
            os.environ["AIRFLOW_CONN_PLUGZ_DOCS_TWO"] = sandbox.connection_json("inst-2")
            seen["two_connected"] = PlugzHook(plugz_conn_id="plugz_docs_two").get_instance_status().connected
    return seen


def _error_of(call: Callable[[], object]) -> str | None:
    """The class name of the PlugzError ``call`` raises (None if it raises none)."""
    try:
        call()
    except PlugzError as exc:
        return type(exc).__name__
    return None
