"""The fleet audit operator: ``PlugzPinAuditOperator`` against one sandbox holding a few dozen
instances (its report, typed and as XCom, its deadline, its refusal of non-Plugz connections,
its arguments), and the ``plugz_fleet_audit`` example DAG end to end with ``dag.test()``.

How the checks fan out (workers, shared clients, cancellation) is tested in
tests/hooks/test_fleet.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import FrozenInstanceError, dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_plugz import exceptions
from airflow_provider_plugz.exceptions import PlugzAuditError, PlugzNotFoundError, PlugzTimeoutError
from airflow_provider_plugz.hooks.fleet import FleetRun
from airflow_provider_plugz.hooks.plugz import PinStatus, PlugzHook
from airflow_provider_plugz.operators.audit import (
    REPORT_XCOM_KEY,
    AuditReport,
    CheckResult,
    PlugzPinAuditOperator,
    audit_deadline,
    conn_id_list,
)
from airflow_provider_plugz.testing import Fault
from airflow_provider_plugz.testing.dag_run import run_dag
from tests.conftest import CLIENT_TOKEN, ROOT, FakeTaskInstance, assert_no_secrets

if TYPE_CHECKING:
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
    """A sandbox with one instance (and one ``AIRFLOW_CONN_PLUGZ_<n>``) per number."""

    sandbox: PlugzSandbox
    conn_ids: list[str]
    expected: dict[str, dict[str, Any]] = field(default_factory=dict)
    secrets: list[str] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        return [c for c, e in self.expected.items() if e.get("has_code") is not True]


def build_fleet(sandbox: PlugzSandbox, monkeypatch: pytest.MonkeyPatch, *, broken: bool) -> Fleet:
    fleet = Fleet(sandbox, [], secrets=[CLIENT_TOKEN, WRONG_CLIENT_TOKEN])
    for n in range(FLEET_SIZE):
        conn_id = f"plugz_{n}"
        how, error_class = BROKEN.get(n, (None, None)) if broken else (None, None)
        sandbox.add_instance(instance_id(n), instance_token(n), has_code=has_pin(n), expired=how == "expired")
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
        fleet.secrets.append(instance_token(n))
    return fleet


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


def run_audit(conn_ids: Any, **kwargs: Any) -> tuple[dict[str, Any], FakeTaskInstance]:
    ti = FakeTaskInstance()
    operator = PlugzPinAuditOperator(task_id="audit", plugz_conn_ids=conn_ids, **kwargs)
    return operator.execute({"ti": ti}), ti  # type: ignore[arg-type]


def outcome(result: dict[str, Any]) -> dict[str, Any]:
    """A report entry without its message, to compare with ``Fleet.expected``."""
    return {k: v for k, v in result.items() if k != "message"}


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


class RecordingLog:
    """Stands in for an operator's ``log``: keeps every formatted line."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def _record(self, message: str, *args: Any, **kwargs: Any) -> None:
        self.lines.append(message % args if args else message)

    info = warning = error = debug = _record


def test_report_log_and_failure_hold_no_secret(
    fleet: Fleet, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    recorded = RecordingLog()
    monkeypatch.setattr(PlugzPinAuditOperator, "log", property(lambda self: recorded))
    ti = FakeTaskInstance()
    operator = PlugzPinAuditOperator(
        task_id="audit", plugz_conn_ids=fleet.conn_ids, fail_if_missing_pin=True, fail_on_error=True
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
    real = PlugzHook.aget_pin_status

    async def aget_pin_status(self: PlugzHook, **kwargs: Any) -> PinStatus:
        if self.plugz_conn_id == "plugz_1":
            _fails_with_the_url()
        return await real(self, **kwargs)

    monkeypatch.setattr(PlugzHook, "aget_pin_status", aget_pin_status)
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


# --- the deadline --------------------------------------------------------------------------------


def slow_down(fleet: Fleet, indexes: tuple[int, ...] = SLOW) -> list[str]:
    """Make these instances answer only after a minute (past any deadline below)."""
    for n in indexes:
        fleet.sandbox.inject(Fault.slow(60), instance_id=instance_id(n))
    return [f"plugz_{n}" for n in indexes]


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
    report, ti = run_audit(conn_ids, audit_timeout=1, max_concurrency=max_concurrency)
    elapsed = time.monotonic() - started

    assert 1 <= elapsed < 10
    results = report["results"]
    timed_out = {c for c, r in results.items() if r.get("error_class") == "PlugzTimeoutError"}
    assert report["timed_out"] == len(timed_out) == len(slow) + never_started
    assert report["errors"] == len({c for c, r in results.items() if "error_class" in r})
    for conn_id in slow:
        assert results[conn_id]["message"].startswith(
            "not checked within the audit's 1 s deadline; its check was still running"
        )
    never = [c for c in timed_out if "never started" in results[c]["message"]]
    assert len(never) == never_started
    finished = {c: outcome(r) for c, r in results.items() if c not in timed_out}
    assert finished == {c: e for c, e in fleet.expected.items() if c not in timed_out}
    assert ti.pushed == {REPORT_XCOM_KEY: report}


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
        # One HTTP attempt's own timeout (a PlugzTimeoutError subclass), not the audit's deadline.
        assert issubclass(getattr(exceptions, result["error_class"]), PlugzTimeoutError)
        assert "did not complete within its 0.3 s deadline" in result["message"]
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
        pytest.param(["a", ""], "non-empty strings", id="empty-id"),
        pytest.param(["a", " "], "non-empty strings", id="blank-id"),
        pytest.param(["a", 1], "non-empty strings", id="int-id"),
        pytest.param(None, "must be a list", id="none"),
        pytest.param({"a": 1}, "must be a list", id="dict"),
        pytest.param('{"a": 1}', "must be a list", id="json-object-text"),
        pytest.param("[a, b", "neither JSON nor", id="broken-list-text"),
    ],
)
def test_conn_id_list_refuses(value: Any, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        conn_id_list(value)


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"plugz_conn_ids": []}, id="empty-list"),
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
    ],
)
def test_bad_arguments_fail_when_the_dag_is_parsed(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"plugz_conn_ids|max_concurrency|audit_timeout must"):
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


def test_importing_the_operator_loads_no_hook_or_http_client() -> None:
    """DAG files import it on every parse: nothing beyond what Airflow's operator base loads."""
    heavy = [
        "airflow_provider_plugz.hooks.plugz",
        "airflow_provider_plugz.hooks.fleet",
        "asyncio",
        "httpx",
        "requests",
        "airflow_provider_plugz.testing.sandbox",
    ]
    code = (
        "import sys, json; import airflow_provider_plugz._compat; before = set(sys.modules);"
        "import airflow_provider_plugz.operators.audit;"
        f"print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules and m not in before)))"
    )
    env = dict(os.environ)
    if sys.pycache_prefix:  # reuse the bytecode cache conftest set up (3x faster than recompiling)
        env["PYTHONPYCACHEPREFIX"] = sys.pycache_prefix
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT, env=env
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


# --- the example DAG, end to end -----------------------------------------------------------------


def run_fleet_audit(example_dags: Any, run_conf: dict[str, Any] | None = None, **audit_options: Any) -> Any:
    dag = example_dags.get_dag("plugz_fleet_audit")
    for name, value in audit_options.items():
        setattr(dag.get_task("audit_pins"), name, value)
    return run_dag(dag, run_conf=run_conf)


def test_fleet_audit_alerts_on_the_numbers_that_need_attention(
    example_dags: Any, fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_VAR_PLUGZ_FLEET_CONN_IDS", json.dumps([*fleet.conn_ids, UNDEFINED_CONN_ID]))
    report = run_fleet_audit(example_dags)

    assert report.state == "success"
    assert report.task_states == {
        "audit_pins": "success",
        "route": "success",
        "alert": "success",
        "all_good": "skipped",
    }
    audit = report.xcom_value("audit_pins", REPORT_XCOM_KEY)
    assert audit == report.xcom_value("audit_pins")
    assert {c: outcome(r) for c, r in audit["results"].items()} == {
        **fleet.expected,
        UNDEFINED_CONN_ID: {"error_class": "AirflowNotFoundException"},
    }
    alert = report.xcom_value("alert")
    assert alert.startswith(f"13 of {FLEET_SIZE + 1} WhatsApp number(s) need attention")
    named = {line.split(":")[0].removeprefix("- ") for line in alert.splitlines()[1:]}
    assert named == {*fleet.problems, UNDEFINED_CONN_ID}
    assert_no_secrets(json.dumps(report.xcom), secrets=tuple(fleet.secrets))


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
    assert list(report.xcom_value("audit_pins", REPORT_XCOM_KEY)["results"]) == expected_ids
    assert report.xcom_value("all_good").startswith(f"All {len(expected_ids)} WhatsApp number(s)")


def test_fleet_audit_with_fail_option_fails_but_keeps_the_report(
    example_dags: Any, fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_VAR_PLUGZ_FLEET_CONN_IDS", json.dumps(fleet.conn_ids))
    report = run_fleet_audit(example_dags, fail_on_error=True)

    assert report.state == "failed"
    assert report.task_states["audit_pins"] == "failed"
    assert {report.task_states[t] for t in ("route", "alert", "all_good")} == {"upstream_failed"}
    error = report.errors["audit_pins"]
    assert isinstance(error, PlugzAuditError)
    for n, (_, error_class) in BROKEN.items():
        assert f"plugz_{n} ({error_class})" in str(error)
    assert report.xcom_value("audit_pins", REPORT_XCOM_KEY)["errors"] == len(BROKEN)


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
    audit = report.xcom_value("audit_pins", REPORT_XCOM_KEY)
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
