"""``PlugzAuditMergeOperator``: one report of a fleet audited in chunks (the reports of a mapped
``PlugzPinAuditOperator`` merged, ``fail_*`` applied to the whole fleet). Importable from
:mod:`airflow_provider_plugz.operators.audit` too, as it always was.

Cheap to import: DAG files import this on every parse.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_plugz._compat import BaseOperator
from airflow_provider_plugz.audit.arguments import (
    chunk_lists,
    failing_facts,
    needed_check,
    pop_fail_options,
    report_list,
)
from airflow_provider_plugz.audit.entries import NOT_REPORTED_ERROR_CLASS
from airflow_provider_plugz.audit.report import AuditReport, merge_chunk_reports
from airflow_provider_plugz.audit.texts import audit_problems, log_report
from airflow_provider_plugz.audit.xcom import MAX_REPORT_ENTRIES, REPORT_XCOM_KEY
from airflow_provider_plugz.endpoints import FACTS, PIN
from airflow_provider_plugz.exceptions import PlugzAuditError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import Context


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
        fail_options = pop_fail_options(
            kwargs, fail_if_missing_pin=fail_if_missing_pin, fail_if_disconnected=fail_if_disconnected
        )
        kwargs.setdefault("trigger_rule", "all_done")
        super().__init__(**kwargs)
        if not isinstance(fail_on_error, bool):
            raise ValueError(f"fail_on_error must be True or False, got {fail_on_error!r}")
        for option, value in fail_options.items():  # each fact's fail_if_* option: fail_on reads them
            setattr(self, option, value)
        self.reports = reports
        self.chunks = chunks
        self.audit_task_id = audit_task_id
        self.fail_on_error = fail_on_error

    @property
    def fail_on(self) -> tuple[str, ...]:
        """The facts whose bad states fail the task: those whose ``fail_if_*`` option is on."""
        return failing_facts(vars(self))

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
        for name in self.fail_on:
            fact = FACTS[name]
            if name != PIN.name and name not in report.checks and report.total:
                raise PlugzAuditError(
                    f"Plugz PIN audit merge: {fact.fail_option}=True needs the chunks' "
                    f"{fact.title.lower()}, but they were audited without it; give the mapped "
                    f"PlugzPinAuditOperator {needed_check(name)}."
                )
        problems = audit_problems(
            report, fail_on=self.fail_on, fail_on_error=self.fail_on_error, max_ids=self.max_ids_in_message
        )
        if problems:
            raise PlugzAuditError(problems)
        return xcom
