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
    check_names,
    conn_id_list,
    failing_facts,
    needed_check,
    pop_fail_options,
    timeout_seconds,
)
from airflow_provider_plugz.audit.checks import FactsRead, PinAndStatus, read_facts
from airflow_provider_plugz.audit.columns import FactResult
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
from airflow_provider_plugz.endpoints import FACTS, PIN
from airflow_provider_plugz.exceptions import PlugzAuditError

# The merge of a chunked audit is its own module; its operator has always been importable from here.
from airflow_provider_plugz.operators.audit_merge import PlugzAuditMergeOperator

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence
    from datetime import timedelta

    from airflow.sdk import Context

    from airflow_provider_plugz.audit.fanout import FleetRun
    from airflow_provider_plugz.hooks.plugz import PinStatus, PlugzHook

    Checked = PinStatus | FactsRead

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
    "FactResult",
    "FactsRead",
    "MergedReport",
    "PinAndStatus",
    "PlugzAuditMergeOperator",
    "PlugzFleetAuditOperator",
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
        checks: str | Sequence[str] = (),
        fail_if_missing_pin: bool = False,
        fail_if_disconnected: bool = False,
        fail_on_error: bool = False,
        **kwargs: Any,
    ) -> None:
        fail_options = pop_fail_options(
            kwargs, fail_if_missing_pin=fail_if_missing_pin, fail_if_disconnected=fail_if_disconnected
        )
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
        for name, value in (("check_status", check_status), ("fail_on_error", fail_on_error)):
            if not isinstance(value, bool):
                raise ValueError(f"{name} must be True or False, got {value!r}")
        #: The facts read besides the PIN, in :data:`FACTS` order (``check_status``: the connection).
        self.checks = check_names(checks, check_status)
        for name, fact in FACTS.items():
            if fail_options[fact.fail_option] and name != PIN.name and name not in self.checks:
                raise ValueError(
                    f"{fact.fail_option}=True needs {needed_check(name)}: the audit reads the numbers' "
                    f"{fact.title.lower()} only then; set both"
                )
        self.check_status = "connection" in self.checks
        self.fail_on_error = fail_on_error
        for option, value in fail_options.items():  # each fact's fail_if_* option: fail_on reads them
            setattr(self, option, value)

    @property
    def fail_on(self) -> tuple[str, ...]:
        """The facts whose bad states fail the task: those whose ``fail_if_*`` option is on."""
        return failing_facts(vars(self))

    def execute(self, context: Context) -> dict[str, Any]:
        import time

        from airflow_provider_plugz.audit import fanout

        started = time.monotonic()  # execution_timeout counts from about here
        conn_ids = conn_id_list(self.plugz_conn_ids)
        seconds, why = audit_deadline(self.audit_timeout, self.execution_timeout)
        also = " and ".join(FACTS[name].title.lower() for name in self.checks)
        self.log.info(
            "Plugz PIN audit of %d connection(s)%s, max_concurrency=%d, deadline %s: %s.",
            len(conn_ids),
            f" and their {also}" if also else "",
            self.max_concurrency,
            seconds_text(seconds),
            why,
        )
        check: Callable[[PlugzHook], Awaitable[Checked]] = read_facts(self.checks)
        run: FleetRun[Checked] = fanout.run_in_new_loop(
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
        report = AuditReport.from_run(run, deadline_seconds=seconds, checks=self.checks)
        self._log_summary(report, time.monotonic() - started)
        xcom = report.to_xcom()
        context["ti"].xcom_push(key=REPORT_XCOM_KEY, value=xcom)
        problems = self._problems(report)
        if problems:
            raise PlugzAuditError(problems)
        return xcom

    def _log_unexpected(self, run: FleetRun[Checked]) -> None:
        """One ERROR line per call that failed with something other than a Plugz error (a bug)."""
        failures: list[tuple[str, Exception, str]] = []
        for conn_id in run.conn_ids:
            if conn_id in run.errors:
                failures.append((conn_id, run.errors[conn_id], ""))
            value = run.values.get(conn_id)
            if isinstance(value, FactsRead):
                if isinstance(value.pin, Exception):
                    failures.append((conn_id, value.pin, ""))
                for name, read in value.columns.items():
                    if isinstance(read, Exception):
                        failures.append((conn_id, read, f" ({FACTS[name].column} check)"))
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
            report, fail_on=self.fail_on, fail_on_error=self.fail_on_error, max_ids=self.max_ids_in_message
        )


class PlugzFleetAuditOperator(PlugzPinAuditOperator):
    """:class:`PlugzPinAuditOperator` under a name that says what it does now: the PIN and every
    fact named in ``checks`` (see :data:`airflow_provider_plugz.endpoints.FACTS`) of a whole
    fleet, with each fact's ``fail_if_*`` option. Same arguments, report and XCom."""
