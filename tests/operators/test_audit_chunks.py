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

from airflow_provider_plugz.exceptions import PlugzAuditError, PlugzConfigurationError
from airflow_provider_plugz.operators.audit import (
    MAX_TEXT_LENGTH,
    NOT_REPORTED_ERROR_CLASS,
    REPORT_XCOM_KEY,
    STATUS_COUNTS,
    AuditReport,
    CheckResult,
    PlugzAuditMergeOperator,
    StatusResult,
    audit_chunks,
    merge_chunk_reports,
)
from tests.conftest import FakeTaskInstance, assert_no_secrets
from tests.support.audit import (
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
    """Run the merge step on ``reports`` and ``chunks`` as rendered from XCom (set after
    construction, as a running task's templating does: Airflow walks the arguments of a task
    being defined for XCom references, recursively)."""
    ti = FakeTaskInstance()
    operator = PlugzAuditMergeOperator(task_id="merge", reports=[], **options).prepare_for_execution()
    operator.reports, operator.chunks = reports, chunks
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
        pytest.param(["a"], True, "chunk_size must be an integer >= 1", id="chunk-size-bool"),
        pytest.param(["a"], 2.0, "chunk_size must be an integer >= 1", id="chunk-size-float"),
        pytest.param("[" * 100_000, 10, "flat list", id="deep-brackets-text"),
        pytest.param(["a", ["b"]], 10, "item 2 is a list", id="nested-list"),
    ],
)
def test_audit_chunks_refuses_bad_arguments(conn_ids: Any, chunk_size: Any, says: str) -> None:
    with pytest.raises(PlugzConfigurationError, match=says):
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


PHONE = "5511999999999"
GOOD = AuditReport({"a": CheckResult.pin(True), "b": CheckResult.pin(False)}).to_xcom()
UP = {"state": "connected", "connected": True, "session": True, "smartphone_connected": True, "reason": None}
WITH_STATUS = AuditReport(
    {
        "a": CheckResult.pin(True, status=StatusResult(True, True, True)),
        "b": CheckResult(error_class="PlugzNotFoundError", message="m"),
    },
    status_checked=True,
).to_xcom()


def nested(depth: int) -> list[Any]:
    """A list ``depth`` lists deep, built without recursion."""
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


def entry(xcom: dict[str, Any], conn_id: str, value: Any) -> dict[str, Any]:
    """``xcom`` with the entry of ``conn_id`` replaced (its counts untouched)."""
    return {**xcom, "results": {**xcom["results"], conn_id: value}}


def status(value: dict[str, Any]) -> dict[str, Any]:
    """WITH_STATUS with the status of ``a`` replaced."""
    return entry(WITH_STATUS, "a", {"has_code": True, "status": value})


@pytest.mark.parametrize(
    ("xcom", "says"),
    [
        pytest.param(None, "not a Plugz PIN audit report: .* got null", id="none"),
        pytest.param([GOOD], "not a Plugz PIN audit report: .* got a list", id="a-list"),
        pytest.param("{}", "not a Plugz PIN audit report", id="a-string"),
        pytest.param({"total": 0}, "not a Plugz PIN audit report", id="no-results"),
        pytest.param({**GOOD, "results": []}, "not a Plugz PIN audit report", id="results-a-list"),
        # the report's own keys and counts
        pytest.param({**GOOD, "token": "x"}, r"the report has unexpected keys \('token'\)", id="extra-key"),
        pytest.param({**GOOD, PHONE: 1}, r"unexpected keys \(1 other\(s\)\)", id="extra-key-not-named"),
        pytest.param({**GOOD, "connected": 0}, "the report lacks 'disconnected'", id="some-status-counts"),
        pytest.param(
            {k: v for k, v in GOOD.items() if k != "timed_out"}, "lacks 'timed_out'", id="count-missing"
        ),
        pytest.param({**GOOD, "with_pin": 2}, "counts do not match its entries: with_pin", id="wrong-count"),
        pytest.param(
            {**GOOD, "with_pin": True}, "count with_pin must be an integer, not a bool", id="count-true"
        ),
        pytest.param(
            {**GOOD, "with_pin": 1.0}, "count with_pin must be an integer, not a float", id="count-float"
        ),
        pytest.param({**GOOD, "total": "2"}, "count total must be an integer, not a string", id="count-text"),
        pytest.param({**GOOD, "errors": None}, "count errors must be an integer, not null", id="count-null"),
        pytest.param(
            {**WITH_STATUS, "connected": True}, "count connected must be an integer", id="status-count-true"
        ),
        # entries: their ids
        pytest.param(
            {**GOOD, "results": {1: {"has_code": True}, "b": {"has_code": False}}},
            "an entry under an int, which is not a connection id",
            id="id-not-a-string",
        ),
        pytest.param(entry(GOOD, "a b", {"has_code": True}), "not a connection id", id="id-with-space"),
        pytest.param(entry(GOOD, "a" * 251, {"has_code": True}), "not a connection id", id="id-too-long"),
        pytest.param(entry(GOOD, "", {"has_code": True}), "not a connection id", id="id-empty"),
        # entries: shape and types
        pytest.param(
            entry(GOOD, "a", True), "the entry of 'a': .* JSON object, got a bool", id="entry-a-bool"
        ),
        pytest.param(entry(GOOD, "a", [True]), "the entry of 'a': .* got a list", id="entry-a-list"),
        pytest.param(entry(GOOD, "a", None), "the entry of 'a': .* got null", id="entry-null"),
        pytest.param(
            entry(GOOD, "a", {"has_code": True, "token": "x"}),
            r"the entry of 'a': .* unexpected keys \('token'\)",
            id="entry-extra-key",
        ),
        pytest.param(
            entry(GOOD, "a", {}), "the entry of 'a': .* lacks 'error_class', 'message'", id="entry-empty"
        ),
        pytest.param(
            entry(GOOD, "a", {"has_code": True, "error_class": "E", "message": "m"}),
            "unexpected keys",
            id="entry-pin-and-error",
        ),
        pytest.param(entry(GOOD, "a", {"has_code": "yes"}), "has_code must be a bool", id="has-code-text"),
        pytest.param(
            entry(GOOD, "a", {"has_code": 1}), "has_code must be a bool, got an int", id="has-code-one"
        ),
        pytest.param(
            entry(GOOD, "a", {"has_code": 1.0}), "has_code must be a bool, got a float", id="has-code-float"
        ),
        pytest.param(
            entry(GOOD, "a", {"has_code": None}), "has_code must be a bool, got null", id="has-code-null"
        ),
        pytest.param(
            entry(GOOD, "a", {"error_class": 123, "message": "m"}),
            "the entry of 'a': error_class must be a Python class name .* got an int",
            id="error-class-a-number",
        ),
        pytest.param(
            entry(GOOD, "a", {"error_class": ["PlugzError"], "message": "m"}),
            "error_class must be a Python class name .* got a list",
            id="error-class-a-list",
        ),
        pytest.param(
            entry(GOOD, "a", {"error_class": "", "message": "m"}),
            "error_class must be",
            id="error-class-empty",
        ),
        pytest.param(
            entry(GOOD, "a", {"error_class": "Plugz\nError: forged log line", "message": "m"}),
            "error_class must be a Python class name",
            id="error-class-with-newline",
        ),
        pytest.param(
            entry(GOOD, "a", {"error_class": "E" * 101, "message": "m"}),
            "error_class must be a Python class name .* got a string of 101",
            id="error-class-too-long",
        ),
        pytest.param(
            entry(GOOD, "a", {"error_class": "PlugzError", "message": 42}),
            "the message must be a string .* got an int",
            id="message-a-number",
        ),
        pytest.param(
            entry(GOOD, "a", {"error_class": "PlugzError", "message": None}),
            "the message must be a string .* got null",
            id="message-null",
        ),
        pytest.param(
            entry(GOOD, "a", {"error_class": "PlugzError", "message": nested(100_000)}),
            "the message must be a string .* got a list",
            id="message-deeply-nested",
        ),
        pytest.param(
            entry(GOOD, "a", {"error_class": "PlugzError", "message": "x" * (MAX_TEXT_LENGTH + 1)}),
            f"the message must be a string of at most {MAX_TEXT_LENGTH:,} characters, got a string of 4,097",
            id="message-one-too-long",
        ),
        pytest.param(
            entry(GOOD, "a", {"error_class": "PlugzError", "message": PHONE * 4_000_000}),
            "the message must be a string .* got a string of 52,000,000 character",
            id="message-50-mb",
        ),
        # entries: their status
        pytest.param(
            status("connected"), "a status entry must be a JSON object, got a string", id="status-text"
        ),
        pytest.param(
            status({**UP, "connected": 1}), "connected must be true or false, not an int", id="status-int"
        ),
        pytest.param(
            status({**UP, "smartphone_connected": None}),
            "smartphone_connected must be true or false",
            id="status-null",
        ),
        pytest.param(
            status({**UP, "session": "yes"}), "session must be true, false or null", id="session-text"
        ),
        pytest.param(status({**UP, "reason": 7}), "the status reason must be a string", id="reason-a-number"),
        pytest.param(
            status({**UP, "reason": PHONE * 1000}),
            "the status reason must be a string of at most",
            id="reason-huge",
        ),
        pytest.param(status({**UP, "state": "hacked"}), "state must be one of connected", id="state-unknown"),
        pytest.param(status({**UP, "state": ["connected"]}), "state must be one of", id="state-a-list"),
        pytest.param(
            status({**UP, "state": "disconnected"}),
            "state 'disconnected' does not match its fields",
            id="state-contradicts-fields",
        ),
        pytest.param(status({**UP, "extra": 1}), r"unexpected keys \('extra'\)", id="status-extra-key"),
        pytest.param(
            status({"error_class": {"x": 1}, "message": "m"}),
            "the status error_class must be a Python class name .* got a dict",
            id="status-error-class-a-dict",
        ),
        pytest.param(
            status({"error_class": "PlugzServerError", "message": PHONE * 1000}),
            "the status message must be a string of at most",
            id="status-message-huge",
        ),
        pytest.param(
            entry(
                WITH_STATUS,
                "b",
                {
                    "error_class": "PlugzTimeoutError",
                    "message": "not checked within the audit's 1 s deadline; x",
                    "status": UP,
                },
            ),
            "timed out has no status",
            id="timed-out-with-status",
        ),
    ],
)
def test_from_xcom_refuses_what_is_not_a_report(xcom: Any, says: str) -> None:
    """Every field is checked by exact type and bounded in size; the message says which and
    how, quotes no text of the report (a phone number there stays out) and stays short."""
    with pytest.raises(ValueError, match=says) as caught:
        AuditReport.from_xcom(xcom)
    assert PHONE not in str(caught.value)
    assert len(str(caught.value)) < 400


def test_the_audits_own_long_texts_are_cut_so_its_report_always_reads_back() -> None:
    """A long error text (or status reason) is cut at MAX_TEXT_LENGTH when the entry is made,
    so the bound the merge applies never refuses the audit's own report."""
    from airflow_provider_plugz.exceptions import PlugzServerError
    from airflow_provider_plugz.hooks.plugz import InstanceStatus

    long = "x" * (3 * MAX_TEXT_LENGTH)
    reason = InstanceStatus(connected=False, session=False, smartphone_connected=True, error=long)
    result = CheckResult.failure("a", PlugzServerError(long), status=StatusResult.of(reason))
    assert len(result.message or "") == len(result.status.reason or "") == MAX_TEXT_LENGTH  # type: ignore[union-attr]
    report = AuditReport({"a": result}, status_checked=True)
    assert AuditReport.from_xcom(report.to_xcom()).results == report.results


def test_from_xcom_bounds_the_number_of_entries() -> None:
    assert AuditReport.from_xcom(GOOD, max_entries=2).total == 2
    with pytest.raises(ValueError, match="it holds 2 entries, more than the 1 it may"):
        AuditReport.from_xcom(GOOD, max_entries=1)


WEIRD = [True, False, 1, 1.0, -1, None, "", "x" * (MAX_TEXT_LENGTH + 1), [], {}, nested(50_000), 10**400]


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path in a JSON-like ``value`` (dicts only)."""
    found = []
    for key, item in value.items():
        found.append((*prefix, key))
        if isinstance(item, dict):
            found.extend(paths(item, (*prefix, key)))
    return found


def replaced(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    return {**value, path[0]: replaced(value[path[0]], path[1:], new)}


@pytest.mark.parametrize(
    "weird", [pytest.param(w, id=f"{type(w).__name__}-{n}") for n, w in enumerate(WEIRD)]
)
def test_the_merge_turns_any_malformed_field_into_a_plugz_audit_error(weird: Any) -> None:
    """Every field of a chunk report, at every depth, replaced by a value of another kind or
    size: the merge either merges (the value fits) or raises PlugzAuditError - never a raw
    TypeError, KeyError or RecursionError."""
    good = AuditReport(
        {
            "a": CheckResult.pin(True, status=StatusResult(True, True, True)),
            "b": CheckResult.pin(False, status=StatusResult(error_class="PlugzServerError", message="m")),
        },
        status_checked=True,
    ).to_xcom()
    other = AuditReport(
        {"c": CheckResult(error_class="PlugzNotFoundError", message="m")}, status_checked=True
    )
    refused = {}
    for path in paths(good):
        xcom = replaced(good, path, weird)
        try:
            merge([xcom, other.to_xcom()], [["a", "b"], ["c"]])
        except PlugzAuditError as err:
            refused[path] = str(err)
    assert refused  # every kind of value is wrong somewhere
    for path, message in refused.items():
        assert "the report of chunk 0 ('audit_pins', map index 0)" in message, path
        assert len(message) < 800, path


# --------------------------------------------------------------------------- who owns an id

PIN, NO_PIN = CheckResult.pin(True), CheckResult.pin(False)


def outcomes(report: AuditReport) -> dict[str, str]:
    """Each entry in a word: pin, no-pin, or the error class."""
    return {
        conn_id: "pin" if r.has_code else "no-pin" if r.has_code is False else str(r.error_class)
        for conn_id, r in report.results.items()
    }


NOT = NOT_REPORTED_ERROR_CLASS


@pytest.mark.parametrize(
    ("chunks", "reports", "expected", "warned"),
    [
        pytest.param(
            [["a"], ["b"]],
            [{"a": PIN, "b": PIN}, {"b": NO_PIN}],
            {"a": "pin", "b": "no-pin"},
            [
                "the report of chunk 0 ('audit_pins', map index 0) holds 1 entry for connection ids it was "
                "not given (b)"
            ],
            id="earlier-chunk-claims-a-later-ones-id",
        ),
        pytest.param(
            [["a"], ["b"]],
            [{"a": NO_PIN}, {"a": PIN, "b": PIN}],
            {"a": "no-pin", "b": "pin"},
            ["chunk 1 ('audit_pins', map index 1) holds 1 entry for connection ids it was not given (a)"],
            id="later-chunk-claims-an-earlier-ones-id",
        ),
        pytest.param(
            [["a"], ["b"]],
            [{"a": PIN, "z": NO_PIN, "y": PIN}, {"b": PIN}],
            {"a": "pin", "b": "pin"},
            ["holds 2 entries for connection ids it was not given (z, y)"],
            id="ids-in-no-chunk-ignored",
        ),
        pytest.param(
            [["a"], ["b"]],
            [{"b": PIN}, {"b": NO_PIN}],
            {"a": NOT, "b": "no-pin"},
            ["chunk 0 ('audit_pins', map index 0) has no entry for 1 of its 1 connection id(s) (a)"],
            id="chunk-reports-another-id-instead-of-its-own",
        ),
        pytest.param(
            [["a", "b", "c"]],
            [{"a": PIN, "c": NO_PIN}],
            {"a": "pin", "b": NOT, "c": "no-pin"},
            ["has no entry for 1 of its 3 connection id(s) (b): reported as not checked"],
            id="missing-id",
        ),
        pytest.param(
            [["a"], ["b"], ["c"]],
            [{"a": PIN}, None, {"c": PIN}],
            {"a": "pin", "b": NOT, "c": "pin"},
            [],
            id="a-chunk-that-pushed-none",
        ),
        pytest.param(
            [["a"], ["b"], ["c"]],
            [{"a": PIN}, {"c": NO_PIN}],
            {"a": "pin", "b": NOT, "c": "no-pin"},
            [],
            id="a-chunk-that-pushed-nothing-reports-told-by-their-ids",
        ),
        pytest.param(
            [["a"], ["b"], ["c"]],
            [{"a": PIN, "b": PIN}, {"b": NO_PIN}],
            {"a": NOT, "b": "no-pin", "c": NOT},
            [
                "chunk report 0 (in map-index order) holds ids of chunks 0 and 1; with 1 chunk report(s) "
                "missing"
            ],
            id="with-a-report-missing-a-report-spanning-chunks-is-not-used",
        ),
        pytest.param(
            [["a"], ["b"], ["c"]],
            [{"b": PIN}, {"b": NO_PIN}],
            {"a": NOT, "b": NOT, "c": NOT},
            ["chunk reports 0 and 1 all hold ids of chunk 1 ('audit_pins', map index 1) only"],
            id="with-a-report-missing-two-reports-of-one-chunk-are-not-used",
        ),
        pytest.param(
            [["a"], ["b"], ["c"]],
            [{}, {"b": PIN}],
            {"a": NOT, "b": "pin", "c": NOT},
            ["chunk report 0 (in map-index order) holds no id of any chunk"],
            id="with-a-report-missing-an-empty-report-is-not-used",
        ),
    ],
)
def test_only_the_chunk_that_owns_an_id_reports_on_it_and_none_is_lost(
    chunks: list[list[str]],
    reports: list[dict[str, CheckResult] | None],
    expected: dict[str, str],
    warned: list[str],
) -> None:
    given = [None if r is None else AuditReport(r) for r in reports]
    merged = merge_chunk_reports(given, chunks=chunks, task_id="audit_pins")
    assert outcomes(merged.report) == expected  # in chunk order, every id once, no other id
    assert list(merged.report.results) == [c for chunk in chunks for c in chunk]
    assert merged.report.total == len(expected)
    text = "\n".join(merged.warnings)
    for warning in warned:
        assert warning in text
    if not warned:
        assert merged.warnings == ()
    for conn_id, outcome in expected.items():
        if outcome == NOT:
            assert merged.report.results[conn_id].message.startswith("not checked: ")  # type: ignore[union-attr]
    assert AuditReport.merge(given, chunks=chunks).results == merged.report.results


def test_the_issue_example_a_chunk_claiming_a_pin_for_another_chunks_number(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 21, point 6: chunk 0 says plugz_b has a PIN, chunk 1 (which owns plugz_b) says it
    has none. Before: 3 numbers for a fleet of 2, with_pin=3, fail_if_missing_pin passed."""
    chunks = [["plugz_a"], ["plugz_b"]]
    lying = AuditReport({"plugz_a": PIN, "plugz_b": PIN}).to_xcom()  # its counts add up
    honest = AuditReport({"plugz_b": NO_PIN}).to_xcom()
    recorded = RecordingLog()
    monkeypatch.setattr(PlugzAuditMergeOperator, "log", property(lambda self: recorded))
    ti = FakeTaskInstance()
    operator = PlugzAuditMergeOperator(
        task_id="merge", reports=[lying, honest], chunks=chunks, fail_if_missing_pin=True
    )
    with pytest.raises(PlugzAuditError, match=r"1 WhatsApp number\(s\) have NO PIN: plugz_b"):
        operator.execute({"ti": ti})  # type: ignore[arg-type]
    pushed = ti.pushed[REPORT_XCOM_KEY]
    assert (pushed["total"], pushed["with_pin"], pushed["without_pin"], pushed["errors"]) == (2, 1, 1, 0)
    assert pushed["results"] == {"plugz_a": {"has_code": True}, "plugz_b": {"has_code": False}}
    assert (
        "chunk 0 ('audit_pins', map index 0) holds 1 entry for connection ids it was not given (plugz_b)"
        in ("\n".join(recorded.lines))
    )


def test_merge_without_chunks_trusts_no_id_that_two_reports_hold() -> None:
    """Without the chunk list nothing says which report owns an id two of them hold: it is
    reported as not checked (counted once, under errors), never the first claim kept."""
    first = AuditReport({"a": PIN, "b": PIN})
    second = AuditReport({"b": NO_PIN, "c": PIN})
    merged = merge_chunk_reports([first, second])
    assert outcomes(merged.report) == {"a": "pin", "b": NOT, "c": "pin"}
    assert (merged.report.total, merged.report.with_pin, merged.report.errors) == (3, 2, 1)
    assert "chunk reports 0 and 1 each hold an entry for it" in str(merged.report.results["b"].message)
    assert "1 connection id(s) are in more than one chunk report (b)" in merged.warnings[0]
    assert AuditReport.merge([first, None, second]).results["c"] == PIN


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
    ("reports", "chunks", "error", "says"),
    [
        pytest.param(
            [{"results": []}],
            None,
            PlugzAuditError,
            "chunk report 0 .* is not a PlugzPinAuditOperator report: not a Plugz PIN audit report",
            id="bad-report-without-chunks",
        ),
        pytest.param(
            [GOOD, {**GOOD, "with_pin": True}],
            [["a", "b"], ["c"]],
            PlugzAuditError,
            "the report of chunk 1 \\('audit_pins', map index 1\\) is not a PlugzPinAuditOperator report: "
            "its count with_pin must be an integer, not a bool",
            id="bool-count-names-its-chunk",
        ),
        pytest.param(
            [entry(GOOD, "a", {"error_class": 1, "message": "m"})],
            [["a", "b"], ["c"]],
            PlugzAuditError,
            "chunk report 0 \\(in map-index order\\) is not a PlugzPinAuditOperator report: the entry "
            "of 'a': error_class must be",
            id="bad-report-with-a-chunk-missing",
        ),
        pytest.param(
            [AuditReport({f"x{n}": PIN for n in range(4)}).to_xcom()],
            [["a", "b"], ["c"]],
            PlugzAuditError,
            "it holds 4 entries, more than the 3 it may",
            id="more-entries-than-the-fleet-has-ids",
        ),
        pytest.param(
            [GOOD, GOOD, GOOD],
            [["a", "b"], ["c"]],
            PlugzAuditError,
            "there are 3 chunk reports for 2 chunks",
            id="more-reports-than-chunks",
        ),
        pytest.param(
            [GOOD, AuditReport({"c": PIN}, status_checked=True).to_xcom()],
            [["a", "b"], ["c"]],
            PlugzAuditError,
            "disagree on check_status",
            id="check-status-disagrees",
        ),
        pytest.param(
            [GOOD],
            None,
            PlugzAuditError,
            "fail_if_disconnected=True needs the chunks' connection status",
            id="fail-if-disconnected-without-status",
        ),
        # the arguments themselves
        pytest.param(
            [GOOD], "a,b", PlugzConfigurationError, "chunks must be the list of id lists", id="chunks-text"
        ),
        pytest.param([GOOD], {"a": 0}, PlugzConfigurationError, "got a dict", id="chunks-a-dict"),
        pytest.param([GOOD], 3, PlugzConfigurationError, "got an int", id="chunks-a-number"),
        pytest.param(
            [GOOD], ["ab"], PlugzConfigurationError, "chunk 0 must be a non-empty list", id="chunk-text"
        ),
        pytest.param(
            [GOOD], [["a"], []], PlugzConfigurationError, "chunk 1 must be a non-empty", id="chunk-empty"
        ),
        pytest.param(
            [GOOD],
            [[1, 2]],
            PlugzConfigurationError,
            "chunk 0 holds an int, which is not a connection id",
            id="id-int",
        ),
        pytest.param([GOOD], [["a"], [True]], PlugzConfigurationError, "chunk 1 holds a bool", id="id-bool"),
        pytest.param(
            [GOOD], [["a", "b c"]], PlugzConfigurationError, "not a connection id", id="id-with-space"
        ),
        pytest.param(
            [GOOD], [["a", "x" * 300]], PlugzConfigurationError, "a string of 300 character", id="id-too-long"
        ),
        pytest.param(
            [GOOD],
            [["a", "b"], ["b"]],
            PlugzConfigurationError,
            "chunks 0 and 1 both list 'b': each id belongs to one chunk only",
            id="id-in-two-chunks",
        ),
        pytest.param(
            [GOOD], [["a", "a"]], PlugzConfigurationError, "chunk 0 lists 'a'", id="id-twice-in-a-chunk"
        ),
        pytest.param(
            [GOOD], [nested(100_000)], PlugzConfigurationError, "chunk 0 holds a list", id="chunk-nested"
        ),
        pytest.param(
            "[]", None, PlugzConfigurationError, "reports must be the chunk reports", id="reports-text"
        ),
        pytest.param(GOOD, None, PlugzConfigurationError, "got a dict", id="reports-one-report"),
        pytest.param(7, None, PlugzConfigurationError, "got an int", id="reports-a-number"),
    ],
)
def test_the_merge_refuses_what_it_cannot_merge_saying_why(
    reports: Any, chunks: Any, error: type[Exception], says: str
) -> None:
    """A bad report is a PlugzAuditError naming the chunk; bad arguments a PlugzConfigurationError."""
    with pytest.raises(error, match=says) as caught:
        merge(reports, chunks, fail_if_disconnected=True)
    assert str(caught.value).startswith("Plugz PIN audit merge: ")
    assert len(str(caught.value)) < 800


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
