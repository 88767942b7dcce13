"""``PlugzPinAuditOperator``: check the PIN (and, with ``check_status``, the connection state) of a
whole fleet of WhatsApp numbers in one task; ``PlugzAuditMergeOperator``: one report of a fleet
audited in chunks.

Cheap to import: DAG files import this on every parse, so asyncio, the hook, httpx and
requests are loaded only when the task runs.

Only the operators live here, the Airflow side of the audit; what they use lives in
:mod:`airflow_provider_plugz.audit`, one module per job (see its docstring), and every public
name this module had is still importable from it. The audit operator reads its arguments,
works out the deadline (``audit_timeout``, never later than the task's ``execution_timeout``
allows), hands the connection ids to the fan-out
(:func:`airflow_provider_plugz.audit.fanout.check_fleet`: ``max_concurrency`` workers over
shared, kept-alive HTTP connections, cancelled at the deadline), turns what came back into an
:class:`AuditReport`, logs a summary, pushes :meth:`AuditReport.to_xcom` and applies the
``fail_*`` options.

**Large fleets** are audited in chunks with Airflow's own dynamic task mapping:
:func:`audit_chunks` splits the ids, ``PlugzPinAuditOperator.partial(...).expand(plugz_conn_ids=...)``
audits each chunk in its own task instance, and :class:`PlugzAuditMergeOperator` reads the
chunk reports back, combines them (:func:`merge_chunk_reports`) into one report of the same
shape and applies the ``fail_*`` options to the whole fleet (see its docstring).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_plugz._compat import BaseOperator
from airflow_provider_plugz._vocabulary import CONNECTION_STATES, connection_state
from airflow_provider_plugz.audit.arguments import (
    DEFAULT_AUDIT_TIMEOUT,
    DEFAULT_CHUNK_SIZE,
    DEFAULT_MAX_CONCURRENCY,
    MAX_CONN_IDS_TEXT,
    REPORT_MARGIN_MAX,
    REPORT_MARGIN_MIN,
    REPORT_MARGIN_SHARE,
    audit_chunks,
    audit_deadline,
    check_chunks,
    chunk_lists,
    conn_id_list,
    report_list,
    timeout_seconds,
)
from airflow_provider_plugz.audit.checks import PinAndStatus, pin_and_status, pin_status
from airflow_provider_plugz.audit.entries import (
    NOT_CHECKED_PREFIX,
    NOT_REPORTED_ERROR_CLASS,
    TIMED_OUT_ERROR_CLASS,
    CheckResult,
    StatusResult,
    is_reportable,
    raised_at,
)
from airflow_provider_plugz.audit.report import AuditReport, MergedReport, merge_chunk_reports
from airflow_provider_plugz.audit.texts import audit_problems, log_report, seconds_text
from airflow_provider_plugz.audit.xcom import (
    MAX_CONN_ID_LENGTH,
    MAX_ERROR_CLASS_LENGTH,
    MAX_REPORT_ENTRIES,
    MAX_TEXT_LENGTH,
    REPORT_XCOM_KEY,
    STATUS_COUNTS,
)
from airflow_provider_plugz.exceptions import PlugzAuditError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence
    from datetime import timedelta

    from airflow.sdk import Context

    from airflow_provider_plugz.audit.fanout import FleetRun
    from airflow_provider_plugz.hooks.plugz import PinStatus, PlugzHook

__all__ = [
    "CONNECTION_STATES",
    "DEFAULT_AUDIT_TIMEOUT",
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_MAX_CONCURRENCY",
    "MAX_CONN_IDS_TEXT",
    "MAX_CONN_ID_LENGTH",
    "MAX_ERROR_CLASS_LENGTH",
    "MAX_REPORT_ENTRIES",
    "MAX_TEXT_LENGTH",
    "NOT_CHECKED_PREFIX",
    "NOT_REPORTED_ERROR_CLASS",
    "REPORT_MARGIN_MAX",
    "REPORT_MARGIN_MIN",
    "REPORT_MARGIN_SHARE",
    "REPORT_XCOM_KEY",
    "STATUS_COUNTS",
    "TIMED_OUT_ERROR_CLASS",
    "AuditReport",
    "CheckResult",
    "MergedReport",
    "PinAndStatus",
    "PlugzAuditMergeOperator",
    "PlugzPinAuditOperator",
    "StatusResult",
    "audit_chunks",
    "audit_deadline",
    "audit_problems",
    "check_chunks",
    "conn_id_list",
    "connection_state",
    "log_report",
    "merge_chunk_reports",
    "timeout_seconds",
]


class PlugzPinAuditOperator(BaseOperator):
    """Check whether every listed Plugz connection's WhatsApp account has a PIN, concurrently,
    and with ``check_status=True`` whether each number is connected.

    One failing instance never hides the others: each connection gets its own entry in
    the report, either ``{"has_code": bool}`` or ``{"error_class": "PlugzNotFoundError",
    "message": "..."}`` (the provider's error text, which never holds a secret)::

        {
            "total": 4, "with_pin": 1, "without_pin": 1, "errors": 2, "timed_out": 1,
            "results": {
                "plugz_a": {"has_code": true},
                "plugz_b": {"has_code": false},
                "plugz_c": {"error_class": "PlugzNotFoundError", "message": "Plugz PIN status ..."},
                "plugz_d": {"error_class": "PlugzTimeoutError",
                            "message": "not checked within the audit's 1,740 s deadline; ..."},
            },
        }

    **Connection status.** With ``check_status=True`` each worker asks, for each number, for its
    PIN and then for its status (``GET .../status``), one request after the other on the same
    hook and HTTP connection, so ``max_concurrency`` still bounds requests and connections.
    Every entry gains ``"status"``: ``{"state": "connected", "connected": true, "session": true,
    "smartphone_connected": true, "reason": null}`` (``state`` is one of ``connected``,
    ``disconnected``, ``session_lost``, ``phone_offline``, see :func:`connection_state`;
    ``reason`` is the server's text about it), or ``{"error_class": ..., "message": ...}`` when
    the status call failed - the PIN answer is then kept: a number with no PIN is reported as
    such whatever its status call did - or None when it was not read: the PIN check failed
    (an unknown instance, a bad credential, a server error: the status call would fail alike;
    only a web instance, whose PIN endpoints do not exist, still gets its status read) or the
    deadline came first (the whole number is timed out, as without ``check_status``). The
    report gains the counts ``connected``, ``disconnected``, ``session_lost``,
    ``phone_offline`` and ``status_errors`` (status not read), which add up to ``total``. With
    ``check_status=False`` the report is exactly as above.

    Only connections of type ``plugz`` are used: any other id (an ``http`` or ``postgres``
    connection, say, named in a run's configuration) gets a ``PlugzConfigurationError`` entry
    and no request is made with its credentials.

    **Deadline.** The audit as a whole ends after ``audit_timeout`` and, when the task has an
    ``execution_timeout``, before it: at most ``execution_timeout`` less a margin of 10% (5 s
    to 60 s, never more than half of it) left for writing the report. At the deadline the
    checks in flight are cancelled, every HTTP client is closed, and each number not checked
    by then gets a ``PlugzTimeoutError`` entry ("not checked within the audit's N s
    deadline; ..."), counted under ``errors`` and under ``timed_out``; the finished ones are
    kept. The log says which deadline applied.

    The report is built as an :class:`AuditReport` (one :class:`CheckResult` per connection)
    and returned as its :meth:`~AuditReport.to_xcom` JSON (XCom ``return_value``), also pushed
    under the XCom key ``report``, which is written before the task fails because of
    ``fail_if_missing_pin``, ``fail_if_disconnected`` or ``fail_on_error``. A summary table goes
    to the task log. The checks themselves run in
    :func:`airflow_provider_plugz.audit.fanout.check_fleet`.

    :param plugz_conn_ids: the Plugz connection ids (templated). After templating: a list of
        ids, or a string holding a JSON/Python list or ids separated by commas or whitespace
        (what ``"{{ var.value.my_list }}"`` or a non-native Jinja render of a list gives).
        Duplicates are dropped, first occurrence kept; an empty list is an error.
    :param max_concurrency: the most numbers checked (and HTTP connections) at a time; each
        check makes one request at a time.
    :param audit_timeout: how long the whole audit may take, in seconds or as a ``timedelta``
        (default 30 minutes); the ``execution_timeout`` clamps it as above.
    :param check_status: also read each number's connection state, after its PIN (two
        requests per number).
    :param fail_if_missing_pin: fail the task when any account has no PIN.
    :param fail_if_disconnected: fail the task when any number's status was read and it is not
        ``connected`` (disconnected, session lost or phone offline); needs ``check_status``.
    :param fail_on_error: fail the task when any connection could not be checked (timed-out
        numbers included) or, with ``check_status``, its status call failed.
    """

    template_fields: Sequence[str] = ("plugz_conn_ids",)
    template_fields_renderers: ClassVar[dict[str, str]] = {"plugz_conn_ids": "json"}
    ui_color = "#25d366"

    #: Per-connection lines in the log summary; beyond this, problems first, then counts.
    max_log_rows = 50
    #: Connection ids named in the failure message; the rest are counted.
    max_ids_in_message = 50
    #: HTTP connections per pooled client (a worker always uses the same client). httpcore
    #: re-scans its whole pool, quadratically when connections sit idle, on every request:
    #: one small pool per worker costs far less CPU than one big shared pool (benchmarks/).
    connections_per_client = 1

    def __init__(
        self,
        *,
        plugz_conn_ids: str | Sequence[str],
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        audit_timeout: float | timedelta = DEFAULT_AUDIT_TIMEOUT,
        check_status: bool = False,
        fail_if_missing_pin: bool = False,
        fail_if_disconnected: bool = False,
        fail_on_error: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int) or max_concurrency < 1:
            raise ValueError(f"max_concurrency must be an integer >= 1, got {max_concurrency!r}")
        if isinstance(plugz_conn_ids, (list, tuple)):
            # Nothing templating can fix: say so when the DAG file is parsed (an item that is a
            # template is checked once rendered).
            conn_id_list(
                [
                    "templated" if isinstance(item, str) and ("{{" in item or "{%" in item) else item
                    for item in plugz_conn_ids
                ]
            )
        self.plugz_conn_ids = plugz_conn_ids
        self.max_concurrency = max_concurrency
        #: seconds (validated here, when the DAG file is parsed).
        self.audit_timeout = timeout_seconds(audit_timeout)
        for name, value in (
            ("check_status", check_status),
            ("fail_if_missing_pin", fail_if_missing_pin),
            ("fail_if_disconnected", fail_if_disconnected),
            ("fail_on_error", fail_on_error),
        ):
            if not isinstance(value, bool):
                raise ValueError(f"{name} must be True or False, got {value!r}")
        if fail_if_disconnected and not check_status:
            raise ValueError(
                "fail_if_disconnected=True needs check_status=True: the audit reads the numbers' "
                "connection status only then; set both"
            )
        self.check_status = check_status
        self.fail_if_missing_pin = fail_if_missing_pin
        self.fail_if_disconnected = fail_if_disconnected
        self.fail_on_error = fail_on_error

    def execute(self, context: Context) -> dict[str, Any]:
        import time

        from airflow_provider_plugz.audit import fanout

        started = time.monotonic()  # execution_timeout counts from about here
        conn_ids = conn_id_list(self.plugz_conn_ids)
        seconds, why = audit_deadline(self.audit_timeout, self.execution_timeout)
        self.log.info(
            "Plugz PIN audit of %d connection(s)%s, max_concurrency=%d, deadline %s: %s.",
            len(conn_ids),
            " and their connection status" if self.check_status else "",
            self.max_concurrency,
            seconds_text(seconds),
            why,
        )
        check: Callable[[PlugzHook], Awaitable[PinStatus | PinAndStatus]]
        check = pin_and_status if self.check_status else pin_status
        run: FleetRun[PinStatus | PinAndStatus] = fanout.run_in_new_loop(
            fanout.check_fleet(
                conn_ids,
                check,
                deadline=started + seconds,
                max_concurrency=self.max_concurrency,
                connections_per_client=self.connections_per_client,
            )
        )
        self._log_unexpected(run)
        if run.deadline_reached:
            self.log.warning(
                "Plugz PIN audit deadline of %s reached: %d number(s) not checked (%d cancelled in "
                "flight, %d never started); reporting them as %s.",
                seconds_text(seconds),
                len(run.timed_out),
                len(run.cancelled),
                len(run.never_started),
                TIMED_OUT_ERROR_CLASS,
            )
        report = AuditReport.from_run(run, deadline_seconds=seconds, status_checked=self.check_status)
        self._log_summary(report, time.monotonic() - started)
        xcom = report.to_xcom()
        context["ti"].xcom_push(key=REPORT_XCOM_KEY, value=xcom)
        problems = self._problems(report)
        if problems:
            raise PlugzAuditError(problems)
        return xcom

    def _log_unexpected(self, run: FleetRun[PinStatus | PinAndStatus]) -> None:
        """One ERROR line per call that failed with something other than a Plugz error (a bug)."""
        failures: list[tuple[str, Exception, str]] = []
        for conn_id in run.conn_ids:
            if conn_id in run.errors:
                failures.append((conn_id, run.errors[conn_id], ""))
            value = run.values.get(conn_id)
            if isinstance(value, PinAndStatus):
                if isinstance(value.pin, Exception):
                    failures.append((conn_id, value.pin, ""))
                if isinstance(value.status, Exception):
                    failures.append((conn_id, value.status, " (status check)"))
        for conn_id, err, which in failures:
            if not is_reportable(err):
                self.log.error(
                    "Plugz PIN audit: unexpected %s for connection %r%s%s",
                    type(err).__name__,
                    conn_id,
                    which,
                    raised_at(err),
                )

    # ---------------------------------------------------------------- reporting

    def _log_summary(self, report: AuditReport, seconds: float) -> None:
        log_report(
            self.log,
            report,
            "Plugz PIN audit of %d connection(s) in %.2f s (max_concurrency=%d): ",
            [report.total, seconds, self.max_concurrency],
            max_rows=self.max_log_rows,
        )

    def _problems(self, report: AuditReport) -> str | None:
        """The failure message asked for by ``fail_*``, or None when the task should succeed."""
        return audit_problems(
            report,
            fail_if_missing_pin=self.fail_if_missing_pin,
            fail_if_disconnected=self.fail_if_disconnected,
            fail_on_error=self.fail_on_error,
            max_ids=self.max_ids_in_message,
        )


class PlugzAuditMergeOperator(BaseOperator):
    """One report of a fleet audited in chunks: the reports of a mapped
    ``PlugzPinAuditOperator`` combined, with the ``fail_*`` options applied to the whole fleet.

    The report has the shape of one audit's (see :class:`PlugzPinAuditOperator`): the counts
    are recomputed from the merged entries, never summed, and every chunk report is checked
    to be one (:meth:`AuditReport.from_xcom`: exact types, bounded sizes; anything else fails
    the merge with a ``PlugzAuditError`` naming the chunk). Each number is taken from the
    chunk that owns it only (:func:`merge_chunk_reports`). It is returned (XCom ``return_value``) and
    pushed under ``report`` before ``fail_*`` can fail the task, like the audit's own::

        chunks = audit_chunks_task(...)  # a task returning audit_chunks(ids, chunk_size)
        audit = PlugzPinAuditOperator.partial(task_id="audit_pins", check_status=True).expand(
            plugz_conn_ids=chunks
        )
        merged = PlugzAuditMergeOperator(
            task_id="merge_reports",
            reports=audit.output[REPORT_XCOM_KEY],
            chunks=chunks,
            fail_if_missing_pin=True,
        )

    **Why the chunks should not fail.** A chunk that raises on a finding (its own ``fail_*``)
    fails its task instance, which Airflow shows as a failed audit of part of the fleet, and
    with the default trigger rule the merge would not run. So this operator runs when every
    chunk is done, whatever their states (``trigger_rule="all_done"`` unless given): a chunk's
    report is pushed before it fails, so it is merged too; a chunk that ended without a report
    (killed, out of memory, a lost worker) has each of its numbers reported as
    ``PlugzAuditError`` ("not checked: the audit of its chunk ... ended without a report"),
    counted under ``errors``, which ``fail_on_error`` fails on. Leave ``fail_*`` off the
    chunks and set them here: a finding in any chunk then fails this one task, and a failed
    chunk never silently drops numbers.

    :param reports: the chunk reports (templated): ``audit.output["report"]`` of the mapped
        audit, a sequence of :meth:`AuditReport.to_xcom` dicts.
    :param chunks: the ids each chunk was given, in map-index order (templated; what the
        mapped audit was expanded over). With it the merge knows which chunk owns each id and
        trusts only that chunk about it (see :func:`merge_chunk_reports`). Without it (kept
        for DAGs written before it existed; the log warns) the numbers of a chunk that did not
        report are missing from the report, and an id two chunk reports hold is reported as
        not checked, neither report trusted.
    :param audit_task_id: the mapped audit's task id, named in those entries.
    :param fail_if_missing_pin: fail the task when any account has no PIN.
    :param fail_if_disconnected: fail the task when any number's status was read and it is not
        ``connected``; needs the chunks' ``check_status=True``.
    :param fail_on_error: fail the task when any number could not be checked (timed out, or its
        chunk did not report) or, with ``check_status``, its status call failed.
    """

    template_fields: Sequence[str] = ("reports", "chunks")
    ui_color = "#25d366"

    #: Per-connection lines in the log summary; beyond this, problems first, then counts.
    max_log_rows = 50
    #: Connection ids named in the failure message; the rest are counted.
    max_ids_in_message = 50

    def __init__(
        self,
        *,
        reports: Any,
        chunks: Any = None,
        audit_task_id: str = "audit_pins",
        fail_if_missing_pin: bool = False,
        fail_if_disconnected: bool = False,
        fail_on_error: bool = False,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("trigger_rule", "all_done")
        super().__init__(**kwargs)
        for name, value in (
            ("fail_if_missing_pin", fail_if_missing_pin),
            ("fail_if_disconnected", fail_if_disconnected),
            ("fail_on_error", fail_on_error),
        ):
            if not isinstance(value, bool):
                raise ValueError(f"{name} must be True or False, got {value!r}")
        self.reports = reports
        self.chunks = chunks
        self.audit_task_id = audit_task_id
        self.fail_if_missing_pin = fail_if_missing_pin
        self.fail_if_disconnected = fail_if_disconnected
        self.fail_on_error = fail_on_error

    def execute(self, context: Context) -> dict[str, Any]:
        chunks = chunk_lists(self.chunks)
        xcoms = report_list(self.reports)
        if chunks is None:
            self.log.warning(
                "Plugz PIN audit merge without chunks=: the numbers of a chunk that did not report "
                "cannot be known, and an id two reports hold is reported as not checked. Give "
                "chunks= what the audit was expanded over."
            )
        elif len(xcoms) > len(chunks):
            raise PlugzAuditError(
                f"Plugz PIN audit merge: there are {len(xcoms)} chunk reports for {len(chunks)} "
                "chunks; give chunks= the list the audit was expanded over, and reports= that "
                f"audit's reports (<the mapped audit>.output[{REPORT_XCOM_KEY!r}])."
            )
        # A chunk's report is bounded by the fleet: more entries cannot be any chunk's.
        limit = MAX_REPORT_ENTRIES if chunks is None else sum(map(len, chunks))
        by_position = chunks is not None and len(xcoms) == len(chunks)
        reports: list[AuditReport | None] = []
        for index, xcom in enumerate(xcoms):
            if xcom is None:  # Airflow 2 can give None for a chunk that pushed nothing
                reports.append(None)
                continue
            try:
                reports.append(AuditReport.from_xcom(xcom, max_entries=limit))
            except ValueError as err:
                where = (
                    f"the report of chunk {index} ({self.audit_task_id!r}, map index {index})"
                    if by_position
                    else f"chunk report {index} (in map-index order)"
                )
                raise PlugzAuditError(
                    f"Plugz PIN audit merge: {where} is not a PlugzPinAuditOperator report: {err}. "
                    f"Give reports=<the mapped audit>.output[{REPORT_XCOM_KEY!r}], and check that "
                    "nothing else writes that XCom."
                ) from None
        try:
            merged = merge_chunk_reports(reports, chunks=chunks, task_id=self.audit_task_id)
        except ValueError as err:
            raise PlugzAuditError(f"Plugz PIN audit merge: {err}.") from None
        for warning in merged.warnings:
            self.log.warning("Plugz PIN audit merge: %s.", warning)
        report = merged.report
        not_reported = sum(1 for r in report.results.values() if r.error_class == NOT_REPORTED_ERROR_CLASS)
        if not_reported:
            self.log.warning(
                "Plugz PIN audit merge: %d number(s) were not reported by their chunk task (or not "
                "in a report the merge could trust); reporting them as %s.",
                not_reported,
                NOT_REPORTED_ERROR_CLASS,
            )
        received = sum(1 for r in reports if r is not None)
        log_report(
            self.log,
            report,
            "Plugz PIN audit of %d connection(s), merged from %d chunk report(s): ",
            [report.total, received],
            max_rows=self.max_log_rows,
        )
        xcom = report.to_xcom()
        context["ti"].xcom_push(key=REPORT_XCOM_KEY, value=xcom)
        if self.fail_if_disconnected and not report.status_checked and report.total:
            raise PlugzAuditError(
                "Plugz PIN audit merge: fail_if_disconnected=True needs the chunks' connection "
                "status, but they were audited without it; give the mapped PlugzPinAuditOperator "
                "check_status=True."
            )
        problems = audit_problems(
            report,
            fail_if_missing_pin=self.fail_if_missing_pin,
            fail_if_disconnected=self.fail_if_disconnected,
            fail_on_error=self.fail_on_error,
            max_ids=self.max_ids_in_message,
        )
        if problems:
            raise PlugzAuditError(problems)
        return xcom
