"""A fleet of sandbox instances for the audit tests (tests/operators/test_audit*.py).

Thirty numbers, some without PIN, some broken (404, 503, bad Client-Token, expired), some
down; the helpers that build it, run the audit operator and record its log."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_provider_plugz.operators.audit import (
    PlugzPinAuditOperator,
)
from airflow_provider_plugz.testing import Fault
from tests.conftest import (
    CLIENT_TOKEN,
    FakeTaskInstance,
)

if TYPE_CHECKING:
    import pytest

    from airflow_provider_plugz.testing import PlugzSandbox

FLEET_SIZE = 30
WRONG_CLIENT_TOKEN = "WR0NGC11ENTT0KEN5ECRET0000001"
# conn index -> how that instance is broken, and the error class the audit must report.
BROKEN = {
    3: ("unknown-instance", "PlugzNotFoundError"),
    7: ("503", "PlugzServerError"),
    11: ("wrong-client-token", "PlugzAuthenticationError"),
    15: ("expired", "PlugzSubscriptionError"),
}
# conn index -> the sandbox state of that instance in the broken fleet (every other one is
# "connected"); none of them is in BROKEN, so each gets a PIN answer and a status.
SANDBOX_STATES = {6: "disconnected", 10: "session-lost", 14: "phone-offline", 18: "disconnected"}
ANY_REASON = object()
# What GET .../status says in each sandbox state (the sandbox's contract), as the report shows it.
STATUS_OF: dict[str, dict[str, Any]] = {
    "connected": {
        "state": "connected",
        "connected": True,
        "session": True,
        "smartphone_connected": True,
        "reason": None,
    },
    "disconnected": {
        "state": "disconnected",
        "connected": False,
        "session": False,
        "smartphone_connected": False,
        "reason": "You are not connected.",
    },
    "session-lost": {
        "state": "session_lost",
        "connected": False,
        "session": False,
        "smartphone_connected": True,
        "reason": "You need to restore the session.",
    },
    "phone-offline": {
        "state": "phone_offline",
        "connected": True,
        "session": True,
        "smartphone_connected": False,
        "reason": ANY_REASON,  # the sandbox's contract leaves this text open
    },
}
UNDEFINED_CONN_ID = "plugz_not_defined_anywhere"
# Instances that answer only after a minute in the deadline tests (neither is in BROKEN).
SLOW = (0, 2)


def instance_id(n: int) -> str:
    return f"FLEET{n:03d}INSTANCE00000000000"


def instance_token(n: int) -> str:
    return f"FLEET{n:03d}T0KEN5ECRET0000000"


def has_pin(n: int) -> bool:
    return n % 4 != 1  # 1, 5, 9, ... have no PIN


@dataclass
class Fleet:
    """A sandbox with one instance (and one ``AIRFLOW_CONN_PLUGZ_<n>``) per number.

    ``expected`` is each entry's PIN outcome; ``states`` the connection state ``check_status``
    must report (None: a broken number, whose status is not read)."""

    sandbox: PlugzSandbox
    conn_ids: list[str]
    expected: dict[str, dict[str, Any]] = field(default_factory=dict)
    states: dict[str, str | None] = field(default_factory=dict)
    secrets: list[str] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        return [c for c, e in self.expected.items() if e.get("has_code") is not True]

    def requests_of(self, n: int) -> list[str]:
        """The endpoints number ``n``'s instance was asked, in order ("pin", "status")."""
        names = {"security/two-fa-code": "pin", "status": "status"}
        return [
            names.get(r.path.rsplit(f"{instance_token(n)}/", 1)[-1], r.path)
            for r in self.sandbox.requests
            if r.instance_id == instance_id(n)
        ]


def build_fleet(sandbox: PlugzSandbox, monkeypatch: pytest.MonkeyPatch, *, broken: bool) -> Fleet:
    fleet = Fleet(sandbox, [], secrets=[CLIENT_TOKEN, WRONG_CLIENT_TOKEN])
    for n in range(FLEET_SIZE):
        conn_id = f"plugz_{n}"
        how, error_class = BROKEN.get(n, (None, None)) if broken else (None, None)
        state = SANDBOX_STATES.get(n, "connected") if broken else "connected"
        sandbox.add_instance(
            instance_id(n), instance_token(n), has_code=has_pin(n), expired=how == "expired", state=state
        )
        conn = json.loads(sandbox.connection_json(instance_id(n)))
        if how == "unknown-instance":
            sandbox.remove_instance(instance_id(n))
        elif how == "503":
            sandbox.inject(Fault.status(503), times=20, instance_id=instance_id(n))  # outlasts retries
        elif how == "wrong-client-token":
            conn["extra"]["client_token"] = WRONG_CLIENT_TOKEN
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
        fleet.conn_ids.append(conn_id)
        fleet.expected[conn_id] = {"error_class": error_class} if error_class else {"has_code": has_pin(n)}
        fleet.states[conn_id] = None if error_class else str(STATUS_OF[state]["state"])
        fleet.secrets.append(instance_token(n))
    return fleet


def run_audit(conn_ids: Any, **kwargs: Any) -> tuple[dict[str, Any], FakeTaskInstance]:
    ti = FakeTaskInstance()
    operator = PlugzPinAuditOperator(task_id="audit", plugz_conn_ids=conn_ids, **kwargs)
    return operator.execute({"ti": ti}), ti  # type: ignore[arg-type]


class RecordingLog:
    """Stands in for an operator's ``log``: keeps every formatted line."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def _record(self, message: str, *args: Any, **kwargs: Any) -> None:
        self.lines.append(message % args if args else message)

    info = warning = error = debug = _record


def slow_down(fleet: Fleet, indexes: tuple[int, ...] = SLOW) -> list[str]:
    """Make these instances answer only after a minute (past any deadline below)."""
    for n in indexes:
        fleet.sandbox.inject(Fault.slow(60), instance_id=instance_id(n))
    return [f"plugz_{n}" for n in indexes]
