"""``PlugzPinAuditOperator``: check the PIN (and, with ``check_status``, the connection state) of a
whole fleet of WhatsApp numbers in one task.

Cheap to import: DAG files import this on every parse, so asyncio, the hook, httpx and
requests are loaded only when the task runs.

The operator is the Airflow side of the audit: it reads and validates its arguments, works out
the deadline (``audit_timeout``, never later than the task's ``execution_timeout`` allows),
hands the connection ids to the fan-out (:func:`airflow_provider_plugz.hooks.fleet.check_fleet`:
``max_concurrency`` workers over shared, kept-alive HTTP connections, cancelled at the
deadline), turns what came back into an :class:`AuditReport` (one :class:`CheckResult` per
connection, with a :class:`StatusResult` when the status was read, and the counts), logs a
summary, pushes :meth:`AuditReport.to_xcom` and applies the ``fail_*`` options.

**Large fleets** are audited in chunks with Airflow's own dynamic task mapping:
:func:`audit_chunks` splits the ids (never into more chunks than ``[core] max_map_length``),
``PlugzPinAuditOperator.partial(...).expand(plugz_conn_ids=...)`` audits each chunk in its own
task instance (on whichever worker the executor picks), and :class:`PlugzAuditMergeOperator`
reads the chunk reports back (:meth:`AuditReport.from_xcom`), combines them
(:meth:`AuditReport.merge`) into one report of the same shape and applies the ``fail_*``
options to the whole fleet. Chunks are best left without ``fail_*``: the merge then fails on
a finding in any chunk, and a chunk that failed anyway (a crash, a kill) still gets merged,
its numbers reported as not checked.
"""

from __future__ import annotations

import ast
import json
import math
import re
from dataclasses import dataclass, field
from datetime import timedelta
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_plugz._compat import BaseOperator
from airflow_provider_plugz.exceptions import (
    PlugzAuditError,
    PlugzError,
    PlugzInstanceNotSupportedError,
    PlugzTimeoutError,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence

    from airflow.sdk import Context

    from airflow_provider_plugz.hooks.fleet import FleetRun
    from airflow_provider_plugz.hooks.plugz import InstanceStatus, PinStatus, PlugzHook

#: XCom key of the report; it is pushed before the task fails on ``fail_*``, so it is never lost.
REPORT_XCOM_KEY = "report"
DEFAULT_MAX_CONCURRENCY = 32
#: How long the whole audit may take when the task has no shorter ``execution_timeout``.
DEFAULT_AUDIT_TIMEOUT = timedelta(minutes=30)
#: Under an ``execution_timeout``, the audit ends this share of it earlier (at least
#: ``REPORT_MARGIN_MIN``, at most ``REPORT_MARGIN_MAX`` seconds, and never more than half of
#: it), so that the report is logged and pushed before Airflow kills the task.
REPORT_MARGIN_SHARE = 0.1
REPORT_MARGIN_MIN = 5.0
REPORT_MARGIN_MAX = 60.0
#: ``error_class`` of a number the audit did not get to check before its deadline.
TIMED_OUT_ERROR_CLASS = PlugzTimeoutError.__name__
#: How the message of such a number starts: how a report read back from XCom
#: (:meth:`AuditReport.from_xcom`) tells it from a timeout of one HTTP attempt.
NOT_CHECKED_PREFIX = "not checked within the audit's "
#: ``error_class`` of a number whose chunk task ended without a report (merged reports only).
NOT_REPORTED_ERROR_CLASS = PlugzAuditError.__name__
#: Numbers per chunk task when a fleet is audited in chunks (see :func:`audit_chunks`).
DEFAULT_CHUNK_SIZE = 500
#: A number's connection state (:func:`connection_state`); each is also the name of its count
#: in the report. Only ``connected`` sends; in the others messages wait in the queue.
CONNECTION_STATES = ("connected", "disconnected", "session_lost", "phone_offline")
#: The report's counts that ``check_status`` adds: one per state, and the numbers whose status
#: could not be read. They add up to ``total``.
STATUS_COUNTS = (*CONNECTION_STATES, "status_errors")

_SEPARATORS = re.compile(r"[\s,]+")


def connection_state(connected: bool, session: bool | None, smartphone_connected: bool) -> str:
    """:func:`airflow_provider_plugz.endpoints.connection_state`, imported when first used
    (DAG files import this module on every parse)."""
    from airflow_provider_plugz.endpoints import connection_state as rule

    return rule(connected, session, smartphone_connected)


@dataclass(frozen=True)
class PinAndStatus:
    """What the audit's check of one number got with ``check_status``: each call's answer, or
    the exception it raised, so that a failing status call does not cost the PIN answer.

    ``pin`` is an exception only for a web instance (``PlugzInstanceNotSupportedError``: the PIN
    endpoints are mobile-only, its status is still read); any other PIN failure ends the check
    before the status call, as it would end that call the same way.
    """

    pin: PinStatus | Exception
    status: InstanceStatus | Exception


@dataclass(frozen=True)
class StatusResult:
    """One number's connection state (``GET .../status``), or why it could not be read.

    Either the answer - ``connected``, ``session`` (None where the server does not send it),
    ``smartphone_connected`` and ``reason``, the server's own text about it (Plugz's ``error``
    field, state rather than failure, e.g. "You need to restore the session.") - or
    ``error_class`` and a ``message`` that never holds a secret. Build one with :meth:`of` or
    :meth:`failure`.
    """

    connected: bool | None = None
    session: bool | None = None
    smartphone_connected: bool | None = None
    reason: str | None = None
    error_class: str | None = None
    message: str | None = None

    def __post_init__(self) -> None:
        if self.error_class is None:
            if (
                not isinstance(self.connected, bool)
                or not isinstance(self.smartphone_connected, bool)
                or not (self.session is None or isinstance(self.session, bool))
            ):
                raise ValueError(
                    "a StatusResult without error_class needs connected and smartphone_connected "
                    "as bools (and session a bool or None)"
                )
            if self.message is not None:
                raise ValueError("a StatusResult with an answer has no message")
        elif not self.error_class or self.message is None:
            raise ValueError("a StatusResult with an error needs a non-empty error_class and a message")
        elif any(
            v is not None for v in (self.connected, self.session, self.smartphone_connected, self.reason)
        ):
            raise ValueError(
                "a StatusResult with an error has no connected, session, smartphone_connected or reason"
            )

    @classmethod
    def of(cls, status: InstanceStatus) -> StatusResult:
        """A status that was read."""
        return cls(
            connected=status.connected,
            session=status.session,
            smartphone_connected=status.smartphone_connected,
            reason=status.error,
        )

    @classmethod
    def failure(cls, conn_id: str, err: BaseException) -> StatusResult:
        """A status call that raised: its class and a text known to be secret-free."""
        error_class, message = _error_entry(conn_id, err, "reading the status of")
        return cls(error_class=error_class, message=message)

    @property
    def state(self) -> str | None:
        """One of :data:`CONNECTION_STATES`; None when the status could not be read."""
        if self.error_class is not None:
            return None
        return connection_state(bool(self.connected), self.session, bool(self.smartphone_connected))

    def describe(self) -> str:
        """The state in a few words, for the task log."""
        state = self.state
        if state is None:
            return f"status ERROR {self.error_class}: {self.message}"
        if state == "connected":
            return "connected"
        label = state.replace("_", " ").upper()
        return f"{label} ({self.reason})" if self.reason else label

    def to_xcom(self) -> dict[str, Any]:
        """``{"state", "connected", "session", "smartphone_connected", "reason"}`` (always all five)
        or ``{"error_class", "message"}``."""
        if self.error_class is not None:
            return {"error_class": self.error_class, "message": self.message}
        return {
            "state": self.state,
            "connected": self.connected,
            "session": self.session,
            "smartphone_connected": self.smartphone_connected,
            "reason": self.reason,
        }

    @classmethod
    def from_xcom(cls, xcom: Any) -> StatusResult:
        """The inverse of :meth:`to_xcom`; ValueError when ``xcom`` is not what it gives."""
        if not isinstance(xcom, dict):
            raise ValueError(f"a status entry must be a JSON object, got {type(xcom).__name__}")
        if "error_class" in xcom:
            _expect_keys(xcom, {"error_class", "message"}, "a status entry with an error")
            return cls(error_class=xcom["error_class"], message=xcom["message"])
        _expect_keys(
            xcom, {"state", "connected", "session", "smartphone_connected", "reason"}, "a status entry"
        )
        status = cls(
            connected=xcom["connected"],
            session=xcom["session"],
            smartphone_connected=xcom["smartphone_connected"],
            reason=xcom["reason"],
        )
        if status.state != xcom["state"]:
            raise ValueError(f"a status entry's state {xcom['state']!r} does not match its fields")
        return status


@dataclass(frozen=True)
class CheckResult:
    """One connection's entry in the report: its PIN answer, or why there is none, and with
    ``check_status`` its :class:`StatusResult`.

    Exactly one of ``has_code`` and ``error_class`` is set; ``message`` goes with
    ``error_class`` and never holds a secret. ``timed_out`` marks a number the audit's own
    deadline came before (a ``PlugzTimeoutError`` of one HTTP attempt is an ordinary error).
    ``status`` is None when the status was not read: not asked for, the PIN check failed in a
    way the status call would too, or the deadline came first.
    Build one with :meth:`pin`, :meth:`failure` or :meth:`not_checked`.
    """

    has_code: bool | None = None
    error_class: str | None = None
    message: str | None = None
    timed_out: bool = False
    status: StatusResult | None = None

    def __post_init__(self) -> None:
        if self.has_code is None:
            if not self.error_class or self.message is None:
                raise ValueError("a CheckResult without has_code needs an error_class and a message")
        elif not isinstance(self.has_code, bool):
            raise ValueError(f"has_code must be a bool, got {type(self.has_code).__name__}")
        elif self.error_class is not None or self.message is not None or self.timed_out:
            raise ValueError("a CheckResult with has_code has no error_class, message or timed_out")
        if self.status is not None and not isinstance(self.status, StatusResult):
            raise ValueError(
                f"a CheckResult's status must be a StatusResult, got {type(self.status).__name__}"
            )
        if self.timed_out and self.status is not None:
            raise ValueError("a CheckResult that timed out has no status")

    @classmethod
    def pin(cls, has_code: bool, *, status: StatusResult | None = None) -> CheckResult:
        """A number that was checked: whether its WhatsApp account has a PIN."""
        return cls(has_code=has_code, status=status)

    @classmethod
    def failure(cls, conn_id: str, err: BaseException, *, status: StatusResult | None = None) -> CheckResult:
        """A check that raised: its class and a text known to be secret-free."""
        error_class, message = _error_entry(conn_id, err, "checking")
        return cls(error_class=error_class, message=message, status=status)

    @classmethod
    def not_checked(cls, deadline_seconds: float, *, in_flight: bool, max_concurrency: int) -> CheckResult:
        """A number the audit did not finish checking before its deadline."""
        if in_flight:
            what = (
                "its check was still running (reading the connection or waiting for Plugz, "
                "retries included) and was cancelled"
            )
        else:
            what = f"its check never started: all {max_concurrency} workers were busy with slower numbers"
        return cls(
            error_class=TIMED_OUT_ERROR_CLASS,
            message=(
                f"{NOT_CHECKED_PREFIX}{_seconds(deadline_seconds)} deadline; {what}. Raise "
                "audit_timeout (and the task's execution_timeout, which caps it) or max_concurrency, "
                "or check why this number's Plugz instance answers slowly."
            ),
            timed_out=True,
        )

    @property
    def severity(self) -> int:
        """0 could not be checked, 1 a problem (no PIN, not connected), 2 all well: the log
        lists problems first."""
        pin = 0 if self.has_code is None else 2 if self.has_code else 1
        if self.status is None:
            return pin
        state = self.status.state
        return min(pin, 0 if state is None else 2 if state == "connected" else 1)

    def describe(self) -> str:
        """The result in a few words, for the task log."""
        if self.has_code is not None:
            text = "PIN set" if self.has_code else "NO PIN"
        else:
            text = f"ERROR {self.error_class}: {self.message}"
        return text if self.status is None else f"{text}; {self.status.describe()}"

    def to_xcom(self, *, with_status: bool = False) -> dict[str, Any]:
        """``{"has_code": bool}`` or ``{"error_class": str, "message": str}``; ``with_status``
        adds ``"status"``: :meth:`StatusResult.to_xcom`, or None when it was not read."""
        if self.has_code is not None:
            xcom: dict[str, Any] = {"has_code": self.has_code}
        else:
            xcom = {"error_class": self.error_class, "message": self.message}
        if with_status:
            xcom["status"] = None if self.status is None else self.status.to_xcom()
        return xcom

    @classmethod
    def from_xcom(cls, xcom: Any, *, with_status: bool = False) -> CheckResult:
        """The inverse of :meth:`to_xcom` (``timed_out`` read from the message, see
        :data:`NOT_CHECKED_PREFIX`); ValueError when ``xcom`` is not what it gives."""
        if not isinstance(xcom, dict):
            raise ValueError(f"a report entry must be a JSON object, got {type(xcom).__name__}")
        status_keys = {"status"} if with_status else set()
        status = None
        if with_status and xcom.get("status") is not None:
            status = StatusResult.from_xcom(xcom["status"])
        if "has_code" in xcom:
            _expect_keys(xcom, {"has_code", *status_keys}, "a report entry with a PIN answer")
            return cls(has_code=xcom["has_code"], status=status)
        _expect_keys(xcom, {"error_class", "message", *status_keys}, "a report entry with an error")
        message = xcom["message"]
        timed_out = (
            xcom["error_class"] == TIMED_OUT_ERROR_CLASS
            and isinstance(message, str)
            and message.startswith(NOT_CHECKED_PREFIX)
        )
        return cls(error_class=xcom["error_class"], message=message, timed_out=timed_out, status=status)

    @classmethod
    def not_reported(cls, chunk: int, task_id: str) -> CheckResult:
        """A number of a chunk whose task ended without a report (it failed, or was killed)."""
        return cls(
            error_class=NOT_REPORTED_ERROR_CLASS,
            message=(
                f"not checked: the audit of its chunk ({task_id!r}, map index {chunk}) ended without "
                "a report. See that task instance's log (it may have been killed, or run out of "
                "memory), then clear it to audit the chunk again."
            ),
        )


@dataclass(frozen=True, repr=False)
class AuditReport:
    """The audit's outcome: one :class:`CheckResult` per connection id, in the order given, and
    the counts. ``errors`` counts every entry without a PIN answer, ``timed_out`` the part of
    them the audit's deadline came before. With ``status_checked`` (the operator's
    ``check_status``) it also counts each of :data:`CONNECTION_STATES` and ``status_errors``, the
    numbers whose status could not be read; those five add up to ``total``. :meth:`to_xcom` is
    the JSON the task returns."""

    results: Mapping[str, CheckResult]
    status_checked: bool = False
    total: int = field(init=False)
    with_pin: int = field(init=False)
    without_pin: int = field(init=False)
    errors: int = field(init=False)
    timed_out: int = field(init=False)
    connected: int = field(init=False)
    disconnected: int = field(init=False)
    session_lost: int = field(init=False)
    phone_offline: int = field(init=False)
    status_errors: int = field(init=False)

    def __post_init__(self) -> None:
        results = MappingProxyType(dict(self.results))  # read-only, and no longer the caller's
        if not self.status_checked and any(r.status is not None for r in results.values()):
            raise ValueError("an AuditReport with statuses in its results needs status_checked=True")
        with_pin = sum(1 for r in results.values() if r.has_code is True)
        without_pin = sum(1 for r in results.values() if r.has_code is False)
        states = [r.status.state for r in results.values() if r.status is not None]
        per_state = {state: states.count(state) for state in CONNECTION_STATES}
        status_errors = len(results) - sum(per_state.values()) if self.status_checked else 0
        for name, value in (
            ("results", results),
            ("total", len(results)),
            ("with_pin", with_pin),
            ("without_pin", without_pin),
            ("errors", len(results) - with_pin - without_pin),
            ("timed_out", sum(1 for r in results.values() if r.timed_out)),
            *per_state.items(),
            ("status_errors", status_errors),
        ):
            object.__setattr__(self, name, value)

    def __repr__(self) -> str:
        names: tuple[str, ...] = ("total", "with_pin", "without_pin", "errors", "timed_out")
        if self.status_checked:
            names += STATUS_COUNTS
        return f"AuditReport({', '.join(f'{name}={getattr(self, name)}' for name in names)})"

    @classmethod
    def from_run(
        cls,
        run: FleetRun[PinStatus | PinAndStatus],
        *,
        deadline_seconds: float,
        status_checked: bool = False,
    ) -> AuditReport:
        """The report of a fan-out that had ``deadline_seconds`` to finish: of PIN checks
        (``PinStatus`` values), or with ``status_checked`` of PIN-and-status checks
        (:class:`PinAndStatus` values)."""
        results: dict[str, CheckResult] = {}
        for conn_id in run.conn_ids:
            if conn_id in run.values:
                results[conn_id] = _checked(conn_id, run.values[conn_id])
            elif conn_id in run.errors:
                results[conn_id] = CheckResult.failure(conn_id, run.errors[conn_id])
            else:
                results[conn_id] = CheckResult.not_checked(
                    deadline_seconds,
                    in_flight=conn_id in run.cancelled,
                    max_concurrency=run.max_concurrency,
                )
        return cls(results, status_checked=status_checked)

    @property
    def missing_pin(self) -> list[str]:
        """The connection ids whose account has no PIN."""
        return [conn_id for conn_id, r in self.results.items() if r.has_code is False]

    @property
    def failed(self) -> list[str]:
        """The connection ids that could not be checked (timed-out ones included)."""
        return [conn_id for conn_id, r in self.results.items() if r.has_code is None]

    @property
    def not_connected(self) -> list[str]:
        """The connection ids whose status was read and is not ``connected``."""
        return [
            conn_id
            for conn_id, r in self.results.items()
            if r.status is not None and r.status.state not in (None, "connected")
        ]

    @property
    def status_failed(self) -> list[str]:
        """The connection ids whose status call failed."""
        return [
            conn_id for conn_id, r in self.results.items() if r.status is not None and r.status.state is None
        ]

    @classmethod
    def from_xcom(cls, xcom: Any) -> AuditReport:
        """The report :meth:`to_xcom` gave, read back (a chunk's, for :meth:`merge`).

        The counts are not trusted but recomputed from the entries, and must match the ones in
        ``xcom``: anything else is not a report of this provider's audit.

        :raises ValueError: saying what does not fit; it quotes no entry's text.
        """
        if not isinstance(xcom, dict) or not isinstance(xcom.get("results"), dict):
            raise ValueError(
                "not a Plugz PIN audit report: expected a JSON object with 'results', got "
                f"{type(xcom).__name__}"
            )
        status_checked = all(name in xcom for name in STATUS_COUNTS)
        results: dict[str, CheckResult] = {}
        for conn_id, entry in xcom["results"].items():
            try:
                results[conn_id] = CheckResult.from_xcom(entry, with_status=status_checked)
            except ValueError as err:
                raise ValueError(f"the entry of {conn_id!r}: {err}") from None
        report = cls(results, status_checked=status_checked)
        names: tuple[str, ...] = ("total", "with_pin", "without_pin", "errors", "timed_out")
        if status_checked:
            names += STATUS_COUNTS
        wrong = [name for name in names if xcom.get(name) != getattr(report, name)]
        if wrong:
            raise ValueError(f"its counts do not match its entries: {', '.join(wrong)}")
        return report

    @classmethod
    def merge(
        cls,
        reports: Iterable[AuditReport],
        *,
        chunks: Sequence[Sequence[str]] | None = None,
        task_id: str = "audit_pins",
    ) -> AuditReport:
        """One report of the whole fleet from the reports of its chunks, counts recomputed.

        Without ``chunks`` the entries come in the order of ``reports``. With ``chunks`` (the
        ids each mapped task was given, in map-index order: what :func:`audit_chunks`
        returned) they come in that order, and a number no report holds - its chunk task failed
        before it reported - gets a :meth:`CheckResult.not_reported` entry naming ``task_id``
        and the chunk; ids of a report that no chunk lists come last. An id in two reports
        keeps its first entry.

        :raises ValueError: the reports disagree on ``status_checked`` (one operator's chunks never do).
        """
        merged: dict[str, CheckResult] = {}
        checked: set[bool] = set()
        for report in reports:
            checked.add(report.status_checked)
            for conn_id, result in report.results.items():
                merged.setdefault(conn_id, result)
        if len(checked) > 1:
            raise ValueError(
                "the chunk reports disagree on check_status: some hold each number's connection "
                "status, some do not; give every chunk the same check_status"
            )
        status_checked = checked.pop() if checked else False
        if chunks is None:
            return cls(merged, status_checked=status_checked)
        results: dict[str, CheckResult] = {}
        for index, chunk in enumerate(chunks):
            for conn_id in chunk:
                if conn_id not in results:
                    found = merged.pop(conn_id, None)
                    results[conn_id] = found or CheckResult.not_reported(index, task_id)
        results.update(merged)  # checked though no chunk lists them: keep, after the others
        return cls(results, status_checked=status_checked)

    def to_xcom(self) -> dict[str, Any]:
        """The JSON-safe report: counts, then ``results`` (see :class:`PlugzPinAuditOperator`);
        the status counts and each entry's ``status`` only with ``status_checked``."""
        xcom: dict[str, Any] = {
            "total": self.total,
            "with_pin": self.with_pin,
            "without_pin": self.without_pin,
            "errors": self.errors,
            "timed_out": self.timed_out,
        }
        if self.status_checked:
            xcom.update((name, getattr(self, name)) for name in STATUS_COUNTS)
        xcom["results"] = {
            conn_id: r.to_xcom(with_status=self.status_checked) for conn_id, r in self.results.items()
        }
        return xcom


def _checked(conn_id: str, value: PinStatus | PinAndStatus) -> CheckResult:
    """The entry of a number whose check returned."""
    if not isinstance(value, PinAndStatus):
        return CheckResult.pin(value.has_code)
    if isinstance(value.status, Exception):
        status = StatusResult.failure(conn_id, value.status)
    else:
        status = StatusResult.of(value.status)
    if isinstance(value.pin, Exception):
        return CheckResult.failure(conn_id, value.pin, status=status)
    return CheckResult.pin(value.pin.has_code, status=status)


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
    :func:`airflow_provider_plugz.hooks.fleet.check_fleet`.

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
            # Nothing templating can fix: say so when the DAG file is parsed.
            conn_id_list(plugz_conn_ids)
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

        from airflow_provider_plugz.hooks import fleet

        started = time.monotonic()  # execution_timeout counts from about here
        conn_ids = conn_id_list(self.plugz_conn_ids)
        seconds, why = audit_deadline(self.audit_timeout, self.execution_timeout)
        self.log.info(
            "Plugz PIN audit of %d connection(s)%s, max_concurrency=%d, deadline %s: %s.",
            len(conn_ids),
            " and their connection status" if self.check_status else "",
            self.max_concurrency,
            _seconds(seconds),
            why,
        )
        check: Callable[[PlugzHook], Awaitable[PinStatus | PinAndStatus]]
        check = _pin_and_status if self.check_status else _pin_status
        run: FleetRun[PinStatus | PinAndStatus] = fleet.run_in_new_loop(
            fleet.check_fleet(
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
                _seconds(seconds),
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
            if not _is_reportable(err):
                self.log.error(
                    "Plugz PIN audit: unexpected %s for connection %r%s%s",
                    type(err).__name__,
                    conn_id,
                    which,
                    _raised_at(err),
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
    to be one (:meth:`AuditReport.from_xcom`). It is returned (XCom ``return_value``) and
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
        mapped audit was expanded over). Without it the numbers of a chunk that did not
        report are missing from the report instead of being reported as not checked.
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
        chunks = None if self.chunks is None else _chunk_lists(self.chunks)
        reports: list[AuditReport] = []
        for index, xcom in enumerate(self.reports or ()):
            if xcom is None:  # Airflow 2 can give None for a chunk that pushed nothing
                continue
            try:
                reports.append(AuditReport.from_xcom(xcom))
            except ValueError as err:
                raise PlugzAuditError(
                    f"Plugz PIN audit merge: chunk report {index} is not a PlugzPinAuditOperator "
                    f"report ({err}). Give reports=<the mapped audit>.output[{REPORT_XCOM_KEY!r}]."
                ) from None
        try:
            report = AuditReport.merge(reports, chunks=chunks, task_id=self.audit_task_id)
        except ValueError as err:
            raise PlugzAuditError(f"Plugz PIN audit merge: {err}.") from None
        not_reported = sum(1 for r in report.results.values() if r.error_class == NOT_REPORTED_ERROR_CLASS)
        if not_reported:
            self.log.warning(
                "Plugz PIN audit merge: %d number(s) were not reported by their chunk task; "
                "reporting them as %s.",
                not_reported,
                NOT_REPORTED_ERROR_CLASS,
            )
        log_report(
            self.log,
            report,
            "Plugz PIN audit of %d connection(s), merged from %d chunk report(s): ",
            [report.total, len(reports)],
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


def audit_chunks(
    plugz_conn_ids: Any, chunk_size: int = DEFAULT_CHUNK_SIZE, *, max_map_length: int | None = None
) -> list[list[str]]:
    """The ids of a fleet (validated like ``plugz_conn_ids``: :func:`conn_id_list`) in chunks
    of at most ``chunk_size``, for ``PlugzPinAuditOperator.partial(...).expand(plugz_conn_ids=...)``.

    Never more chunks than ``max_map_length`` (default: Airflow's ``[core] max_map_length``,
    1024 unless configured), the most task instances one mapped task may have: beyond it the
    chunks grow past ``chunk_size`` (a warning says so) rather than the run failing. The
    chunks are balanced (see :func:`airflow_provider_plugz.hooks.fleet.chunked`); a fleet of
    up to ``chunk_size`` numbers is one chunk, so one task.

    :raises ValueError: the ids are not valid, or ``chunk_size``/``max_map_length`` is not an integer >= 1.
    """
    from airflow_provider_plugz.hooks.fleet import chunked

    conn_ids = conn_id_list(plugz_conn_ids)
    if max_map_length is None:
        from airflow.configuration import conf

        max_map_length = conf.getint("core", "max_map_length")
    chunks = chunked(conn_ids, chunk_size, max_chunks=max_map_length)
    if len(chunks[0]) > chunk_size:
        import logging

        logging.getLogger(__name__).warning(
            "Plugz PIN audit: %d numbers in chunks of %d would be more than [core] max_map_length=%d "
            "mapped tasks; auditing them in %d chunks of up to %d instead. Raise chunk_size, or "
            "max_map_length in airflow.cfg, to choose yourself.",
            len(conn_ids),
            chunk_size,
            max_map_length,
            len(chunks),
            len(chunks[0]),
        )
    return chunks


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
            parts.append(f"{len(missing)} WhatsApp number(s) have NO PIN: {_ids(missing, max_ids)}")
    if fail_if_disconnected:
        down = [f"{c} ({_state_of(report.results[c])})" for c in report.not_connected]
        if down:
            parts.append(f"{len(down)} WhatsApp number(s) are not connected: {_ids(down, max_ids)}")
    if fail_on_error:
        failed = [_failure_label(c, r) for c, r in report.results.items() if _failed(r)]
        if failed:
            parts.append(f"{len(failed)} connection(s) could not be checked: {_ids(failed, max_ids)}")
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
            " Connection status: %d connected, %d DISCONNECTED, %d SESSION LOST, %d PHONE OFFLINE, "
            "%d could not be read."
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


def _ids(items: list[str], max_ids: int) -> str:
    shown = ", ".join(items[:max_ids])
    more = len(items) - max_ids
    return f"{shown} and {more} more" if more > 0 else shown


def _chunk_lists(value: Any) -> list[list[str]]:
    """The merge's ``chunks`` after templating: a list of lists of ids (a lazy XCom sequence too)."""
    if isinstance(value, (str, bytes, dict)):
        raise PlugzAuditError(
            "Plugz PIN audit merge: chunks must be the list of id lists the audit was expanded "
            f"over, got {type(value).__name__}."
        )
    chunks = [list(chunk) for chunk in value]
    if not all(isinstance(c, str) for chunk in chunks for c in chunk):
        raise PlugzAuditError("Plugz PIN audit merge: chunks must be lists of connection ids.")
    return chunks


def _expect_keys(xcom: dict[str, Any], keys: set[str], what: str) -> None:
    if set(xcom) != keys:
        raise ValueError(f"{what} has the keys {sorted(xcom)}, expected {sorted(keys)}")


def conn_id_list(value: Any) -> list[str]:
    """Validate ``plugz_conn_ids`` after templating: a non-empty list of ids, duplicates dropped.

    A string is read as a JSON or Python literal when it starts with ``[`` (or ``{``), otherwise as
    ids separated by commas or whitespace (Airflow connection ids contain neither).

    :raises ValueError: saying what is wrong; ids are not secrets, so it may quote them.
    """
    items: Any = value
    if isinstance(value, str):
        text = value.strip()
        if text[:1] in ("[", "{"):
            items = _list_literal(text)
        else:
            items = [part for part in _SEPARATORS.split(text) if part]
    if isinstance(items, (str, bytes)) or not isinstance(items, (list, tuple)):
        raise ValueError(
            "plugz_conn_ids must be a list of Plugz connection ids (or a string holding one), "
            f"got {type(value).__name__}"
        )
    bad = [item for item in items if not isinstance(item, str) or not item.strip()]
    if bad:
        raise ValueError(f"plugz_conn_ids must hold non-empty strings only, got {bad[0]!r}")
    conn_ids = list(dict.fromkeys(item.strip() for item in items))
    if not conn_ids:
        raise ValueError(
            "plugz_conn_ids is empty: give at least one Plugz connection id (check the DAG param "
            "or Variable it is rendered from)"
        )
    return conn_ids


def _list_literal(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return ast.literal_eval(text)  # "['a', 'b']": how Jinja renders a list as text
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        raise ValueError(
            "plugz_conn_ids looks like a list but is neither JSON nor a Python literal"
        ) from None


def timeout_seconds(value: Any) -> float:
    """Validate ``audit_timeout``: a positive, finite number of seconds or ``timedelta``.

    :raises ValueError: saying what is wrong, when the DAG file is parsed.
    """
    seconds: Any = value.total_seconds() if isinstance(value, timedelta) else value
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise ValueError(
            "audit_timeout must be a number of seconds or a datetime.timedelta "
            f"(e.g. timedelta(minutes=30)), got {type(value).__name__}"
        )
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(
            f"audit_timeout must be more than 0 seconds and finite, got {value!r}: give how long "
            "the whole audit may take (the default is 30 minutes)"
        )
    return float(seconds)


def audit_deadline(audit_timeout: float, execution_timeout: timedelta | None) -> tuple[float, str]:
    """The audit's deadline in seconds from the start of ``execute``, and which limit set it.

    An ``execution_timeout`` leaves a margin (:data:`REPORT_MARGIN_SHARE` of it, within
    :data:`REPORT_MARGIN_MIN`-:data:`REPORT_MARGIN_MAX`, at most half of it) for writing the
    report before Airflow kills the task.
    """
    if execution_timeout is None:
        return audit_timeout, "audit_timeout (the task has no execution_timeout)"
    limit = execution_timeout.total_seconds()
    margin = min(REPORT_MARGIN_MAX, max(REPORT_MARGIN_MIN, limit * REPORT_MARGIN_SHARE), limit / 2)
    capped = limit - margin
    if capped < audit_timeout:
        return capped, (
            f"the task's execution_timeout of {_seconds(limit)} less {_seconds(margin)} kept for "
            f"writing the report, shorter than audit_timeout={_seconds(audit_timeout)}"
        )
    return audit_timeout, f"audit_timeout, within the task's execution_timeout of {_seconds(limit)}"


def _seconds(value: float) -> str:
    """``1.5 s``, ``90 s``, ``1,740 s``: for messages."""
    return f"{value:,.0f} s" if value >= 100 else f"{value:.3g} s"


async def _pin_status(hook: PlugzHook) -> PinStatus:
    """The audit's check of one connection, for :func:`~airflow_provider_plugz.hooks.fleet.check_fleet`."""
    return await hook.aget_pin_status()


async def _pin_and_status(hook: PlugzHook) -> PinAndStatus:
    """The ``check_status`` check: the PIN, then the status, one after the other on the same
    hook (and so the worker's HTTP connection). See :class:`PinAndStatus` for which PIN
    failures still get the status read."""
    pin: PinStatus | Exception
    try:
        pin = await hook.aget_pin_status()
    except PlugzInstanceNotSupportedError as err:  # a web instance: no PIN endpoint, a status
        pin = err
    status: InstanceStatus | Exception
    try:
        status = await hook.aget_instance_status()
    except Exception as err:  # the PIN answer is kept; the entry reports the status failure
        status = err
    return PinAndStatus(pin, status)


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


def _error_entry(conn_id: str, err: BaseException, doing: str) -> tuple[str, str]:
    """An exception as a report entry's ``(error_class, message)``, with no secret in the message."""
    name = type(err).__name__
    if _is_reportable(err):
        return name, str(err)
    # Anything else is a bug somewhere; its text may quote a URL (and so the instance
    # token): keep only the class and where it was raised.
    return name, (
        f"unexpected {name}{_raised_at(err)} while {doing} connection {conn_id!r}; "
        "this is not a Plugz error: please report it to airflow-provider-plugz."
    )


def _is_reportable(err: BaseException) -> bool:
    """Whether ``err``'s text may go into the report as it is."""
    # The same class on Airflow 2 and 3 (3 re-exports the task SDK's from here).
    from airflow.exceptions import AirflowNotFoundException  # type: ignore[attr-defined]

    # PlugzError texts are redacted at the source; Airflow's "conn_id `x` isn't defined"
    # names only the connection id.
    return isinstance(err, (PlugzError, AirflowNotFoundException))


def _raised_at(err: BaseException) -> str:
    """`` in module.function`` of the innermost frame, with no values from it."""
    tb = err.__traceback__
    if tb is None:
        return ""
    while tb.tb_next is not None:
        tb = tb.tb_next
    code = tb.tb_frame.f_code
    module = tb.tb_frame.f_globals.get("__name__", "?")
    return f" in {module}.{code.co_name}"
