"""The fleet audit operator: ``PlugzPinAuditOperator`` against one sandbox holding a few dozen
instances (its report, typed and as XCom, its deadline, its refusal of non-Plugz connections,
its arguments; with ``check_status``, each number's connection state beside its PIN), and the
``plugz_fleet_audit`` example DAG end to end with ``dag.test()``.

How the checks fan out (workers, shared clients, cancellation) is tested in
tests/hooks/test_fleet.py."""

from __future__ import annotations

import json
import re
import time
from dataclasses import FrozenInstanceError
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_plugz import exceptions
from airflow_provider_plugz.endpoints import INSTANCE_STATUS, PIN_STATUS
from airflow_provider_plugz.exceptions import (
    PlugzAuditError,
    PlugzConfigurationError,
    PlugzInstanceNotSupportedError,
    PlugzNotFoundError,
    PlugzServerError,
    PlugzTimeoutError,
)
from airflow_provider_plugz.hooks.fleet import FleetRun
from airflow_provider_plugz.hooks.plugz import InstanceStatus, PinStatus, PlugzHook
from airflow_provider_plugz.operators.audit import (
    CONNECTION_STATES,
    REPORT_XCOM_KEY,
    STATUS_COUNTS,
    AuditReport,
    CheckResult,
    PinAndStatus,
    PlugzAuditMergeOperator,
    PlugzFleetAuditOperator,
    PlugzPinAuditOperator,
    StatusResult,
    audit_deadline,
    conn_id_list,
    connection_state,
)
from airflow_provider_plugz.testing import Fault
from airflow_provider_plugz.testing.dag_run import run_dag
from tests.conftest import (
    INSTANCE_ID,
    PHONE_ECHOES,
    FakeTaskInstance,
    assert_no_phone,
    assert_no_secrets,
)
from tests.support.audit import (
    ANY_REASON,
    BROKEN,
    FLEET_SIZE,
    SANDBOX_STATES,
    SLOW,
    STATUS_OF,
    UNDEFINED_CONN_ID,
    Fleet,
    RecordingLog,
    build_fleet,
    has_pin,
    instance_id,
    instance_token,
    run_audit,
    slow_down,
)

if TYPE_CHECKING:
    from airflow_provider_plugz.testing import PlugzSandbox


@pytest.fixture
def fleet(sandbox: PlugzSandbox, monkeypatch: pytest.MonkeyPatch) -> Fleet:
    return build_fleet(sandbox, monkeypatch, broken=True)


@pytest.fixture
def healthy_fleet(sandbox: PlugzSandbox, monkeypatch: pytest.MonkeyPatch) -> Fleet:
    fleet = build_fleet(sandbox, monkeypatch, broken=False)
    for n in range(FLEET_SIZE):
        sandbox.set_has_code(instance_id(n), True)
        fleet.expected[f"plugz_{n}"] = {"has_code": True}
    return fleet


def outcome(result: dict[str, Any]) -> dict[str, Any]:
    """A report entry without its message (and status), to compare with ``Fleet.expected``."""
    return {k: v for k, v in result.items() if k not in ("message", "status")}


def same_status(got: dict[str, Any] | None, sandbox_state: str) -> bool:
    """Whether an entry's ``status`` is what the sandbox answers in ``sandbox_state``."""
    want = STATUS_OF[sandbox_state]
    if got is None or got.keys() != want.keys():
        return False
    if want["reason"] is ANY_REASON:
        return (
            isinstance(got["reason"], str)
            and bool(got["reason"])
            and all(got[k] == v for k, v in want.items() if k != "reason")
        )
    return got == want


def state(result: dict[str, Any]) -> str | None:
    """The connection state an entry reports; None when its status was not read or failed."""
    return None if result["status"] is None else result["status"].get("state")


# --- the typed report ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("result", "xcom", "timed_out"),
    [
        pytest.param(CheckResult.pin(True), {"has_code": True}, False, id="pin-set"),
        pytest.param(CheckResult.pin(False), {"has_code": False}, False, id="no-pin"),
        pytest.param(
            CheckResult.failure("plugz_x", PlugzNotFoundError("Plugz says: unknown instance")),
            {"error_class": "PlugzNotFoundError", "message": "Plugz says: unknown instance"},
            False,
            id="plugz-error",
        ),
        pytest.param(
            CheckResult.not_checked(1740, in_flight=True, max_concurrency=8),
            {
                "error_class": "PlugzTimeoutError",
                "message": "not checked within the audit's 1,740 s deadline; its check was still running "
                "(reading the connection or waiting for Plugz, retries included) and was cancelled. "
                "Raise audit_timeout (and the task's execution_timeout, which caps it) or "
                "max_concurrency, or check why this number's Plugz instance answers slowly.",
            },
            True,
            id="cancelled-in-flight",
        ),
        pytest.param(
            CheckResult.not_checked(2.5, in_flight=False, max_concurrency=8),
            {
                "error_class": "PlugzTimeoutError",
                "message": "not checked within the audit's 2.5 s deadline; its check never started: all 8 "
                "workers were busy with slower numbers. Raise audit_timeout (and the task's "
                "execution_timeout, which caps it) or max_concurrency, or check why this number's "
                "Plugz instance answers slowly.",
            },
            True,
            id="never-started",
        ),
    ],
)
def test_check_result_to_xcom(result: CheckResult, xcom: dict[str, Any], timed_out: bool) -> None:
    assert result.to_xcom() == xcom
    assert list(result.to_xcom()) == list(xcom)
    assert result.timed_out is timed_out


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({}, id="neither-answer-nor-error"),
        pytest.param({"has_code": True, "error_class": "PlugzServerError", "message": "x"}, id="both"),
        pytest.param({"error_class": "PlugzServerError"}, id="error-without-message"),
        pytest.param({"error_class": "", "message": "x"}, id="empty-error-class"),
        pytest.param({"has_code": 1}, id="has-code-not-bool"),
        pytest.param({"has_code": False, "timed_out": True}, id="answered-yet-timed-out"),
    ],
)
def test_check_result_refuses_inconsistent_fields(fields: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"CheckResult|has_code"):
        CheckResult(**fields)


def _fails_with_the_url() -> None:
    raise RuntimeError(f"GET https://api.plugzapi.com.br/instances/x/token/{instance_token(1)}/status")


def test_an_unexpected_error_keeps_only_its_class_and_where_it_was_raised() -> None:
    try:
        _fails_with_the_url()
    except RuntimeError as err:
        result = CheckResult.failure("plugz_1", err)
    assert result.error_class == "RuntimeError"
    assert result.message is not None
    assert result.message.startswith(
        "unexpected RuntimeError in test_audit._fails_with_the_url while checking connection 'plugz_1'"
    )
    assert instance_token(1) not in result.message


def test_report_from_a_fleet_run_keeps_the_order_and_counts() -> None:
    run: FleetRun[PinStatus] = FleetRun(
        conn_ids=("a", "b", "c", "d", "e"),
        max_concurrency=2,
        values={"b": PinStatus(has_code=True), "a": PinStatus(has_code=False)},
        errors={"c": PlugzNotFoundError("unknown instance")},
        cancelled=("d",),
        never_started=("e",),
    )
    report = AuditReport.from_run(run, deadline_seconds=60)

    xcom = report.to_xcom()
    assert list(xcom) == ["total", "with_pin", "without_pin", "errors", "timed_out", "results"]
    assert {k: v for k, v in xcom.items() if k != "results"} == {
        "total": 5,
        "with_pin": 1,
        "without_pin": 1,
        "errors": 3,
        "timed_out": 2,
    }
    assert list(xcom["results"]) == ["a", "b", "c", "d", "e"]
    assert {c: outcome(r) for c, r in xcom["results"].items()} == {
        "a": {"has_code": False},
        "b": {"has_code": True},
        "c": {"error_class": "PlugzNotFoundError"},
        "d": {"error_class": "PlugzTimeoutError"},
        "e": {"error_class": "PlugzTimeoutError"},
    }
    assert "still running" in xcom["results"]["d"]["message"]
    assert "never started: all 2 workers" in xcom["results"]["e"]["message"]
    assert (report.missing_pin, report.failed) == (["a"], ["c", "d", "e"])
    assert json.loads(json.dumps(xcom)) == xcom


def test_the_report_is_a_value() -> None:
    given = {"a": CheckResult.pin(True)}
    report = AuditReport(given)
    given["b"] = CheckResult.pin(False)  # the caller's dict is not the report's
    assert (report.total, list(report.results)) == (1, ["a"])
    with pytest.raises(TypeError):
        report.results["b"] = CheckResult.pin(False)  # type: ignore[index]
    with pytest.raises(FrozenInstanceError):
        report.total = 2  # type: ignore[misc]
    assert report == AuditReport({"a": CheckResult.pin(True)})
    assert repr(report) == "AuditReport(total=1, with_pin=1, without_pin=0, errors=0, timed_out=0)"


# --- the typed report with connection status -----------------------------------------------------


@pytest.mark.parametrize(
    ("connected", "session", "smartphone_connected", "expected"),
    [
        pytest.param(True, True, True, "connected", id="all-up"),
        pytest.param(True, None, True, "connected", id="no-session-field-zapi"),
        pytest.param(True, True, False, "phone_offline", id="phone-offline"),
        pytest.param(False, False, True, "session_lost", id="phone-up-not-connected"),
        pytest.param(True, False, True, "session_lost", id="connected-without-session"),
        pytest.param(True, False, False, "session_lost", id="no-session-and-phone-down"),
        pytest.param(False, False, False, "disconnected", id="all-down"),
        pytest.param(False, None, False, "disconnected", id="all-down-no-session-field"),
    ],
)
def test_connection_state(
    connected: bool, session: bool | None, smartphone_connected: bool, expected: str
) -> None:
    assert connection_state(connected, session, smartphone_connected) == expected
    assert expected in CONNECTION_STATES


@pytest.mark.parametrize(
    ("result", "xcom", "describe"),
    [
        pytest.param(
            StatusResult.of(InstanceStatus(connected=True, session=True, smartphone_connected=True)),
            {
                "state": "connected",
                "connected": True,
                "session": True,
                "smartphone_connected": True,
                "reason": None,
            },
            "connected",
            id="connected",
        ),
        pytest.param(
            StatusResult.of(InstanceStatus(False, False, True, "You need to restore the session.")),
            {
                "state": "session_lost",
                "connected": False,
                "session": False,
                "smartphone_connected": True,
                "reason": "You need to restore the session.",
            },
            "SESSION LOST (You need to restore the session.)",
            id="session-lost",
        ),
        pytest.param(
            StatusResult.of(InstanceStatus(True, None, False)),
            {
                "state": "phone_offline",
                "connected": True,
                "session": None,
                "smartphone_connected": False,
                "reason": None,
            },
            "PHONE OFFLINE",
            id="phone-offline-without-reason",
        ),
        pytest.param(
            StatusResult.failure("plugz_x", PlugzServerError("Plugz says: HTTP 503")),
            {"error_class": "PlugzServerError", "message": "Plugz says: HTTP 503"},
            "status ERROR PlugzServerError: Plugz says: HTTP 503",
            id="failed",
        ),
    ],
)
def test_status_result_to_xcom_and_describe(
    result: StatusResult, xcom: dict[str, Any], describe: str
) -> None:
    assert result.to_xcom() == xcom
    assert list(result.to_xcom()) == list(xcom)
    assert result.describe() == describe
    assert result.state == xcom.get("state")


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({}, id="neither-answer-nor-error"),
        pytest.param({"connected": True, "smartphone_connected": 1}, id="flag-not-bool"),
        pytest.param(
            {"connected": True, "smartphone_connected": True, "session": "yes"}, id="session-not-bool"
        ),
        pytest.param(
            {"connected": True, "smartphone_connected": True, "message": "x"}, id="answer-with-message"
        ),
        pytest.param({"error_class": "PlugzServerError"}, id="error-without-message"),
        pytest.param({"error_class": "", "message": "x"}, id="empty-error-class"),
        pytest.param({"error_class": "PlugzServerError", "message": "x", "connected": True}, id="both"),
        pytest.param(
            {"error_class": "PlugzServerError", "message": "x", "reason": "y"}, id="error-with-reason"
        ),
    ],
)
def test_status_result_refuses_inconsistent_fields(fields: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="StatusResult"):
        StatusResult(**fields)


def _status_fails_with_the_url() -> None:
    raise RuntimeError(f"GET https://api.plugzapi.com.br/instances/x/token/{instance_token(1)}/status")


def test_an_unexpected_status_error_keeps_only_its_class_and_where_it_was_raised() -> None:
    try:
        _status_fails_with_the_url()
    except RuntimeError as err:
        result = StatusResult.failure("plugz_1", err)
    assert result.error_class == "RuntimeError"
    assert result.message is not None
    assert result.message.startswith(
        "unexpected RuntimeError in test_audit._status_fails_with_the_url while reading the status of "
        "connection 'plugz_1'; this is not a Plugz error"
    )
    assert instance_token(1) not in result.message


CONNECTED = StatusResult.of(InstanceStatus(True, True, True))
SESSION_LOST = StatusResult.of(InstanceStatus(False, False, True, "You need to restore the session."))
STATUS_FAILED = StatusResult.failure("x", PlugzServerError("HTTP 503"))


@pytest.mark.parametrize(
    ("result", "xcom", "severity"),
    [
        pytest.param(
            CheckResult.pin(True, status=CONNECTED),
            {"has_code": True, "status": CONNECTED.to_xcom()},
            2,
            id="pin-and-connected",
        ),
        pytest.param(
            CheckResult.pin(True, status=SESSION_LOST),
            {"has_code": True, "status": SESSION_LOST.to_xcom()},
            1,
            id="pin-but-session-lost",
        ),
        pytest.param(
            CheckResult.pin(False, status=STATUS_FAILED),
            {"has_code": False, "status": {"error_class": "PlugzServerError", "message": "HTTP 503"}},
            0,
            id="no-pin-kept-when-the-status-failed",
        ),
        pytest.param(
            CheckResult.failure("x", PlugzInstanceNotSupportedError("mobile only"), status=CONNECTED),
            {
                "error_class": "PlugzInstanceNotSupportedError",
                "message": "mobile only",
                "status": CONNECTED.to_xcom(),
            },
            0,
            id="web-instance-with-status",
        ),
        pytest.param(
            CheckResult.failure("x", PlugzNotFoundError("unknown instance")),
            {"error_class": "PlugzNotFoundError", "message": "unknown instance", "status": None},
            0,
            id="status-not-read",
        ),
    ],
)
def test_check_result_with_status_to_xcom(result: CheckResult, xcom: dict[str, Any], severity: int) -> None:
    assert result.to_xcom(with_status=True) == xcom
    assert list(result.to_xcom(with_status=True)) == list(xcom)
    assert result.to_xcom() == {k: v for k, v in xcom.items() if k != "status"}  # as without check_status
    assert result.severity == severity


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param(
            {"error_class": "PlugzTimeoutError", "message": "x", "timed_out": True, "status": CONNECTED},
            id="timed-out-with-status",
        ),
        pytest.param({"has_code": True, "status": {"state": "connected"}}, id="status-not-a-status-result"),
    ],
)
def test_check_result_refuses_an_inconsistent_status(fields: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="CheckResult"):
        CheckResult(**fields)


def test_report_with_status_from_a_fleet_run_counts_each_state() -> None:
    phone_offline = InstanceStatus(True, True, False, "The phone is offline.")
    run: FleetRun[PinAndStatus] = FleetRun(
        conn_ids=("a", "b", "c", "d", "e", "f", "g", "h"),
        max_concurrency=2,
        values={
            "a": PinAndStatus(PinStatus(has_code=True), InstanceStatus(True, True, True)),
            "b": PinAndStatus(
                PinStatus(has_code=False), InstanceStatus(False, False, False, "You are not connected.")
            ),
            "c": PinAndStatus(
                PinStatus(has_code=True), InstanceStatus(False, False, True, "Restore the session.")
            ),
            "d": PinAndStatus(PinStatus(has_code=True), phone_offline),
            "e": PinAndStatus(PinStatus(has_code=False), PlugzServerError("HTTP 503")),
            "f": PinAndStatus(
                PlugzInstanceNotSupportedError("mobile only"), InstanceStatus(True, True, True)
            ),
        },
        errors={"g": PlugzNotFoundError("unknown instance")},
        cancelled=("h",),
    )
    report = AuditReport.from_run(run, deadline_seconds=60, status_checked=True)

    xcom = report.to_xcom()
    assert list(xcom) == [
        "total", "with_pin", "without_pin", "errors", "timed_out", *STATUS_COUNTS, "results"
    ]  # fmt: skip
    assert {k: v for k, v in xcom.items() if k != "results"} == {
        "total": 8,
        "with_pin": 3,
        "without_pin": 2,
        "errors": 3,
        "timed_out": 1,
        "connected": 2,
        "disconnected": 1,
        "session_lost": 1,
        "phone_offline": 1,
        "status_errors": 3,  # e failed; g and h were not read
    }
    assert sum(xcom[name] for name in STATUS_COUNTS) == xcom["total"]
    assert {c: state(r) for c, r in xcom["results"].items()} == {
        "a": "connected",
        "b": "disconnected",
        "c": "session_lost",
        "d": "phone_offline",
        "e": None,
        "f": "connected",
        "g": None,
        "h": None,
    }
    assert xcom["results"]["e"] == {
        "has_code": False,
        "status": {"error_class": "PlugzServerError", "message": "HTTP 503"},
    }
    assert xcom["results"]["g"]["status"] is None
    assert xcom["results"]["h"]["status"] is None
    assert xcom["results"]["h"]["error_class"] == "PlugzTimeoutError"
    assert (report.not_connected, report.status_failed) == (["b", "c", "d"], ["e"])
    assert (report.missing_pin, report.failed) == (["b", "e"], ["f", "g", "h"])
    assert json.loads(json.dumps(xcom)) == xcom
    assert repr(report) == (
        "AuditReport(total=8, with_pin=3, without_pin=2, errors=3, timed_out=1, connected=2, "
        "disconnected=1, session_lost=1, phone_offline=1, status_errors=3)"
    )


def test_a_report_without_status_checked_holds_no_status() -> None:
    with pytest.raises(ValueError, match="status_checked=True"):
        AuditReport({"a": CheckResult.pin(True, status=CONNECTED)})
    report = AuditReport({"a": CheckResult.pin(True)})
    assert (report.connected, report.status_errors) == (0, 0)
    assert "status" not in report.to_xcom()["results"]["a"]


# --- the report, end to end ----------------------------------------------------------------------


def test_report_has_one_entry_per_connection_and_counts(fleet: Fleet) -> None:
    report, ti = run_audit([*fleet.conn_ids, UNDEFINED_CONN_ID])

    assert list(report) == ["total", "with_pin", "without_pin", "errors", "timed_out", "results"]
    assert list(report["results"]) == [*fleet.conn_ids, UNDEFINED_CONN_ID]  # order kept
    assert {c: outcome(r) for c, r in report["results"].items()} == {
        **fleet.expected,
        UNDEFINED_CONN_ID: {"error_class": "AirflowNotFoundException"},
    }
    assert (report["total"], report["with_pin"], report["without_pin"], report["errors"]) == (31, 18, 8, 5)
    assert report["timed_out"] == 0
    assert ti.pushed == {REPORT_XCOM_KEY: report}
    assert json.loads(json.dumps(report)) == report  # JSON-safe


@pytest.mark.parametrize(
    ("conn_index", "says"),
    [
        pytest.param(3, "Instance ID (login) and Instance token", id="unknown-instance"),
        pytest.param(7, "HTTP 503", id="503"),
        pytest.param(11, "Client-Token", id="wrong-client-token"),
        pytest.param(15, "Renew the instance", id="expired"),
    ],
)
def test_error_entries_carry_only_class_and_advice(fleet: Fleet, conn_index: int, says: str) -> None:
    report, _ = run_audit(fleet.conn_ids)
    entry = report["results"][f"plugz_{conn_index}"]
    assert set(entry) == {"error_class", "message"}
    assert says in entry["message"]
    assert f"plugz_{conn_index}" in entry["message"]


@pytest.mark.parametrize(
    "status_options",
    [
        pytest.param({}, id="pin-only"),
        pytest.param({"check_status": True, "fail_if_disconnected": True}, id="with-status"),
    ],
)
def test_report_log_and_failure_hold_no_secret(
    fleet: Fleet,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    status_options: dict[str, bool],
) -> None:
    recorded = RecordingLog()
    monkeypatch.setattr(PlugzPinAuditOperator, "log", property(lambda self: recorded))
    ti = FakeTaskInstance()
    operator = PlugzPinAuditOperator(
        task_id="audit",
        plugz_conn_ids=fleet.conn_ids,
        fail_if_missing_pin=True,
        fail_on_error=True,
        **status_options,
    )
    with pytest.raises(PlugzAuditError) as caught:
        operator.execute({"ti": ti})  # type: ignore[arg-type]
    out, err = capfd.readouterr()  # anything else printed (on Airflow 2: httpx's redacted lines)
    assert any("Plugz PIN audit of 30 connection(s)" in line for line in recorded.lines)
    assert any("plugz_11" in line and "PlugzAuthenticationError" in line for line in recorded.lines)
    assert_no_secrets(
        json.dumps(ti.pushed), str(caught.value), *recorded.lines, out, err, secrets=tuple(fleet.secrets)
    )


def test_an_unexpected_error_is_logged_and_reported_without_its_text(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug (not a PlugzError) in one check: the others are kept, the entry and the ERROR line
    name its class and where it was raised, never its text (which may quote a URL)."""
    recorded = RecordingLog()
    monkeypatch.setattr(PlugzPinAuditOperator, "log", property(lambda self: recorded))
    real = PlugzHook.acall

    async def acall(self: PlugzHook, endpoint: Any, *args: Any, **kwargs: Any) -> Any:
        if endpoint is PIN_STATUS and self.plugz_conn_id == "plugz_1":
            _fails_with_the_url()
        return await real(self, endpoint, *args, **kwargs)

    monkeypatch.setattr(PlugzHook, "acall", acall)
    report, _ = run_audit(["plugz_0", "plugz_1", "plugz_2"])

    entry = report["results"]["plugz_1"]
    assert entry["error_class"] == "RuntimeError"
    assert "this is not a Plugz error" in entry["message"]
    assert report["results"]["plugz_0"] == {"has_code": True}
    assert report["results"]["plugz_2"] == {"has_code": True}
    [line] = [line for line in recorded.lines if line.startswith("Plugz PIN audit: unexpected")]
    assert line == (
        "Plugz PIN audit: unexpected RuntimeError for connection 'plugz_1' in test_audit._fails_with_the_url"
    )
    assert instance_token(1) not in json.dumps(report)


@pytest.mark.parametrize(
    "conn_ids",
    [
        pytest.param(["plugz_0", "plugz_1", "plugz_0"], id="duplicates-dropped"),
        pytest.param("plugz_0, plugz_1 plugz_0", id="comma-separated-string"),
    ],
)
def test_each_connection_is_checked_once(fleet: Fleet, conn_ids: Any) -> None:
    report, _ = run_audit(conn_ids)
    assert list(report["results"]) == ["plugz_0", "plugz_1"]
    assert fleet.sandbox.request_count == 2


# --- concurrency: the operator's bound (the fan-out keeps it) ---------------------------------


@pytest.mark.parametrize("max_concurrency", [pytest.param(1, id="1"), pytest.param(4, id="4")])
def test_max_concurrency_bounds_checks_and_connections(fleet: Fleet, max_concurrency: int) -> None:
    """End to end; how the fan-out keeps the bound is tested in tests/hooks/test_fleet.py."""
    fleet.sandbox.latency = 0.02  # so that checks overlap in the sandbox
    report, _ = run_audit(fleet.conn_ids, max_concurrency=max_concurrency)
    assert report["total"] == FLEET_SIZE
    assert fleet.sandbox.max_in_flight == max_concurrency
    assert fleet.sandbox.connections_accepted <= max_concurrency
    assert fleet.sandbox.request_count >= FLEET_SIZE


# --- connection status (check_status), end to end --------------------------------------------------


def test_check_status_reports_each_numbers_state_beside_its_pin(fleet: Fleet) -> None:
    report, ti = run_audit([*fleet.conn_ids, UNDEFINED_CONN_ID], check_status=True)

    assert list(report) == [
        "total", "with_pin", "without_pin", "errors", "timed_out", *STATUS_COUNTS, "results"
    ]  # fmt: skip
    results = report["results"]
    assert list(results) == [*fleet.conn_ids, UNDEFINED_CONN_ID]
    # The PIN side is what it is without check_status.
    assert {c: outcome(r) for c, r in results.items()} == {
        **fleet.expected,
        UNDEFINED_CONN_ID: {"error_class": "AirflowNotFoundException"},
    }
    assert (report["total"], report["with_pin"], report["without_pin"], report["errors"]) == (31, 18, 8, 5)
    assert {c: state(r) for c, r in results.items()} == {**fleet.states, UNDEFINED_CONN_ID: None}
    for n, sandbox_state in SANDBOX_STATES.items():
        assert same_status(results[f"plugz_{n}"]["status"], sandbox_state)
    assert same_status(results["plugz_0"]["status"], "connected")
    for n in BROKEN:  # the PIN check failed as the status call would: not asked
        assert results[f"plugz_{n}"]["status"] is None
    assert {name: report[name] for name in STATUS_COUNTS} == {
        "connected": 22,
        "disconnected": 2,
        "session_lost": 1,
        "phone_offline": 1,
        "status_errors": 5,  # the four broken numbers and the undefined connection
    }
    assert ti.pushed == {REPORT_XCOM_KEY: report}
    assert json.loads(json.dumps(report)) == report


def test_check_status_asks_pin_then_status_of_each_number(fleet: Fleet) -> None:
    run_audit(fleet.conn_ids, check_status=True)
    for n in range(FLEET_SIZE):
        if n in BROKEN:
            assert "status" not in fleet.requests_of(n)
        else:
            assert fleet.requests_of(n) == ["pin", "status"], n


def test_without_check_status_the_report_and_the_requests_are_as_before(fleet: Fleet) -> None:
    report, _ = run_audit(fleet.conn_ids)

    assert list(report) == ["total", "with_pin", "without_pin", "errors", "timed_out", "results"]
    assert all("status" not in r for r in report["results"].values())
    assert {c: outcome(r) for c, r in report["results"].items()} == fleet.expected
    assert not any(r.path.endswith("/status") for r in fleet.sandbox.requests)
    assert fleet.requests_of(0) == ["pin"]


@pytest.mark.parametrize(
    ("fault", "error_class", "says"),
    [
        pytest.param(Fault.status(503), "PlugzServerError", "HTTP 503", id="503-after-retries"),
        pytest.param(
            Fault.malformed(body=b'{"connected": tr'), "PlugzMalformedResponseError", "JSON", id="malformed"
        ),
    ],
)
def test_a_failing_status_call_is_an_error_of_that_number_and_keeps_its_pin_answer(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch, fault: Fault, error_class: str, says: str
) -> None:
    """The fault is queued as plugz_1 (no PIN) asks for its status, so it hits that call only."""
    real = PlugzHook.acall

    async def acall(self: PlugzHook, endpoint: Any, *args: Any, **kwargs: Any) -> Any:
        if endpoint is INSTANCE_STATUS and self.plugz_conn_id == "plugz_1":
            fleet.sandbox.inject(fault, times=20, instance_id=instance_id(1))  # outlasts retries
        return await real(self, endpoint, *args, **kwargs)

    monkeypatch.setattr(PlugzHook, "acall", acall)
    ti = FakeTaskInstance()
    operator = PlugzPinAuditOperator(
        task_id="audit",
        plugz_conn_ids=["plugz_0", "plugz_1", "plugz_2"],
        check_status=True,
        fail_if_missing_pin=True,
        fail_on_error=True,
    )
    with pytest.raises(PlugzAuditError) as caught:
        operator.execute({"ti": ti})  # type: ignore[arg-type]

    report = ti.pushed[REPORT_XCOM_KEY]
    entry = report["results"]["plugz_1"]
    assert entry["has_code"] is False  # kept: a missing PIN is never hidden by a status failure
    assert set(entry["status"]) == {"error_class", "message"}
    assert entry["status"]["error_class"] == error_class
    assert says in entry["status"]["message"]
    assert "instance status check" in entry["status"]["message"]
    assert "plugz_1" in entry["status"]["message"]
    assert (report["without_pin"], report["errors"], report["status_errors"], report["connected"]) == (
        1,
        0,
        1,
        2,
    )
    message = str(caught.value)
    assert "1 WhatsApp number(s) have NO PIN: plugz_1" in message
    assert f"1 connection(s) could not be checked: plugz_1 (status: {error_class})" in message


def test_a_web_instance_has_no_pin_answer_but_its_status_is_read(fleet: Fleet) -> None:
    fleet.sandbox.add_instance(instance_id(4), instance_token(4), kind="web", state="session-lost")
    report, _ = run_audit(["plugz_4", "plugz_5"], check_status=True)

    entry = report["results"]["plugz_4"]
    assert entry["error_class"] == PlugzInstanceNotSupportedError.__name__
    assert same_status(entry["status"], "session-lost")
    assert fleet.requests_of(4) == ["pin", "status"]
    assert (report["errors"], report["session_lost"], report["connected"], report["status_errors"]) == (
        1,
        1,
        1,
        0,
    )


def test_an_unexpected_status_error_is_logged_and_reported_without_its_text(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorded = RecordingLog()
    monkeypatch.setattr(PlugzPinAuditOperator, "log", property(lambda self: recorded))
    real = PlugzHook.acall

    async def acall(self: PlugzHook, endpoint: Any, *args: Any, **kwargs: Any) -> Any:
        if endpoint is INSTANCE_STATUS and self.plugz_conn_id == "plugz_1":
            _status_fails_with_the_url()
        return await real(self, endpoint, *args, **kwargs)

    monkeypatch.setattr(PlugzHook, "acall", acall)
    report, _ = run_audit(["plugz_0", "plugz_1"], check_status=True)

    entry = report["results"]["plugz_1"]
    assert entry["has_code"] is False
    assert entry["status"]["error_class"] == "RuntimeError"
    assert "this is not a Plugz error" in entry["status"]["message"]
    assert state(report["results"]["plugz_0"]) == "connected"
    [line] = [line for line in recorded.lines if line.startswith("Plugz PIN audit: unexpected")]
    assert line == (
        "Plugz PIN audit: unexpected RuntimeError for connection 'plugz_1' (status check) in "
        "test_audit._status_fails_with_the_url"
    )
    assert instance_token(1) not in json.dumps(report)


def test_the_log_summary_counts_the_states_and_lists_problems_first(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorded = RecordingLog()
    monkeypatch.setattr(PlugzPinAuditOperator, "log", property(lambda self: recorded))
    run_audit(fleet.conn_ids, check_status=True)

    assert any(
        line.startswith("Plugz PIN audit of 30 connection(s) and their connection status, max_concurrency=32")
        for line in recorded.lines
    )
    [summary] = [line for line in recorded.lines if " could not be read." in line]
    assert summary.endswith(
        ": 18 with PIN, 8 WITHOUT PIN, 4 could not be checked (0 of them not within the deadline). "
        "Connection status: 22 connected, 2 DISCONNECTED, 1 SESSION LOST, 1 PHONE OFFLINE, "
        "4 could not be read."
    )
    [table] = [line for line in recorded.lines if line.startswith("Plugz PIN audit results")]
    rows = {row.split()[0]: " ".join(row.split()[1:]) for row in table.splitlines()[1:]}
    assert rows["plugz_10"] == "PIN set; SESSION LOST (You need to restore the session.)"
    assert rows["plugz_6"] == "PIN set; DISCONNECTED (You are not connected.)"
    assert rows["plugz_0"] == "PIN set; connected"
    assert rows["plugz_1"] == "NO PIN; connected"
    order = list(rows)
    # Could not be checked, then problems (no PIN, not connected), then the numbers all well.
    assert order.index("plugz_3") < order.index("plugz_1") < order.index("plugz_0")
    assert order.index("plugz_14") < order.index("plugz_0")


@pytest.mark.parametrize(
    ("check_status", "last_line"),
    [
        # Shown: the 4 broken numbers, then 6 of the 8 without a PIN; hidden: 2 more of those and
        # the 18 with a PIN.
        pytest.param(False, "... and 20 more (18 with PIN, 2 problem(s))", id="pin-only"),
        # Shown: the 4 broken, then 6 of the 12 problems (8 without a PIN, 4 not connected);
        # hidden: 6 more problems and the 14 numbers all well.
        pytest.param(True, "... and 20 more (14 with PIN and connected, 6 problem(s))", id="with-status"),
    ],
)
def test_the_log_table_is_bounded_and_counts_what_it_leaves_out(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch, check_status: bool, last_line: str
) -> None:
    recorded = RecordingLog()
    monkeypatch.setattr(PlugzPinAuditOperator, "log", property(lambda self: recorded))
    monkeypatch.setattr(PlugzPinAuditOperator, "max_log_rows", 10)
    run_audit(fleet.conn_ids, check_status=check_status)

    [table] = [line for line in recorded.lines if line.startswith("Plugz PIN audit results")]
    rows = table.splitlines()[1:]
    assert len(rows) == 11
    assert rows[-1].strip() == f"{last_line}; the full report is in XCom 'report'."


@pytest.mark.parametrize(
    ("options", "named", "not_named"),
    [
        pytest.param(
            {"fail_if_disconnected": True},
            [
                "4 WhatsApp number(s) are not connected: plugz_6 (disconnected), plugz_10 (session_lost), "
                "plugz_14 (phone_offline), plugz_18 (disconnected)"
            ],
            ["plugz_1 ", "plugz_3", "NO PIN", "could not be checked"],
            id="disconnected",
        ),
        pytest.param(
            {"fail_if_disconnected": True, "fail_on_error": True, "fail_if_missing_pin": True},
            ["are not connected: plugz_6", "plugz_3 (PlugzNotFoundError)", "have NO PIN: plugz_1, plugz_5"],
            [],
            id="all-three",
        ),
    ],
)
def test_fail_if_disconnected_raises_after_pushing_the_report(
    fleet: Fleet, options: dict[str, bool], named: list[str], not_named: list[str]
) -> None:
    ti = FakeTaskInstance()
    operator = PlugzPinAuditOperator(
        task_id="audit", plugz_conn_ids=fleet.conn_ids, check_status=True, **options
    )
    with pytest.raises(PlugzAuditError) as caught:
        operator.execute({"ti": ti})  # type: ignore[arg-type]
    message = str(caught.value)
    for text in named:
        assert text in message
    for text in not_named:
        assert text not in message
    pushed = ti.pushed[REPORT_XCOM_KEY]
    assert (pushed["total"], pushed["connected"], pushed["disconnected"]) == (FLEET_SIZE, 22, 2)


@pytest.mark.parametrize(
    "sandbox_state",
    [
        pytest.param(None, id="all-connected-never-fails"),
        pytest.param("disconnected", id="disconnected"),
        pytest.param("session-lost", id="session-lost"),
        pytest.param("phone-offline", id="phone-offline"),
    ],
)
def test_fail_if_disconnected_on_a_healthy_fleet_fails_when_one_number_drops(
    healthy_fleet: Fleet, sandbox_state: str | None
) -> None:
    if sandbox_state is not None:
        healthy_fleet.sandbox.set_state(instance_id(5), sandbox_state)
    ti = FakeTaskInstance()
    operator = PlugzPinAuditOperator(
        task_id="audit",
        plugz_conn_ids=healthy_fleet.conn_ids,
        check_status=True,
        fail_if_disconnected=True,
        fail_if_missing_pin=True,
        fail_on_error=True,
    )
    if sandbox_state is None:
        report = operator.execute({"ti": ti})  # type: ignore[arg-type]
        assert (report["connected"], report["status_errors"]) == (FLEET_SIZE, 0)
        return
    reported = STATUS_OF[sandbox_state]["state"]
    with pytest.raises(
        PlugzAuditError, match=rf"1 WhatsApp number\(s\) are not connected: plugz_5 \({reported}\)\."
    ):
        operator.execute({"ti": ti})  # type: ignore[arg-type]
    assert ti.pushed[REPORT_XCOM_KEY][reported] == 1


@pytest.mark.parametrize("max_concurrency", [pytest.param(1, id="1"), pytest.param(4, id="4")])
def test_check_status_keeps_the_concurrency_bound_and_one_request_at_a_time_per_worker(
    healthy_fleet: Fleet, max_concurrency: int
) -> None:
    """Two requests per number, but never more than ``max_concurrency`` in flight or connected:
    each worker asks PIN then status, one after the other, on its own kept-alive connection."""
    healthy_fleet.sandbox.latency = 0.02  # so that checks overlap in the sandbox
    report, _ = run_audit(healthy_fleet.conn_ids, max_concurrency=max_concurrency, check_status=True)

    assert (report["total"], report["connected"]) == (FLEET_SIZE, FLEET_SIZE)
    assert healthy_fleet.sandbox.request_count == 2 * FLEET_SIZE
    assert healthy_fleet.sandbox.max_in_flight == max_concurrency
    assert healthy_fleet.sandbox.connections_accepted <= max_concurrency
    assert all(healthy_fleet.requests_of(n) == ["pin", "status"] for n in range(FLEET_SIZE))


# --- the deadline --------------------------------------------------------------------------------


# The audit deadline of the tests below: the fast numbers of a 30-number fleet must finish within
# it however loaded the machine is (with both suites at once on 2 cores, 1 s and then 3 s were not
# always enough); the slow ones answer after 60 s. The tests wait for it, but use no CPU meanwhile.
DEADLINE = 10


@pytest.mark.parametrize(
    ("max_concurrency", "never_started"),
    [
        # Every check starts at once: the slow ones are cancelled in flight, the rest are kept.
        pytest.param(32, 0, id="slow-ones-cancelled-the-rest-kept"),
        # Two workers, both stuck on the slow numbers listed first: nobody else gets a turn.
        pytest.param(2, FLEET_SIZE - len(SLOW), id="stuck-workers-the-rest-never-started"),
    ],
)
def test_deadline_reports_unfinished_numbers_as_timed_out(
    fleet: Fleet, max_concurrency: int, never_started: int
) -> None:
    slow = slow_down(fleet)
    conn_ids = [*slow, *(c for c in fleet.conn_ids if c not in slow)]
    started = time.monotonic()
    report, ti = run_audit(conn_ids, audit_timeout=DEADLINE, max_concurrency=max_concurrency)
    elapsed = time.monotonic() - started

    assert DEADLINE <= elapsed < DEADLINE + 9
    results = report["results"]
    timed_out = {c for c, r in results.items() if r.get("error_class") == "PlugzTimeoutError"}
    assert report["timed_out"] == len(timed_out) == len(slow) + never_started
    assert report["errors"] == len({c for c, r in results.items() if "error_class" in r})
    for conn_id in slow:
        assert results[conn_id]["message"].startswith(
            f"not checked within the audit's {DEADLINE} s deadline; its check was still running"
        )
    never = [c for c in timed_out if "never started" in results[c]["message"]]
    assert len(never) == never_started
    finished = {c: outcome(r) for c, r in results.items() if c not in timed_out}
    assert finished == {c: e for c, e in fleet.expected.items() if c not in timed_out}
    assert ti.pushed == {REPORT_XCOM_KEY: report}


def test_a_status_call_past_the_deadline_times_the_whole_number_out(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As without check_status: a number whose check has not finished (here its status call
    hangs, after its PIN was answered) is timed out as a whole; the others keep both answers."""
    real = PlugzHook.acall

    async def acall(self: PlugzHook, endpoint: Any, *args: Any, **kwargs: Any) -> Any:
        if endpoint is INSTANCE_STATUS and self.plugz_conn_id == "plugz_0":
            fleet.sandbox.inject(Fault.slow(60), instance_id=instance_id(0))
        return await real(self, endpoint, *args, **kwargs)

    monkeypatch.setattr(PlugzHook, "acall", acall)
    started = time.monotonic()
    report, _ = run_audit(["plugz_0", "plugz_1", "plugz_6"], check_status=True, audit_timeout=DEADLINE)

    assert time.monotonic() - started < DEADLINE + 9
    assert fleet.requests_of(0) == ["pin", "status"]
    entry = report["results"]["plugz_0"]
    assert (entry["error_class"], entry["status"]) == ("PlugzTimeoutError", None)
    assert entry["message"].startswith(
        f"not checked within the audit's {DEADLINE} s deadline; its check was still running"
    )
    assert (report["timed_out"], report["errors"], report["status_errors"]) == (1, 1, 1)
    assert outcome(report["results"]["plugz_1"]) == {"has_code": False}
    assert (state(report["results"]["plugz_1"]), state(report["results"]["plugz_6"])) == (
        "connected",
        "disconnected",
    )


@pytest.mark.parametrize(
    "head", [pytest.param(False, id="dripping-body"), pytest.param(True, id="dripping-headers")]
)
def test_a_dripping_server_costs_one_deadline_per_attempt(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch, head: bool
) -> None:
    """Per-read timeouts never fire on a server that sends a byte every 50 ms: each attempt's
    wall-clock deadline (``total_timeout``) ends those checks, long before the audit's own."""
    dripping = [0, 2]
    for n in dripping:
        conn = json.loads(fleet.sandbox.connection_json(instance_id(n)))
        conn["extra"].update({"read_timeout": 5, "total_timeout": 0.3, "max_attempts": 1})
        monkeypatch.setenv(f"AIRFLOW_CONN_PLUGZ_{n}", json.dumps(conn))
        fleet.sandbox.inject(Fault.drip(0.05, head=head), instance_id=instance_id(n))
    started = time.monotonic()
    report, _ = run_audit(fleet.conn_ids, audit_timeout=60)
    assert time.monotonic() - started < 10
    for n in dripping:
        result = report["results"][f"plugz_{n}"]
        # One HTTP attempt's own timeout (a PlugzTimeoutError subclass), not the audit's deadline:
        # on a busy loop it may pass before the request was even written ("did not connect").
        assert issubclass(getattr(exceptions, result["error_class"]), PlugzTimeoutError)
        assert re.search(r"within its 0\.3 s deadline.*, stopped after \d+\.\d\d s", result["message"])
    assert report["timed_out"] == 0  # ended by the per-attempt deadline, not the audit's
    others = {c: outcome(r) for c, r in report["results"].items() if c not in {"plugz_0", "plugz_2"}}
    assert others == {c: e for c, e in fleet.expected.items() if c not in {"plugz_0", "plugz_2"}}


def test_deadline_with_fail_on_error_fails_after_pushing_the_report(fleet: Fleet) -> None:
    slow = slow_down(fleet, (0,))
    ti = FakeTaskInstance()
    operator = PlugzPinAuditOperator(
        task_id="audit", plugz_conn_ids=slow, audit_timeout=timedelta(seconds=0.5), fail_on_error=True
    )
    with pytest.raises(PlugzAuditError, match=r"plugz_0 \(PlugzTimeoutError\)"):
        operator.execute({"ti": ti})  # type: ignore[arg-type]
    assert ti.pushed[REPORT_XCOM_KEY]["timed_out"] == 1


def test_execution_timeout_clamps_the_deadline_and_the_log_says_so(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorded = RecordingLog()
    monkeypatch.setattr(PlugzPinAuditOperator, "log", property(lambda self: recorded))
    slow = slow_down(fleet, (0,))
    operator = PlugzPinAuditOperator(
        task_id="audit", plugz_conn_ids=[*slow, "plugz_2"], execution_timeout=timedelta(seconds=3)
    )
    started = time.monotonic()
    report = operator.execute({"ti": FakeTaskInstance()})  # type: ignore[arg-type]

    assert time.monotonic() - started < 3  # the report is in before Airflow would kill the task
    assert report["results"]["plugz_2"] == {"has_code": True}
    assert report["results"]["plugz_0"]["message"].startswith("not checked within the audit's 1.5 s deadline")
    assert any(
        "deadline 1.5 s: the task's execution_timeout of 3 s less 1.5 s kept for writing the report, "
        "shorter than audit_timeout=1,800 s" in line
        for line in recorded.lines
    )
    assert any(
        "deadline of 1.5 s reached: 1 number(s) not checked (1 cancelled in flight, 0 never started)" in line
        for line in recorded.lines
    )


@pytest.mark.parametrize(
    ("audit_timeout", "execution_timeout", "deadline", "says"),
    [
        pytest.param(1800, None, 1800, "audit_timeout (the task has no", id="no-execution-timeout"),
        pytest.param(1800, 7200, 1800, "audit_timeout, within", id="execution-timeout-longer"),
        pytest.param(1800, 1800, 1740, "less 60 s", id="equal-margin-capped-at-60s"),
        pytest.param(1800, 600, 540, "less 60 s", id="margin-10-percent"),
        pytest.param(1800, 120, 108, "less 12 s", id="margin-10-percent-small"),
        pytest.param(1800, 30, 25, "less 5 s", id="margin-at-least-5s"),
        pytest.param(1800, 6, 3, "less 3 s", id="margin-at-most-half"),
        pytest.param(10, 60, 10, "audit_timeout, within", id="audit-timeout-shorter"),
    ],
)
def test_audit_deadline(
    audit_timeout: float, execution_timeout: float | None, deadline: float, says: str
) -> None:
    limit = None if execution_timeout is None else timedelta(seconds=execution_timeout)
    seconds, why = audit_deadline(audit_timeout, limit)
    assert seconds == pytest.approx(deadline)
    assert says in why


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        pytest.param(None, 1800.0, id="default-30-minutes"),
        pytest.param(90, 90.0, id="int"),
        pytest.param(0.5, 0.5, id="float"),
        pytest.param(timedelta(minutes=5), 300.0, id="timedelta"),
    ],
)
def test_audit_timeout_accepts(value: Any, seconds: float) -> None:
    kwargs = {} if value is None else {"audit_timeout": value}
    operator = PlugzPinAuditOperator(task_id="audit", plugz_conn_ids=["a"], **kwargs)
    assert operator.audit_timeout == seconds


# --- only Plugz connections ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "conn_type", [pytest.param("http", id="http"), pytest.param("postgres", id="postgres")]
)
def test_a_non_plugz_connection_gets_an_error_entry_and_no_request(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch, conn_type: str
) -> None:
    """Its password is a real instance's token and its host the sandbox: nothing may be sent."""
    posing = "posing_as_plugz"
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{posing.upper()}", fleet.sandbox.connection_json(instance_id(4), conn_type=conn_type)
    )
    report, _ = run_audit([posing, "plugz_2"])

    entry = report["results"][posing]
    assert entry["error_class"] == "PlugzConfigurationError"
    assert f"has type '{conn_type}', not 'plugz'" in entry["message"]
    assert instance_token(4) not in entry["message"]
    assert report["results"]["plugz_2"] == {"has_code": True}
    assert (report["errors"], report["timed_out"]) == (1, 0)
    seen = fleet.sandbox.requests
    assert [r.instance_id for r in seen] == [instance_id(2)]
    assert not any(instance_token(4) in r.path for r in seen)


# --- failing the task ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fail_if_missing_pin", "fail_on_error", "named", "not_named"),
    [
        pytest.param(True, False, ["plugz_1", "plugz_29"], ["plugz_3"], id="missing-pin"),
        pytest.param(False, True, ["plugz_3 (PlugzNotFoundError)", "plugz_15"], ["plugz_1,"], id="errors"),
        pytest.param(True, True, ["plugz_1", "plugz_7 (PlugzServerError)"], [], id="both"),
    ],
)
def test_fail_options_raise_after_pushing_the_report(
    fleet: Fleet, fail_if_missing_pin: bool, fail_on_error: bool, named: list[str], not_named: list[str]
) -> None:
    ti = FakeTaskInstance()
    operator = PlugzPinAuditOperator(
        task_id="audit",
        plugz_conn_ids=fleet.conn_ids,
        fail_if_missing_pin=fail_if_missing_pin,
        fail_on_error=fail_on_error,
    )
    with pytest.raises(PlugzAuditError) as caught:
        operator.execute({"ti": ti})  # type: ignore[arg-type]
    message = str(caught.value)
    for text in named:
        assert text in message
    for text in not_named:
        assert text not in message
    assert ti.pushed[REPORT_XCOM_KEY]["total"] == FLEET_SIZE


@pytest.mark.parametrize(
    ("fail_if_missing_pin", "fail_on_error"),
    [pytest.param(True, True, id="both-set"), pytest.param(False, False, id="none-set")],
)
def test_a_healthy_fleet_never_fails(
    healthy_fleet: Fleet, fail_if_missing_pin: bool, fail_on_error: bool
) -> None:
    report, _ = run_audit(
        healthy_fleet.conn_ids, fail_if_missing_pin=fail_if_missing_pin, fail_on_error=fail_on_error
    )
    assert (report["with_pin"], report["without_pin"], report["errors"]) == (FLEET_SIZE, 0, 0)


def test_failure_message_names_a_bounded_number_of_ids() -> None:
    operator = PlugzPinAuditOperator(task_id="audit", plugz_conn_ids=["x"], fail_if_missing_pin=True)
    operator.max_ids_in_message = 3
    ids = [f"plugz_{n}" for n in range(10)]
    message = operator._problems(AuditReport({c: CheckResult.pin(False) for c in ids}))
    assert message is not None
    assert "plugz_0, plugz_1, plugz_2 and 7 more" in message


# --- plugz_conn_ids: templating and validation ---------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(["a", "b"], ["a", "b"], id="list"),
        pytest.param(("a", "b"), ["a", "b"], id="tuple"),
        pytest.param(["b", "a", "b", "a"], ["b", "a"], id="duplicates-first-kept"),
        pytest.param('["a", "b"]', ["a", "b"], id="json-text"),
        pytest.param("['a', 'b']", ["a", "b"], id="python-list-text"),
        pytest.param("a, b\nc", ["a", "b", "c"], id="separated-text"),
        pytest.param("a", ["a"], id="one-id"),
        pytest.param([" a "], ["a"], id="stripped"),
        pytest.param(["a" * 250], ["a" * 250], id="id-of-250-characters"),
        pytest.param(["conn-(1)#x:y/z.w\\v"], ["conn-(1)#x:y/z.w\\v"], id="airflow-id-characters"),
        pytest.param('["(a)", "[b]", "{c}"]', ["(a)", "[b]", "{c}"], id="brackets-inside-json-strings"),
        pytest.param("['a\\'[', 'b']", ["a'[", "b"], id="brackets-inside-python-strings"),
        pytest.param(
            ", ".join(f"plugz_{n}" for n in range(10_000)),
            [f"plugz_{n}" for n in range(10_000)],
            id="10k-ids-as-text",
        ),
    ],
)
def test_conn_id_list_accepts(value: Any, expected: list[str]) -> None:
    assert conn_id_list(value) == expected


@pytest.mark.parametrize(
    ("value", "says"),
    [
        pytest.param([], "is empty", id="empty-list"),
        pytest.param("", "is empty", id="empty-text"),
        pytest.param("[]", "is empty", id="empty-json"),
        pytest.param(["a", ""], "non-empty strings .* item 2 is empty", id="empty-id"),
        pytest.param(["a", " "], "non-empty strings .* item 2 is empty", id="blank-id"),
        pytest.param(["a", 1], "non-empty strings .* item 2 is an int", id="int-id"),
        pytest.param(["a", True], "item 2 is a bool", id="bool-id"),
        pytest.param(["a", None], "item 2 is null", id="null-id"),
        pytest.param(["a", b"b"], "item 2 is a bytes", id="bytes-id"),
        pytest.param(["a", ["b"]], "item 2 is a list", id="nested-native-list"),
        pytest.param(["a", {"b": 1}], "item 2 is a dict", id="dict-in-list"),
        pytest.param(["a b"], "item 1 is holding whitespace", id="id-with-space"),
        pytest.param(["a\x00b"], "item 1 is holding whitespace or control", id="id-with-nul"),
        pytest.param(["a\u2028b"], "item 1 is holding whitespace or control", id="id-with-line-separator"),
        pytest.param(["a" * 251], "item 1 is 251 characters long", id="id-too-long"),
        pytest.param(["a" * 10_000_000], "item 1 is 10,000,000 characters long", id="huge-id"),
        pytest.param("a" * 1_000_000, "item 1 is 1,000,000 characters long", id="huge-id-as-text"),
        pytest.param("a," * 5_000_000, "more than 8,388,608", id="huge-text"),
        pytest.param("[" * 100_000, "flat list", id="deep-json-text"),
        pytest.param("[" * 100_000 + "]" * 100_000, "flat list", id="deep-balanced-json-text"),
        pytest.param("{" * 100_000, "flat list", id="deep-object-text"),
        pytest.param("[" + "(" * 100_000 + "]", "flat list", id="deep-tuple-text"),
        pytest.param('[["a"]]', "flat list", id="nested-json-text"),
        pytest.param("[['a'], 'b']", "flat list", id="nested-python-text"),
        pytest.param('["a", ["b", ["c"]]]', "flat list", id="nested-deeper-text"),
        pytest.param('["a", 1]', "item 2 is an int", id="int-in-json-text"),
        pytest.param('["a", null]', "item 2 is null", id="null-in-json-text"),
        pytest.param('["a", true]', "item 2 is a bool", id="bool-in-json-text"),
        pytest.param("[1e999999]", "item 1 is a float", id="huge-number-text"),
        pytest.param(None, "must be a list .* got null", id="none"),
        pytest.param(5511999999999, "must be a list .* got an int", id="number"),
        pytest.param({"a": 1}, "must be a list", id="dict"),
        pytest.param('{"a": 1}', "must be a list", id="json-object-text"),
        pytest.param("[a, b", "neither JSON nor", id="broken-list-text"),
        pytest.param("[os.system]", "neither JSON nor", id="code-is-not-a-literal"),
    ],
)
def test_conn_id_list_refuses(value: Any, says: str) -> None:
    """Every malformed value is a PlugzConfigurationError saying what is wrong - never a raw
    RecursionError/MemoryError/TypeError - and it quotes none of the value (it may be a
    wrongly templated list of phone numbers)."""
    with pytest.raises(PlugzConfigurationError, match=says) as caught:
        conn_id_list(value)
    assert "5511999999999" not in str(caught.value)
    assert len(str(caught.value)) < 500


def test_conn_id_list_refuses_phone_numbers_without_quoting_them() -> None:
    with pytest.raises(PlugzConfigurationError) as caught:
        conn_id_list(["plugz_a", "+55 11 99999-9999"])
    assert "item 2 is holding whitespace" in str(caught.value)
    assert "9999" not in str(caught.value)


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"plugz_conn_ids": []}, id="empty-list"),
        pytest.param({"plugz_conn_ids": ["a", 1]}, id="int-id"),
        pytest.param({"plugz_conn_ids": ["a", ["b"]]}, id="nested-list"),
        pytest.param(
            {"plugz_conn_ids": ["a" * 251, "plugz_{{ params.a }}"]}, id="id-too-long-beside-a-template"
        ),
        pytest.param({"plugz_conn_ids": ["a"], "max_concurrency": 0}, id="zero-concurrency"),
        pytest.param({"plugz_conn_ids": ["a"], "max_concurrency": True}, id="bool-concurrency"),
        pytest.param({"plugz_conn_ids": ["a"], "max_concurrency": "8"}, id="text-concurrency"),
        pytest.param({"plugz_conn_ids": ["a"], "audit_timeout": 0}, id="zero-timeout"),
        pytest.param({"plugz_conn_ids": ["a"], "audit_timeout": -5}, id="negative-timeout"),
        pytest.param({"plugz_conn_ids": ["a"], "audit_timeout": float("nan")}, id="nan-timeout"),
        pytest.param({"plugz_conn_ids": ["a"], "audit_timeout": float("inf")}, id="infinite-timeout"),
        pytest.param({"plugz_conn_ids": ["a"], "audit_timeout": timedelta(0)}, id="zero-timedelta"),
        pytest.param(
            {"plugz_conn_ids": ["a"], "audit_timeout": timedelta(minutes=-1)}, id="negative-timedelta"
        ),
        pytest.param({"plugz_conn_ids": ["a"], "audit_timeout": True}, id="bool-timeout"),
        pytest.param({"plugz_conn_ids": ["a"], "audit_timeout": "30"}, id="text-timeout"),
        pytest.param({"plugz_conn_ids": ["a"], "audit_timeout": None}, id="none-timeout"),
        pytest.param(
            {"plugz_conn_ids": ["a"], "fail_if_disconnected": True}, id="disconnected-without-status"
        ),
        pytest.param({"plugz_conn_ids": ["a"], "check_status": "yes"}, id="text-check-status"),
        pytest.param({"plugz_conn_ids": ["a"], "fail_on_error": "false"}, id="text-fail-option"),
        pytest.param({"plugz_conn_ids": ["a"], "fail_if_missing_pin": 1}, id="int-fail-option"),
        pytest.param({"plugz_conn_ids": ["a"], "checks": ["nonsense"]}, id="unknown-check"),
        pytest.param({"plugz_conn_ids": ["a"], "checks": "nonsense"}, id="unknown-check-text"),
        pytest.param({"plugz_conn_ids": ["a"], "checks": [1]}, id="check-not-a-name"),
        pytest.param({"plugz_conn_ids": ["a"], "checks": {"connection": 1}}, id="checks-a-dict"),
        pytest.param(
            {"plugz_conn_ids": ["a"], "checks": ["pin"], "fail_if_disconnected": True},
            id="disconnected-with-other-checks",
        ),
    ],
)
def test_bad_arguments_fail_when_the_dag_is_parsed(kwargs: dict[str, Any]) -> None:
    with pytest.raises(
        (ValueError, PlugzConfigurationError),
        match=r"plugz_conn_ids|max_concurrency|audit_timeout must|fail_if_disconnected=True needs "
        r"check_status=True|(check_status|fail_on_error|fail_if_missing_pin) must be True or False|"
        r"checks must name facts among 'pin', 'connection'",
    ):
        PlugzPinAuditOperator(task_id="audit", **kwargs)


@pytest.mark.parametrize(
    ("template", "native", "expected"),
    [
        pytest.param(
            ["plugz_{{ params.a }}", "plugz_{{ params.b }}"], False, ["plugz_1", "plugz_2"], id="items"
        ),
        pytest.param("{{ params.ids }}", False, ["plugz_1", "plugz_2"], id="list-as-text"),
        pytest.param("{{ params.ids }}", True, ["plugz_1", "plugz_2"], id="native-list"),
        pytest.param("{{ params.ids | join(',') }}", False, ["plugz_1", "plugz_2"], id="joined"),
    ],
)
def test_plugz_conn_ids_is_templated(template: Any, native: bool, expected: list[str]) -> None:
    try:  # Airflow 3
        from airflow.sdk import DAG
    except ImportError:  # Airflow 2
        from airflow import DAG  # type: ignore[attr-defined,no-redef]

    with DAG("t", schedule=None, render_template_as_native_obj=native):
        operator = PlugzPinAuditOperator(task_id="audit", plugz_conn_ids=template)
    assert "plugz_conn_ids" in operator.template_fields
    context = {"params": {"a": 1, "b": 2, "ids": ["plugz_1", "plugz_2"]}}
    operator.render_template_fields(context)  # type: ignore[arg-type]
    assert conn_id_list(operator.plugz_conn_ids) == expected


@pytest.mark.parametrize(
    ("rendered", "says"),
    [
        pytest.param("[" * 100_000, "flat list", id="deep-brackets"),
        pytest.param('["plugz_0", ["plugz_1"]]', "item 2 is a list", id="nested-list"),
        pytest.param(["plugz_0", 7], "item 2 is an int", id="native-list-with-a-number"),
    ],
)
def test_a_malformed_rendered_plugz_conn_ids_fails_the_task_before_any_request(
    fleet: Fleet, rendered: Any, says: str
) -> None:
    """What the template renders to is checked when the task runs: a PlugzConfigurationError
    naming the problem, never a raw RecursionError, and no number is asked anything."""
    try:  # Airflow 3
        from airflow.sdk import DAG
    except ImportError:  # Airflow 2
        from airflow import DAG  # type: ignore[attr-defined,no-redef]

    with DAG("t", schedule=None, render_template_as_native_obj=True):
        operator = PlugzPinAuditOperator(task_id="audit", plugz_conn_ids="{{ params.ids }}")
    operator.render_template_fields({"params": {"ids": rendered}})  # type: ignore[arg-type]
    ti = FakeTaskInstance()
    with pytest.raises(PlugzConfigurationError, match=says):
        operator.execute({"ti": ti})  # type: ignore[arg-type]
    assert ti.pushed == {}
    assert fleet.sandbox.requests == []


# --- the example DAG, end to end -----------------------------------------------------------------


def run_fleet_audit(
    example_dags: Any,
    run_conf: dict[str, Any] | None = None,
    merge_options: dict[str, Any] | None = None,
    **audit_options: Any,
) -> Any:
    """Run plugz_fleet_audit with ``audit_options`` on its (mapped) audit_pins, given as its
    ``partial(...)`` arguments, and ``merge_options`` on merge_reports."""
    dag = example_dags.get_dag("plugz_fleet_audit")
    for name, value in audit_options.items():
        dag.get_task("audit_pins").partial_kwargs[name] = value
    for name, value in (merge_options or {}).items():
        setattr(dag.get_task("merge_reports"), name, value)
    return run_dag(dag, run_conf=run_conf)


@pytest.mark.usefixtures("alerts")  # the example DAG alerts through plugz_alerts
def test_fleet_audit_alerts_on_the_numbers_that_need_attention(
    example_dags: Any, fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_VAR_PLUGZ_FLEET_CONN_IDS", json.dumps([*fleet.conn_ids, UNDEFINED_CONN_ID]))
    report = run_fleet_audit(example_dags)

    assert report.state == "success"
    assert report.task_states == {
        "fleet_chunks": "success",
        "audit_pins": "success",
        "merge_reports": "success",
        "route": "success",
        "alert": "success",
        "all_good": "skipped",
    }
    audit = report.xcom_value("merge_reports", REPORT_XCOM_KEY)
    assert audit == report.xcom_value("merge_reports")
    # 31 numbers, fewer than chunk_size: one chunk, whose report the merge leaves as it is.
    assert audit == report.xcom_value("audit_pins", REPORT_XCOM_KEY)
    assert {c: outcome(r) for c, r in audit["results"].items()} == {
        **fleet.expected,
        UNDEFINED_CONN_ID: {"error_class": "AirflowNotFoundException"},
    }
    # audit_pins runs with check_status=True: each number's state beside its PIN.
    assert {c: state(r) for c, r in audit["results"].items()} == {**fleet.states, UNDEFINED_CONN_ID: None}
    assert [audit[name] for name in STATUS_COUNTS] == [22, 2, 1, 1, 5]
    alert = report.xcom_value("alert")
    not_connected = {c for c, s in fleet.states.items() if s not in (None, "connected")}
    attention = {*fleet.problems, UNDEFINED_CONN_ID, *not_connected}
    assert alert.startswith(f"{len(attention)} of {FLEET_SIZE + 1} WhatsApp number(s) need attention")
    named = {line.split(":")[0].removeprefix("- ") for line in alert.splitlines()[1:]}
    assert named == attention  # one line per number, whatever needs attention
    assert_no_secrets(json.dumps(report.xcom), secrets=tuple(fleet.secrets))


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param("chunk-0-claims-a-pin-for-chunk-1s-number", id="foreign-claim"),
        pytest.param("chunk-2-dies-before-it-reports", id="silent-chunk"),
        pytest.param("both", id="foreign-claim-and-silent-chunk"),
    ],
)
@pytest.mark.usefixtures("alerts")  # the example DAG alerts through plugz_alerts
def test_fleet_audit_in_chunks_trusts_each_chunk_only_about_its_own_numbers(
    example_dags: Any, fleet: Fleet, monkeypatch: pytest.MonkeyPatch, fault: str
) -> None:
    """Real mapped task instances (Airflow gives the merge their reports in map-index order,
    skipping one that pushed none). Chunk 0 = plugz_0..2 also claims a PIN for plugz_5, which
    chunk 1 owns and which has none; chunk 2 = plugz_6..8 dies before it reports. The merge
    never counts a number twice, takes plugz_5 from chunk 1, and reports what it cannot trust
    as not checked."""
    ids = fleet.conn_ids[:9]
    lie, die = fault != "chunk-2-dies-before-it-reports", fault != "chunk-0-claims-a-pin-for-chunk-1s-number"
    from_run = AuditReport.from_run.__func__  # type: ignore[attr-defined]

    def lying(cls: type[AuditReport], run: Any, **kwargs: Any) -> AuditReport:
        report: AuditReport = from_run(cls, run, **kwargs)
        if lie and "plugz_0" in report.results:
            up = StatusResult(connected=True, session=True, smartphone_connected=True)
            claimed = {**report.results, "plugz_5": CheckResult.pin(True, status=up)}
            return cls(claimed, status_checked=report.status_checked)
        return report

    execute = PlugzPinAuditOperator.execute

    def dying(self: PlugzPinAuditOperator, context: Any) -> Any:
        if die and "plugz_6" in conn_id_list(self.plugz_conn_ids):
            raise RuntimeError("the worker was lost")
        return execute(self, context)

    monkeypatch.setattr(AuditReport, "from_run", classmethod(lying))
    monkeypatch.setattr(PlugzPinAuditOperator, "execute", dying)
    report = run_fleet_audit(example_dags, run_conf={"plugz_conn_ids": ids, "chunk_size": 3})

    assert report.task_states["merge_reports"] == "success"
    merged = report.xcom_value("merge_reports")
    assert list(merged["results"]) == ids  # every number once, in chunk order
    assert merged["total"] == 9
    assert merged["results"]["plugz_5"]["has_code"] is False  # chunk 1's answer, not chunk 0's
    not_checked = {c for c, r in merged["results"].items() if r.get("error_class") == "PlugzAuditError"}
    if fault == "both":  # chunk 0's report spans two chunks and, one missing, cannot be placed
        assert not_checked == {*ids[:3], *ids[6:]}
    else:
        assert not_checked == (set(ids[6:]) if die else set())
        for conn_id in ids[:6]:
            assert outcome(merged["results"][conn_id]) == fleet.expected[conn_id]
    assert merged["without_pin"] == sum(1 for c in ids if c not in not_checked and not has_pin(int(c[6:])))


@pytest.mark.parametrize(
    ("source", "expected_ids"),
    [
        pytest.param("variable", ["plugz_0", "plugz_2"], id="from-variable"),
        pytest.param("param", ["plugz_4", "plugz_6"], id="param-wins-over-variable"),
        pytest.param("default", ["plugz_default"], id="neither-audits-plugz_default"),
    ],
)
def test_fleet_audit_reads_the_list_from_param_or_variable(
    example_dags: Any,
    healthy_fleet: Fleet,
    monkeypatch: pytest.MonkeyPatch,
    source: str,
    expected_ids: list[str],
) -> None:
    if source != "default":
        monkeypatch.setenv("AIRFLOW_VAR_PLUGZ_FLEET_CONN_IDS", json.dumps(["plugz_0", "plugz_2"]))
    monkeypatch.setenv("AIRFLOW_CONN_PLUGZ_DEFAULT", healthy_fleet.sandbox.connection_json(instance_id(8)))
    run_conf = {"plugz_conn_ids": ["plugz_4", "plugz_6"]} if source == "param" else None
    report = run_fleet_audit(example_dags, run_conf)

    assert report.state == "success"
    assert report.task_states["all_good"] == "success"
    assert report.task_states["alert"] == "skipped"
    assert list(report.xcom_value("merge_reports", REPORT_XCOM_KEY)["results"]) == expected_ids
    assert report.xcom_value("all_good").startswith(f"All {len(expected_ids)} WhatsApp number(s)")


def test_fleet_audit_with_fail_option_fails_but_keeps_the_report(
    example_dags: Any, fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_VAR_PLUGZ_FLEET_CONN_IDS", json.dumps(fleet.conn_ids))
    # On merge_reports, so that they apply to the whole fleet (the chunks never fail on findings).
    report = run_fleet_audit(example_dags, merge_options={"fail_on_error": True})

    assert report.state == "failed"
    assert report.task_states["audit_pins"] == "success"
    assert report.task_states["merge_reports"] == "failed"
    assert {report.task_states[t] for t in ("route", "alert", "all_good")} == {"upstream_failed"}
    error = report.errors["merge_reports"]
    assert isinstance(error, PlugzAuditError)
    for n, (_, error_class) in BROKEN.items():
        assert f"plugz_{n} ({error_class})" in str(error)
    assert report.xcom_value("merge_reports", REPORT_XCOM_KEY)["errors"] == len(BROKEN)


@pytest.mark.usefixtures("alerts")  # the example DAG alerts through plugz_alerts
def test_fleet_audit_keeps_its_report_under_execution_timeout_and_refuses_other_conn_types(
    example_dags: Any, fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run whose conf names a slow number and an ``http`` connection: Airflow does not kill the
    task (the audit ends 2 s before its 4 s execution_timeout), the slow number is timed out,
    the ``http`` one refused, and the alert names both."""
    slow = slow_down(fleet, (0,))
    posing = "posing_as_plugz"
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{posing.upper()}", fleet.sandbox.connection_json(instance_id(4), conn_type="http")
    )
    run_conf = {"plugz_conn_ids": [*slow, "plugz_1", "plugz_2", posing]}
    report = run_fleet_audit(example_dags, run_conf, execution_timeout=timedelta(seconds=4))

    assert report.state == "success"
    assert report.task_states["alert"] == "success"
    audit = report.xcom_value("merge_reports", REPORT_XCOM_KEY)
    assert {c: outcome(r) for c, r in audit["results"].items()} == {
        "plugz_0": {"error_class": "PlugzTimeoutError"},
        "plugz_1": {"has_code": False},
        "plugz_2": {"has_code": True},
        posing: {"error_class": "PlugzConfigurationError"},
    }
    assert audit["results"]["plugz_0"]["message"].startswith("not checked within the audit's 2 s deadline")
    assert (audit["errors"], audit["timed_out"]) == (2, 1)
    alert = report.xcom_value("alert")
    assert alert.startswith("3 of 4 WhatsApp number(s) need attention")
    assert not any(instance_token(4) in r.path for r in fleet.sandbox.requests)


@pytest.mark.parametrize(("echo", "shown"), PHONE_ECHOES)
@pytest.mark.parametrize(
    "column", [pytest.param("reason", id="status-reason"), pytest.param("message", id="error")]
)
def test_the_report_masks_a_phone_the_server_echoes(
    sandbox: PlugzSandbox, monkeypatch: pytest.MonkeyPatch, column: str, echo: str, shown: str
) -> None:
    """In the report's columns (XCom) and its log lines, whether the server said it as state
    (``/status``'s reason) or as an error."""
    recorded = RecordingLog()
    monkeypatch.setattr(PlugzPinAuditOperator, "log", property(lambda self: recorded))
    if column == "reason":  # the PIN is read first, then the status
        sandbox.inject(Fault.status(200, body={"hasCode": True}))
        sandbox.inject(
            Fault.status(200, body={"connected": False, "smartphoneConnected": False, "error": echo})
        )
    else:
        sandbox.inject(Fault.status(400, body={"error": echo}))
    report, ti = run_audit(["plugz_default"], check_status=True)
    entry = report["results"]["plugz_default"]
    assert shown in (entry["status"]["reason"] if column == "reason" else entry["message"])
    assert sandbox.requests[0].instance_id == INSTANCE_ID
    assert_no_phone(json.dumps(report), json.dumps(ti.pushed), *recorded.lines)


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"check_status": True}, id="check-status"),
        pytest.param({"checks": ["connection"]}, id="checks-list"),
        pytest.param({"checks": "connection"}, id="checks-name"),
        pytest.param({"checks": ("pin", "connection"), "check_status": True}, id="both-and-the-pin"),
    ],
)
def test_checks_names_the_facts_check_status_is_the_connection(fleet: Fleet, kwargs: dict[str, Any]) -> None:
    """``checks=["connection"]`` is ``check_status=True``: the same report, to the byte, and the
    fact's fail option works with either."""
    expected, _ = run_audit(["plugz_0", "plugz_1", "plugz_6"], check_status=True)
    report, _ = run_audit(["plugz_0", "plugz_1", "plugz_6"], **kwargs)
    assert report == expected
    with pytest.raises(PlugzAuditError, match="1 WhatsApp number\\(s\\) are not connected: plugz_6"):
        run_audit(["plugz_0", "plugz_1", "plugz_6"], fail_if_disconnected=True, **kwargs)


def test_the_fleet_audit_is_the_pin_audit_under_a_name_that_says_so(fleet: Fleet) -> None:
    ti = FakeTaskInstance()
    ids = ["plugz_0", "plugz_1", "plugz_6"]
    operator = PlugzFleetAuditOperator(task_id="audit", plugz_conn_ids=ids, checks=["connection"])
    assert isinstance(operator, PlugzPinAuditOperator)
    assert operator.execute({"ti": ti}) == run_audit(ids, check_status=True)[0]  # type: ignore[arg-type]


def test_a_fail_option_set_after_construction_applies(fleet: Fleet) -> None:
    """As a DAG author (or a test) may: each fact's option is an attribute the task reads when it runs."""
    operator = PlugzPinAuditOperator(task_id="audit", plugz_conn_ids=["plugz_0", "plugz_1"])
    assert (operator.fail_if_missing_pin, operator.fail_on) == (False, ())
    operator.fail_if_missing_pin = True
    with pytest.raises(PlugzAuditError, match="have NO PIN: plugz_1"):
        operator.execute({"ti": FakeTaskInstance()})  # type: ignore[arg-type]


# --- a fact added by declaration: the queue -----------------------------------------------------

QUEUED_PHONE, QUEUED_TEXT = "5511987654321", "Paciente Joao S. HIV+ leito 12"


def test_the_queue_is_audited_by_its_declaration_alone(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> None:
    """``checks=["queue"]``: a column per entry, its counts, its fail option, its log words - none
    of it written for the queue; and a queued message's phone and text are counted, never shown."""
    for _ in range(2):
        PlugzHook("plugz_6").send_text(QUEUED_PHONE, QUEUED_TEXT)  # plugz_6 is disconnected: it queues
    ids = ["plugz_0", "plugz_1", "plugz_3", "plugz_6"]
    recorded = RecordingLog()
    monkeypatch.setattr(PlugzPinAuditOperator, "log", property(lambda self: recorded))
    report, _ = run_audit(ids, checks=["queue"])
    logged = "\n".join(recorded.lines)
    assert [report[name] for name in ("queue_empty", "with_queued_messages", "queue_errors")] == [2, 1, 1]
    assert "status" not in report["results"]["plugz_0"]  # only the facts asked for
    assert report["results"]["plugz_0"]["queue"] == {"state": "empty", "count": 0, "oldest_created": None}
    assert report["results"]["plugz_3"]["queue"] is None  # unknown instance: not read
    queued = report["results"]["plugz_6"]["queue"]
    assert (queued["state"], queued["count"]) == ("queued", 2)
    assert AuditReport.from_xcom(report).to_xcom() == report  # and it reads back from XCom
    with pytest.raises(
        PlugzAuditError, match=r"1 WhatsApp number\(s\) have messages waiting in their queue: plugz_6\."
    ):
        run_audit(ids, checks=["queue", "connection"], fail_if_queued=True)
    for text in (json.dumps(report), logged):
        assert QUEUED_PHONE[-8:] not in text
        assert "HIV" not in text
    assert "Queue: 2 queue empty, 1 WITH QUEUED MESSAGES, 1 could not be read." in logged
    assert "plugz_6  PIN set; 2 message(s) QUEUED since " in logged


def test_the_queues_fail_option_needs_the_queue_checked() -> None:
    with pytest.raises(ValueError, match=r"fail_if_queued=True needs checks=\['queue'\]"):
        PlugzPinAuditOperator(task_id="audit", plugz_conn_ids=["a"], fail_if_queued=True)


def test_the_merge_fails_on_the_queue_of_any_chunk(fleet: Fleet) -> None:
    PlugzHook("plugz_6").send_text(QUEUED_PHONE, QUEUED_TEXT)
    chunks = [["plugz_0", "plugz_1"], ["plugz_6"]]
    reports = [run_audit(chunk, checks=["queue"])[0] for chunk in chunks]
    merge = PlugzAuditMergeOperator(task_id="merge", reports=reports, chunks=chunks, fail_if_queued=True)
    ti = FakeTaskInstance()
    with pytest.raises(PlugzAuditError, match="have messages waiting in their queue: plugz_6"):
        merge.execute({"ti": ti})  # type: ignore[arg-type]
    assert ti.pushed[REPORT_XCOM_KEY]["with_queued_messages"] == 1
    without = [run_audit(chunk)[0] for chunk in chunks]
    unchecked = PlugzAuditMergeOperator(task_id="merge", reports=without, chunks=chunks, fail_if_queued=True)
    with pytest.raises(
        PlugzAuditError, match=r"fail_if_queued=True needs the chunks' queue.*checks=\['queue'\]"
    ):
        unchecked.execute({"ti": FakeTaskInstance()})  # type: ignore[arg-type]
