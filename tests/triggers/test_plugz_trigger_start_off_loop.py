"""A trigger's first start imports nothing heavy on the event loop (issue 21, point 8).

In a triggerer, every trigger shares one loop: the first Plugz trigger's import of the hook
module (requests, urllib3, the protocol, the endpoints; 0.1-0.5 s) held it, and Airflow logged
"Triggerer's async thread was blocked". Each case runs one trigger's ``run()`` until its first
event, against the sandbox, in a fresh interpreter (nothing imported yet), and records which
thread imported each heavy module: never the loop's. The deployment test
(tests/deployment/test_triggerer_loop.py) checks the same in a real ``airflow triggerer``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from airflow_provider_plugz.testing import PlugzSandbox

ROOT = Path(__file__).resolve().parents[2]
# Imported by the first poll, and each worth tens to hundreds of milliseconds on a loop. (The
# declarations in airflow_provider_plugz.endpoints are not: the watcher's module imports them, and
# tests/test_import_cost.py checks they load none of these.)
HEAVY = (
    "airflow_provider_plugz.hooks.plugz",
    "airflow_provider_plugz._protocol",
    "airflow_provider_plugz._redaction",
    "requests",
    "urllib3",
    "httpx",
)
# In the child: which thread imports each module (the "import" audit event is raised in the
# importing thread), then the first event of the trigger built from CLASSPATH and KWARGS.
CHILD = """
import asyncio, importlib, json, sys, threading
heavy, classpath, kwargs = json.loads(sys.argv[1])
importers = {}

def audit(event, args):
    if event == "import" and args[0] in heavy:
        importers.setdefault(args[0], threading.current_thread().name)

module, name = classpath.rsplit(".", 1)
trigger = getattr(importlib.import_module(module), name)(**kwargs)  # as Airflow's triggerer does
already = sorted(m for m in heavy if m in sys.modules)
sys.addaudithook(audit)

async def first_event():
    events = trigger.run()
    try:
        return (await asyncio.wait_for(events.__anext__(), 60)).payload, threading.current_thread().name
    finally:
        await events.aclose()

payload, loop_thread = asyncio.run(first_event())
print(json.dumps({"already": already, "importers": importers, "loop": loop_thread, "event": payload}))
"""


def _first_start(classpath: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    env = dict(os.environ)  # the sandbox's connection is an AIRFLOW_CONN_ variable
    done = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps([HEAVY, classpath, kwargs])],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize(
    ("classpath", "kwargs", "event"),
    [
        pytest.param(
            "airflow_provider_plugz.triggers.plugz.PlugzPinStatusTrigger",
            {"plugz_conn_id": "plugz_default", "expected": False},
            {"status": "success", "has_code": False},
            id="pin-status-trigger",
        ),
        pytest.param(
            "airflow_provider_plugz.triggers.plugz.PlugzInstanceStatusTrigger",
            {"plugz_conn_id": "plugz_default"},
            {"status": "success"},
            id="instance-status-trigger",
        ),
        pytest.param(
            "airflow_provider_plugz.triggers.events.PlugzSecurityEventTrigger",
            {"plugz_conn_id": "no_such_connection"},
            {"status": "error", "error_class": "PlugzConfigurationError"},
            id="security-event-watcher",
        ),
    ],
)
def test_the_first_start_imports_heavy_modules_off_the_loop(
    sandbox: PlugzSandbox, classpath: str, kwargs: dict[str, Any], event: dict[str, Any]
) -> None:
    result = _first_start(classpath, kwargs)
    # The run really started (it polled the sandbox, or read the connection and failed).
    assert {key: result["event"].get(key) for key in event} == event, result["event"]
    # The hook module is never loaded by a trigger's module (Airflow imports that on the loop).
    assert "airflow_provider_plugz.hooks.plugz" not in result["already"], result
    # The run imported it (seen through the hook module's own imports: importlib.import_module
    # raises no "import" event for the module it is given).
    assert "airflow_provider_plugz._protocol" in result["importers"], result
    on_loop = {name: thread for name, thread in result["importers"].items() if thread == result["loop"]}
    assert on_loop == {}, result
