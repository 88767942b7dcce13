"""Large fleets audited in chunks: ``audit_chunks`` (the split, within ``[core] max_map_length``),
reports read back from XCom (``AuditReport.from_xcom``), merged (``AuditReport.merge``) and the
merge step (``PlugzAuditMergeOperator``): one report of the same shape as one task's, the
``fail_*`` options applied to the whole fleet, a chunk that did not report never dropped.

Against the sandbox fleet of test_audit.py: the same numbers audited in one task and in chunks
must give the same report."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_plugz.exceptions import PlugzAuditError
from airflow_provider_plugz.operators.audit import (
    NOT_REPORTED_ERROR_CLASS,
    REPORT_XCOM_KEY,
    STATUS_COUNTS,
    AuditReport,
    CheckResult,
    PlugzAuditMergeOperator,
    StatusResult,
    audit_chunks,
)
from tests.conftest import FakeTaskInstance, assert_no_secrets
from tests.operators.test_audit import (
    FLEET_SIZE,
    Fleet,
    RecordingLog,
    build_fleet,
    run_audit,
    slow_down,
)

if TYPE_CHECKING:
    from airflow_provider_plugz.testing import PlugzSandbox


@pytest.fixture
def fleet(sandbox: PlugzSandbox, monkeypatch: pytest.MonkeyPatch) -> Fleet:
    """30 numbers: some without PIN, some broken (404, 503, bad Client-Token, expired), some down."""
    return build_fleet(sandbox, monkeypatch, broken=True)


def audit_in_chunks(conn_ids: list[str], chunk_size: int, **options: Any) -> tuple[list[Any], list[Any]]:
    """``(chunks, chunk reports)``: each chunk audited by its own operator, as mapped tasks are."""
    chunks = audit_chunks(conn_ids, chunk_size)
    reports = [run_audit(chunk, **options)[1].pushed[REPORT_XCOM_KEY] for chunk in chunks]
    return chunks, reports


def merge(reports: Any, chunks: Any = None, **options: Any) -> tuple[dict[str, Any], FakeTaskInstance]:
    ti = FakeTaskInstance()
    operator = PlugzAuditMergeOperator(task_id="merge", reports=reports, chunks=chunks, **options)
    return operator.execute({"ti": ti}), ti  # type: ignore[arg-type]


# --------------------------------------------------------------------------- the split


@pytest.mark.parametrize(
    ("conn_ids", "chunk_size", "max_map_length", "sizes"),
    [
        pytest.param([f"c{n}" for n in range(500)], 500, 1024, [500], id="up-to-chunk-size-one-task"),
        pytest.param([f"c{n}" for n in range(501)], 500, 1024, [251, 250], id="one-more-two-chunks"),
        pytest.param([f"c{n}" for n in range(10)], 3, 2, [5, 5], id="capped-at-max-map-length"),
        pytest.param("c1, c2 c3,c1", 2, 1024, [2, 1], id="ids-as-text-duplicates-dropped"),
        pytest.param('["c1", "c2", "c3"]', 1, 1024, [1, 1, 1], id="ids-as-json-text"),
    ],
)
def test_audit_chunks_splits_validated_ids_within_max_map_length(
    conn_ids: Any, chunk_size: int, max_map_length: int, sizes: list[int]
) -> None:
    chunks = audit_chunks(conn_ids, chunk_size, max_map_length=max_map_length)
    assert [len(chunk) for chunk in chunks] == sizes
    assert len({c for chunk in chunks for c in chunk}) == sum(sizes)


def test_audit_chunks_reads_max_map_length_from_airflow_config_and_warns_when_chunks_grow(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("AIRFLOW__CORE__MAX_MAP_LENGTH", "4")
    with caplog.at_level(logging.WARNING, logger="airflow_provider_plugz.operators.audit"):
        chunks = audit_chunks([f"c{n}" for n in range(100)], 10)
    assert [len(chunk) for chunk in chunks] == [25] * 4
    assert "more than [core] max_map_length=4" in caplog.text
    assert "4 chunks of up to 25" in caplog.text


@pytest.mark.parametrize(
    ("conn_ids", "chunk_size", "says"),
    [
        pytest.param([], 10, "plugz_conn_ids is empty", id="no-ids"),
        pytest.param(["a", ""], 10, "non-empty strings", id="empty-id"),
        pytest.param(["a"], 0, "chunk_size must be an integer >= 1", id="chunk-size-zero"),
        pytest.param(["a"], "10", "chunk_size must be an integer >= 1", id="chunk-size-text"),
    ],
)
def test_audit_chunks_refuses_bad_arguments(conn_ids: Any, chunk_size: Any, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        audit_chunks(conn_ids, chunk_size, max_map_length=1024)


# --------------------------------------------------------------------------- read back, merged


@pytest.mark.parametrize(
    "check_status", [pytest.param(False, id="pin-only"), pytest.param(True, id="status")]
)
@pytest.mark.parametrize("chunk_size", [pytest.param(7, id="chunks-of-7"), pytest.param(1, id="chunks-of-1")])
def test_a_fleet_audited_in_chunks_and_merged_is_the_report_of_one_task(
    fleet: Fleet, check_status: bool, chunk_size: int
) -> None:
    whole, _ = run_audit(fleet.conn_ids, check_status=check_status)
    chunks, reports = audit_in_chunks(fleet.conn_ids, chunk_size, check_status=check_status)
    assert len(chunks) == -(-FLEET_SIZE // chunk_size)
    merged, ti = merge(reports, chunks)
    assert merged == whole  # counts, entries, their order and texts
    assert list(merged) == list(whole)  # the same keys in the same order: the same shape
    assert ti.pushed[REPORT_XCOM_KEY] == merged
    assert_no_secrets(json.dumps(merged), secrets=tuple(fleet.secrets))


def test_timed_out_entries_survive_the_round_trip_through_xcom() -> None:
    timed_out = CheckResult.not_checked(2.0, in_flight=True, max_concurrency=4)
    one_attempt = CheckResult(error_class="PlugzTimeoutError", message="Plugz ... timed out. Check ...")
    report = AuditReport({"a": timed_out, "b": one_attempt, "c": CheckResult.pin(True)})
    back = AuditReport.from_xcom(report.to_xcom())
    assert back.results == report.results
    assert (back.timed_out, back.errors) == (1, 2)
    assert back.to_xcom() == report.to_xcom()


def test_statuses_survive_the_round_trip_through_xcom() -> None:
    results = {
        "up": CheckResult.pin(
            True, status=StatusResult(connected=True, session=True, smartphone_connected=True)
        ),
        "lost": CheckResult.pin(
            False, status=StatusResult(connected=False, session=False, smartphone_connected=True, reason="x")
        ),
        "unread": CheckResult.pin(True, status=StatusResult(error_class="PlugzServerError", message="m")),
        "failed": CheckResult(error_class="PlugzNotFoundError", message="m"),
    }
    report = AuditReport(results, status_checked=True)
    back = AuditReport.from_xcom(report.to_xcom())
    assert back.results == report.results
    assert [getattr(back, name) for name in STATUS_COUNTS] == [1, 0, 1, 0, 2]


GOOD = AuditReport({"a": CheckResult.pin(True), "b": CheckResult.pin(False)}).to_xcom()


@pytest.mark.parametrize(
    ("xcom", "says"),
    [
        pytest.param(None, "not a Plugz PIN audit report", id="none"),
        pytest.param([GOOD], "not a Plugz PIN audit report", id="a-list"),
        pytest.param({"total": 0}, "not a Plugz PIN audit report", id="no-results"),
        pytest.param({**GOOD, "with_pin": 2}, "counts do not match its entries: with_pin", id="wrong-count"),
        pytest.param(
            {**GOOD, "results": {"a": {"has_code": True, "token": "x"}, "b": {"has_code": False}}},
            "the entry of 'a': .* has the keys",
            id="unknown-key",
        ),
        pytest.param(
            {**GOOD, "results": {"a": {"has_code": "yes"}, "b": {"has_code": False}}},
            "has_code must be a bool",
            id="has-code-not-bool",
        ),
        pytest.param(
            {
                **AuditReport(
                    {"a": CheckResult.pin(True, status=StatusResult(True, True, True))}, status_checked=True
                ).to_xcom(),
                "results": {
                    "a": {
                        "has_code": True,
                        "status": {
                            "state": "disconnected",
                            "connected": True,
                            "session": True,
                            "smartphone_connected": True,
                            "reason": None,
                        },
                    }
                },
            },
            "state 'disconnected' does not match its fields",
            id="state-contradicts-fields",
        ),
    ],
)
def test_from_xcom_refuses_what_is_not_a_report(xcom: Any, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        AuditReport.from_xcom(xcom)


def test_merge_without_chunks_keeps_the_order_of_the_reports_and_the_first_of_a_duplicate() -> None:
    first = AuditReport({"a": CheckResult.pin(True), "b": CheckResult.pin(False)})
    second = AuditReport({"b": CheckResult.pin(True), "c": CheckResult.pin(True)})
    merged = AuditReport.merge([first, second])
    assert list(merged.results) == ["a", "b", "c"]
    assert merged.results["b"].has_code is False
    assert (merged.total, merged.with_pin, merged.without_pin) == (3, 2, 1)


def test_merge_refuses_chunks_that_disagree_on_check_status() -> None:
    with_status = AuditReport({"a": CheckResult.pin(True)}, status_checked=True)
    without = AuditReport({"b": CheckResult.pin(True)})
    with pytest.raises(ValueError, match="disagree on check_status"):
        AuditReport.merge([with_status, without])


# --------------------------------------------------------------------------- the merge step


@pytest.mark.parametrize(
    "check_status", [pytest.param(False, id="pin-only"), pytest.param(True, id="status")]
)
def test_the_numbers_of_a_chunk_that_did_not_report_are_reported_not_checked(
    fleet: Fleet, check_status: bool
) -> None:
    chunks, reports = audit_in_chunks(fleet.conn_ids, 7, check_status=check_status)
    lost = chunks[2]
    kept = [r for index, r in enumerate(reports) if index != 2]
    merged, _ = merge(kept, chunks)
    assert list(merged["results"]) == fleet.conn_ids  # in chunk order, none dropped
    whole, _ = run_audit(fleet.conn_ids, check_status=check_status)
    for conn_id in lost:
        entry = merged["results"][conn_id]
        assert entry["error_class"] == NOT_REPORTED_ERROR_CLASS
        assert "'audit_pins', map index 2" in entry["message"]
        assert entry.get("status", None) is None
    lost_errors = sum(1 for c in lost if "has_code" in whole["results"][c])
    assert merged["errors"] == whole["errors"] + lost_errors
    assert merged["total"] == FLEET_SIZE
    if check_status:
        assert sum(merged[name] for name in STATUS_COUNTS) == FLEET_SIZE
    with pytest.raises(PlugzAuditError) as caught:
        merge(kept, chunks, fail_on_error=True)
    assert f"{lost[0]} ({NOT_REPORTED_ERROR_CLASS})" in str(caught.value)
    # Without the chunks the merge cannot know them: they are missing, not reported.
    assert merge(kept)[0]["total"] == FLEET_SIZE - len(lost)


@pytest.mark.parametrize(
    ("options", "named"),
    [
        pytest.param(
            {"fail_if_missing_pin": True}, ["have NO PIN: plugz_1, plugz_5", "plugz_29"], id="no-pin"
        ),
        pytest.param(
            {"fail_if_disconnected": True},
            ["4 WhatsApp number(s) are not connected", "plugz_6 (disconnected)", "plugz_18 (disconnected)"],
            id="disconnected",
        ),
        pytest.param(
            {"fail_on_error": True},
            ["4 connection(s) could not be checked", "plugz_3 (PlugzNotFoundError)", "plugz_15 ("],
            id="errors",
        ),
    ],
)
def test_fail_options_on_the_merge_apply_to_the_whole_fleet(
    fleet: Fleet, options: dict[str, bool], named: list[str]
) -> None:
    """The chunks succeed (no fail_* on them); a finding in any chunk fails the merge, after
    the merged report is pushed. The numbers named come from different chunks."""
    chunks, reports = audit_in_chunks(fleet.conn_ids, 7, check_status=True)
    ti = FakeTaskInstance()
    operator = PlugzAuditMergeOperator(task_id="merge", reports=reports, chunks=chunks, **options)
    with pytest.raises(PlugzAuditError) as caught:
        operator.execute({"ti": ti})  # type: ignore[arg-type]
    message = str(caught.value)
    assert message.startswith(f"Plugz PIN audit of {FLEET_SIZE} connection(s) failed: ")
    for text in named:
        assert text in message
    assert ti.pushed[REPORT_XCOM_KEY]["total"] == FLEET_SIZE
    assert_no_secrets(message, json.dumps(ti.pushed), secrets=tuple(fleet.secrets))


def test_a_merge_without_findings_succeeds_and_the_merge_runs_whatever_the_chunks_did(fleet: Fleet) -> None:
    chunks, reports = audit_in_chunks(fleet.conn_ids[:2], 1)  # plugz_0 has a PIN, plugz_1 has none
    merged, _ = merge(reports, chunks, fail_on_error=True)
    assert (merged["total"], merged["without_pin"]) == (2, 1)
    assert str(PlugzAuditMergeOperator(task_id="m", reports=[]).trigger_rule) in (
        "all_done",
        "TriggerRule.ALL_DONE",
    )


@pytest.mark.parametrize(
    ("reports", "chunks", "says"),
    [
        pytest.param(
            [{"results": []}], None, "chunk report 0 is not a PlugzPinAuditOperator report", id="bad"
        ),
        pytest.param([GOOD], "a,b", "chunks must be the list of id lists", id="chunks-as-text"),
        pytest.param([GOOD], [[1, 2]], "chunks must be lists of connection ids", id="chunks-not-ids"),
        pytest.param(
            [GOOD],
            None,
            "fail_if_disconnected=True needs the chunks' connection status",
            id="fail-if-disconnected-without-status",
        ),
    ],
)
def test_the_merge_refuses_what_it_cannot_merge_saying_why(reports: Any, chunks: Any, says: str) -> None:
    with pytest.raises(PlugzAuditError, match=says):
        merge(reports, chunks, fail_if_disconnected=True)


def test_the_merge_skips_chunks_that_pushed_nothing() -> None:
    merged, _ = merge([GOOD, None], [["a", "b"], ["c"]])
    assert merged["total"] == 3
    assert merged["results"]["c"]["error_class"] == NOT_REPORTED_ERROR_CLASS


def test_the_merge_logs_one_summary_of_the_whole_fleet(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> None:
    chunks, reports = audit_in_chunks(fleet.conn_ids, 7, check_status=True)
    recorded = RecordingLog()
    monkeypatch.setattr(PlugzAuditMergeOperator, "log", property(lambda self: recorded))
    merge(reports[:-1], chunks)
    text = "\n".join(recorded.lines)
    assert (
        f"Plugz PIN audit of {FLEET_SIZE} connection(s), merged from {len(chunks) - 1} chunk report(s): "
        in text
    )
    assert f"{len(chunks[-1])} number(s) were not reported by their chunk task" in text
    assert "Connection status: " in text
    assert "Plugz PIN audit results (problems first):" in text
    assert_no_secrets(text, secrets=tuple(fleet.secrets))


def test_a_merged_report_of_ten_thousand_numbers_stays_a_reasonable_xcom() -> None:
    """10,000 healthy numbers with their status: the per-number list is what costs; keep it small."""
    status = StatusResult(connected=True, session=True, smartphone_connected=True)
    chunks = audit_chunks([f"plugz_number_{n:05d}" for n in range(10_000)], 1000, max_map_length=1024)
    reports = [
        AuditReport({c: CheckResult.pin(True, status=status) for c in chunk}, status_checked=True).to_xcom()
        for chunk in chunks
    ]
    merged, _ = merge(reports, chunks)
    size = len(json.dumps(merged, separators=(",", ":")))
    assert merged["total"] == merged["connected"] == 10_000
    assert size < 2_000_000, size  # ~144 bytes a number


def test_a_chunk_past_its_deadline_is_merged_with_its_timed_out_count(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:

    slow = slow_down(fleet, (0,))
    chunks = audit_chunks([*slow, *fleet.conn_ids[1:4]], 2)
    reports = [run_audit(chunk, audit_timeout=timedelta(seconds=1))[0] for chunk in chunks]
    merged, _ = merge(reports, chunks)
    assert (merged["timed_out"], merged["total"]) == (1, 4)
    assert merged["results"]["plugz_0"]["message"].startswith("not checked within the audit's 1 s deadline")
