"""What the audit writes: the log summary of a report, the failure message the ``fail_*`` options
ask for, and the small wordings they share (seconds, lists of ids); no text quotes a secret.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_plugz._vocabulary import CONNECTION_STATES, state_label
from airflow_provider_plugz.audit.xcom import REPORT_XCOM_KEY, STATUS_COUNTS

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow_provider_plugz.audit.entries import CheckResult
    from airflow_provider_plugz.audit.report import AuditReport


def audit_problems(
    report: AuditReport,
    *,
    fail_if_missing_pin: bool,
    fail_if_disconnected: bool,
    fail_on_error: bool,
    max_ids: int,
) -> str | None:
    """The failure message the ``fail_*`` options ask for, or None when the task should succeed;
    it names at most ``max_ids`` connection ids per finding and counts the rest."""
    parts = []
    if fail_if_missing_pin:
        missing = report.missing_pin
        if missing:
            parts.append(f"{len(missing)} WhatsApp number(s) have NO PIN: {ids_text(missing, max_ids)}")
    if fail_if_disconnected:
        down = [f"{c} ({_state_of(report.results[c])})" for c in report.not_connected]
        if down:
            parts.append(f"{len(down)} WhatsApp number(s) are not connected: {ids_text(down, max_ids)}")
    if fail_on_error:
        failed = [_failure_label(c, r) for c, r in report.results.items() if _failed(r)]
        if failed:
            parts.append(f"{len(failed)} connection(s) could not be checked: {ids_text(failed, max_ids)}")
    if not parts:
        return None
    return (
        f"Plugz PIN audit of {report.total} connection(s) failed: {'; '.join(parts)}. "
        f"The full report is in XCom {REPORT_XCOM_KEY!r} and in the log above."
    )


def log_report(log: Any, report: AuditReport, prefix: str, args: Sequence[Any], *, max_rows: int) -> None:
    """Log (to ``log``, a task's logger) ``prefix % args`` and the report's counts, then up to
    ``max_rows`` entries, problems first."""
    summary = (
        prefix + "%d with PIN, %d WITHOUT PIN, %d could not be checked (%d of them not within the deadline)."
    )
    values: list[Any] = [*args, report.with_pin, report.without_pin, report.errors, report.timed_out]
    if report.status_checked:
        summary += (
            " Connection status: "
            + ", ".join(f"%d {state_label(state)}" for state in CONNECTION_STATES)
            + ", %d could not be read."
        )
        values += [getattr(report, name) for name in STATUS_COUNTS]
    log.info(summary, *values)
    rows = sorted(report.results.items(), key=lambda item: item[1].severity)
    shown = rows[:max_rows]
    width = max((len(conn_id) for conn_id, _ in shown), default=0)
    lines = [f"  {conn_id:<{width}}  {result.describe()}" for conn_id, result in shown]
    if len(rows) > len(shown):
        hidden = rows[len(shown) :]
        hidden_ok = sum(1 for _, result in hidden if result.severity == 2)
        ok = "with PIN and connected" if report.status_checked else "with PIN"
        lines.append(
            f"  ... and {len(hidden)} more ({hidden_ok} {ok}, {len(hidden) - hidden_ok} "
            f"problem(s)); the full report is in XCom {REPORT_XCOM_KEY!r}."
        )
    if lines:
        log.info("Plugz PIN audit results (problems first):\n%s", "\n".join(lines))


def ids_text(items: list[str], max_ids: int) -> str:
    """``a, b and 3 more``: at most ``max_ids`` of ``items`` named, the rest counted."""
    shown = ", ".join(items[:max_ids])
    more = len(items) - max_ids
    return f"{shown} and {more} more" if more > 0 else shown


def numbers_text(items: list[int]) -> str:
    """``0 and 1``, ``0, 1 and 3``."""
    text = [str(item) for item in items]
    return text[0] if len(text) == 1 else f"{', '.join(text[:-1])} and {text[-1]}"


def seconds_text(value: float) -> str:
    """``1.5 s``, ``90 s``, ``1,740 s``: for messages."""
    return f"{value:,.0f} s" if value >= 100 else f"{value:.3g} s"


def _state_of(result: CheckResult) -> str | None:
    return None if result.status is None else result.status.state


def _failed(result: CheckResult) -> bool:
    """Whether ``fail_on_error`` counts this entry: its PIN or its status call failed."""
    return result.has_code is None or (result.status is not None and result.status.state is None)


def _failure_label(conn_id: str, result: CheckResult) -> str:
    """``plugz_x (PlugzNotFoundError)``, ``plugz_y (status: PlugzServerError)``, or both."""
    classes = [] if result.error_class is None else [result.error_class]
    if result.status is not None and result.status.error_class is not None:
        classes.append(f"status: {result.status.error_class}")
    return f"{conn_id} ({'; '.join(classes)})"
