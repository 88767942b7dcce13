"""What the audit writes: the log summary of a report, the failure message the ``fail_*`` options
ask for, and the small wordings they share (seconds, lists of ids); no text quotes a secret.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_plugz.audit.xcom import REPORT_XCOM_KEY
from airflow_provider_plugz.endpoints import FACTS, PIN

if TYPE_CHECKING:
    from collections.abc import Collection, Sequence

    from airflow_provider_plugz.audit.entries import CheckResult
    from airflow_provider_plugz.audit.report import AuditReport


def audit_problems(
    report: AuditReport,
    *,
    fail_if_missing_pin: bool = False,
    fail_if_disconnected: bool = False,
    fail_on_error: bool,
    max_ids: int,
    fail_on: Collection[str] = (),
) -> str | None:
    """The failure message the ``fail_*`` options ask for, or None when the task should succeed;
    it names at most ``max_ids`` connection ids per finding and counts the rest. ``fail_on``
    names the facts whose bad states fail (``fail_if_missing_pin``: the PIN's,
    ``fail_if_disconnected``: the connection's)."""
    failing = {
        *fail_on,
        *(["pin"] if fail_if_missing_pin else []),
        *(["connection"] if fail_if_disconnected else []),
    }
    parts = []
    for name, fact in FACTS.items():
        if name not in failing:
            continue
        found = report.findings(name)
        if fact.shows_state:
            found = [f"{c} ({_state_of(report.results[c], name)})" for c in found]
        if found:
            parts.append(f"{len(found)} WhatsApp number(s) {fact.problem}: {ids_text(found, max_ids)}")
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
    for name in report.checks:
        fact = FACTS[name]
        summary += (
            f" {fact.title}: "
            + ", ".join(f"%d {fact.words[state]}" for state in fact.states)
            + ", %d could not be read."
        )
        values += [report.counts[count] for count in fact.counts]
    log.info(summary, *values)
    rows = sorted(report.results.items(), key=lambda item: item[1].severity)
    shown = rows[:max_rows]
    width = max((len(conn_id) for conn_id, _ in shown), default=0)
    lines = [f"  {conn_id:<{width}}  {result.describe()}" for conn_id, result in shown]
    if len(rows) > len(shown):
        hidden = rows[len(shown) :]
        hidden_ok = sum(1 for _, result in hidden if result.severity == 2)
        ok = " and ".join(_good_words(FACTS[name]) for name in (PIN.name, *report.checks))
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


def _good_words(fact: Any) -> str:
    """How the log says a fact is well: its good states' words (``with PIN``, ``connected``)."""
    return " or ".join(fact.words[state] for state in fact.states if not fact.is_bad(state))


def _state_of(result: CheckResult, fact: str) -> Any:
    column = result.columns.get(fact)
    return None if column is None else column.state


def _failed(result: CheckResult) -> bool:
    """Whether ``fail_on_error`` counts this entry: its PIN or another fact's call failed."""
    return result.has_code is None or any(
        column is not None and column.state is None for column in result.columns.values()
    )


def _failure_label(conn_id: str, result: CheckResult) -> str:
    """``plugz_x (PlugzNotFoundError)``, ``plugz_y (status: PlugzServerError)``, or both."""
    classes = [] if result.error_class is None else [result.error_class]
    for name, column in result.columns.items():
        if column is not None and column.error_class is not None:
            classes.append(f"{FACTS[name].column}: {column.error_class}")
    return f"{conn_id} ({'; '.join(classes)})"
