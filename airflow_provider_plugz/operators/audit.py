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
(:func:`merge_chunk_reports`: each number from the chunk that owns it, nothing counted twice
or lost) into one report of the same shape and applies the ``fail_*`` options to the whole
fleet. Chunks are best left without ``fail_*``: the merge then fails on
a finding in any chunk, and a chunk that failed anyway (a crash, a kill) still gets merged,
its numbers reported as not checked.
"""

from __future__ import annotations

import ast
import json
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
#: The counts of every report (those of :data:`STATUS_COUNTS` come with ``check_status``).
_COUNTS = ("total", "with_pin", "without_pin", "errors", "timed_out")

#: Bounds on what a report read back from XCom may hold (:meth:`AuditReport.from_xcom`); the
#: audit's own entries stay within them (texts are cut at :data:`MAX_TEXT_LENGTH`).
#: A connection id: at most Airflow's own limit, no whitespace or control characters.
MAX_CONN_ID_LENGTH = 250
#: An entry's ``message`` and a status ``reason``.
MAX_TEXT_LENGTH = 4096
#: An entry's ``error_class``: a Python class name.
MAX_ERROR_CLASS_LENGTH = 100
#: Entries of one report read back without a chunk list to bound them (a chunk report holds
#: at most its chunk's ids).
MAX_REPORT_ENTRIES = 1_000_000
#: ``plugz_conn_ids`` given as text (ample for 100,000 ids).
MAX_CONN_IDS_TEXT = 8 * 1024 * 1024

_SEPARATORS = re.compile(r"[\s,]+")
_CONN_ID = re.compile(rf"\S{{1,{MAX_CONN_ID_LENGTH}}}")
_ERROR_CLASS = re.compile(rf"[^\W\d]\w{{0,{MAX_ERROR_CLASS_LENGTH - 1}}}")
#: String literals of JSON or Python text (for counting the brackets outside them).
_KEY_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,39}")
_STRING_LITERALS = re.compile(r""""(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'""", re.DOTALL)


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
            if self.reason is not None and not isinstance(self.reason, str):
                raise ValueError(
                    f"a StatusResult's reason must be a string or None, not {_kind(self.reason)}"
                )
        elif (
            not isinstance(self.error_class, str) or not self.error_class or not isinstance(self.message, str)
        ):
            raise ValueError(
                "a StatusResult with an error needs a non-empty error_class and a message, both "
                f"strings (got {_kind(self.error_class)} and {_kind(self.message)})"
            )
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
            reason=None if status.error is None else _cut(status.error),
        )

    @classmethod
    def failure(cls, conn_id: str, err: BaseException) -> StatusResult:
        """A status call that raised: its class and a text known to be secret-free."""
        error_class, message = _error_entry(conn_id, err, "reading the status of")
        return cls(error_class=error_class, message=message)

    def __repr__(self) -> str:
        from dataclasses import fields

        from airflow_provider_plugz._redaction import mask_phones

        # Its texts (the server's reason, our message about a failure) may quote a phone: masked.
        shown = (
            f"{f.name}={mask_phones(v) if isinstance(v := getattr(self, f.name), str) else v!r}"
            for f in fields(self)
        )
        return f"StatusResult({', '.join(shown)})"

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
        """The inverse of :meth:`to_xcom`, every field checked by type and size; ValueError when
        ``xcom`` is not what it gives (saying what, never quoting a text of it)."""
        if not isinstance(xcom, dict):
            raise ValueError(f"a status entry must be a JSON object, got {_kind(xcom)}")
        if "error_class" in xcom:
            _expect_keys(xcom, {"error_class", "message"}, "a status entry with an error")
            return cls(
                error_class=_error_class(xcom["error_class"], "the status error_class"),
                message=_text(xcom["message"], "the status message"),
            )
        _expect_keys(
            xcom, {"state", "connected", "session", "smartphone_connected", "reason"}, "a status entry"
        )
        for name in ("connected", "smartphone_connected"):
            if not isinstance(xcom[name], bool):
                raise ValueError(f"a status entry's {name} must be true or false, not {_kind(xcom[name])}")
        if xcom["session"] is not None and not isinstance(xcom["session"], bool):
            raise ValueError(
                f"a status entry's session must be true, false or null, not {_kind(xcom['session'])}"
            )
        reason = xcom["reason"]
        status = cls(
            connected=xcom["connected"],
            session=xcom["session"],
            smartphone_connected=xcom["smartphone_connected"],
            reason=None if reason is None else _text(reason, "the status reason"),
        )
        state = xcom["state"]
        if not isinstance(state, str) or state not in CONNECTION_STATES:
            raise ValueError(f"a status entry's state must be one of {', '.join(CONNECTION_STATES)}")
        if status.state != state:
            raise ValueError(f"a status entry's state {state!r} does not match its fields")
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
            if (
                not isinstance(self.error_class, str)
                or not self.error_class
                or not isinstance(self.message, str)
            ):
                raise ValueError(
                    "a CheckResult without has_code needs a non-empty error_class and a message, "
                    f"both strings (got {_kind(self.error_class)} and {_kind(self.message)})"
                )
        elif not isinstance(self.has_code, bool):
            raise ValueError(f"has_code must be a bool, got {_kind(self.has_code)}")
        elif self.error_class is not None or self.message is not None or self.timed_out:
            raise ValueError("a CheckResult with has_code has no error_class, message or timed_out")
        if not isinstance(self.timed_out, bool):
            raise ValueError(f"a CheckResult's timed_out must be a bool, got {_kind(self.timed_out)}")
        if self.status is not None and not isinstance(self.status, StatusResult):
            raise ValueError(f"a CheckResult's status must be a StatusResult, got {_kind(self.status)}")
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

    def __repr__(self) -> str:
        from dataclasses import fields

        from airflow_provider_plugz._redaction import mask_phones

        # Its texts (the server's reason, our message about a failure) may quote a phone: masked.
        shown = (
            f"{f.name}={mask_phones(v) if isinstance(v := getattr(self, f.name), str) else v!r}"
            for f in fields(self)
        )
        return f"CheckResult({', '.join(shown)})"

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
        :data:`NOT_CHECKED_PREFIX`), every field checked by type and size; ValueError when
        ``xcom`` is not what it gives (saying what, never quoting a text of it)."""
        if not isinstance(xcom, dict):
            raise ValueError(f"a report entry must be a JSON object, got {_kind(xcom)}")
        status_keys = {"status"} if with_status else set()
        if "has_code" in xcom:
            _expect_keys(xcom, {"has_code", *status_keys}, "a report entry with a PIN answer")
        else:
            _expect_keys(xcom, {"error_class", "message", *status_keys}, "a report entry with an error")
        status = None
        if with_status and xcom["status"] is not None:
            status = StatusResult.from_xcom(xcom["status"])
        if "has_code" in xcom:
            if not isinstance(xcom["has_code"], bool):
                raise ValueError(f"has_code must be a bool, got {_kind(xcom['has_code'])}")
            return cls(has_code=xcom["has_code"], status=status)
        error_class = _error_class(xcom["error_class"], "error_class")
        message = _text(xcom["message"], "the message")
        timed_out = error_class == TIMED_OUT_ERROR_CLASS and message.startswith(NOT_CHECKED_PREFIX)
        return cls(error_class=error_class, message=message, timed_out=timed_out, status=status)

    @classmethod
    def not_reported(cls, chunk: int, task_id: str) -> CheckResult:
        """A number of a chunk whose task ended without a report (it failed, or was killed)."""
        return cls.not_merged(
            f"the audit of its chunk ({task_id!r}, map index {chunk}) ended without a report. See "
            "that task instance's log (it may have been killed, or run out of memory), then clear "
            "it to audit the chunk again."
        )

    @classmethod
    def not_merged(cls, why: str) -> CheckResult:
        """A number the merge has no entry it can trust for (:data:`NOT_REPORTED_ERROR_CLASS`)."""
        return cls(error_class=NOT_REPORTED_ERROR_CLASS, message=f"not checked: {why}")


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
        for conn_id, result in results.items():
            if not isinstance(conn_id, str) or not isinstance(result, CheckResult):
                raise ValueError(
                    "an AuditReport's results map connection ids (strings) to CheckResults, got "
                    f"{_kind(conn_id)} to {_kind(result)}"
                )
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
        names = _COUNTS + (STATUS_COUNTS if self.status_checked else ())
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
    def from_xcom(cls, xcom: Any, *, max_entries: int = MAX_REPORT_ENTRIES) -> AuditReport:
        """The report :meth:`to_xcom` gave, read back (a chunk's, for :meth:`merge`).

        Nothing in it is trusted: its keys must be exactly a report's, every count an integer
        (``true`` and ``1.0`` are not counts) equal to the count recomputed from the entries,
        every entry under a connection id and of the exact types :meth:`CheckResult.to_xcom`
        writes, its texts at most :data:`MAX_TEXT_LENGTH` characters, and at most
        ``max_entries`` entries.

        :raises ValueError: saying what does not fit; it quotes no entry's text.
        """
        if not isinstance(xcom, dict) or not isinstance(xcom.get("results"), dict):
            raise ValueError(
                "not a Plugz PIN audit report: expected a JSON object with 'results', got "
                f"{_kind(xcom) if not isinstance(xcom, dict) else 'an object without it'}"
            )
        status_checked = any(name in xcom for name in STATUS_COUNTS)
        names = _COUNTS + (STATUS_COUNTS if status_checked else ())
        _expect_keys(xcom, {*names, "results"}, "the report")
        for name in names:
            if type(xcom[name]) is not int:  # bool and float are not counts
                raise ValueError(f"its count {name} must be an integer, not {_kind(xcom[name])}")
        entries = xcom["results"]
        if len(entries) > max_entries:
            raise ValueError(f"it holds {len(entries):,} entries, more than the {max_entries:,} it may")
        results: dict[str, CheckResult] = {}
        for conn_id, entry in entries.items():
            if not _is_conn_id(conn_id):
                raise ValueError(f"it holds an entry under {_kind(conn_id)}, which is not a connection id")
            try:
                results[conn_id] = CheckResult.from_xcom(entry, with_status=status_checked)
            except ValueError as err:
                raise ValueError(f"the entry of {conn_id!r}: {err}") from None
        report = cls(results, status_checked=status_checked)
        wrong = [name for name in names if xcom[name] != getattr(report, name)]
        if wrong:
            raise ValueError(f"its counts do not match its entries: {', '.join(wrong)}")
        return report

    @classmethod
    def merge(
        cls,
        reports: Iterable[AuditReport | None],
        *,
        chunks: Sequence[Sequence[str]] | None = None,
        task_id: str = "audit_pins",
    ) -> AuditReport:
        """One report of the whole fleet from the reports of its chunks, counts recomputed:
        :func:`merge_chunk_reports` without the list of what it did not trust."""
        return merge_chunk_reports(reports, chunks=chunks, task_id=task_id).report

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


@dataclass(frozen=True)
class MergedReport:
    """What :func:`merge_chunk_reports` made of the chunk reports: the fleet's ``report`` and,
    one sentence each, what it refused to trust (``warnings``, for the task log)."""

    report: AuditReport
    warnings: tuple[str, ...] = ()


def merge_chunk_reports(
    reports: Iterable[AuditReport | None],
    *,
    chunks: Sequence[Sequence[str]] | None = None,
    task_id: str = "audit_pins",
) -> MergedReport:
    """One report of the whole fleet from the reports of its chunks, counts recomputed.

    ``reports`` come in map-index order (as Airflow gives a mapped task's XComs), ``None``
    where a chunk pushed nothing. With ``chunks`` (the ids each mapped task was given, in
    map-index order: what :func:`audit_chunks` returned) every id has one owner, the chunk
    that lists it, and only its owner's report speaks for it:

    - the entries come in the order of ``chunks``; ids no chunk lists never get one;
    - a report is its chunk's by position when there are as many reports as chunks, else
      (some chunk pushed nothing) by its ids, which must then all be one chunk's: a report
      holding ids of several chunks, or two reports of one chunk, are not used;
    - entries a report holds for ids of other chunks are ignored (never counted twice), and
      each id of a chunk without a usable report, or missing from its report, gets a
      ``PlugzAuditError`` "not checked" entry naming ``task_id`` and the map index, so that
      ``fail_on_error`` fails on it; each case is one of the ``warnings``.

    Without ``chunks`` the entries come in the order of ``reports``, and an id that two reports
    hold gets such a "not checked" entry: nothing says which of them owns it. The ids of a
    chunk that did not report cannot be known, so they are missing (give ``chunks``).

    :raises ValueError: the reports disagree on ``status_checked`` (one operator's chunks never
        do), ``chunks`` is not a list of disjoint lists of connection ids, or there are more
        reports than chunks.
    """
    given = list(reports)
    checked = {r.status_checked for r in given if r is not None}
    if len(checked) > 1:
        raise ValueError(
            "the chunk reports disagree on check_status: some hold each number's connection "
            "status, some do not; give every chunk the same check_status"
        )
    status_checked = checked.pop() if checked else False
    if chunks is None:
        return _merge_without_owners(given, status_checked)
    chunk_lists = check_chunks(chunks)
    if len(given) > len(chunk_lists):
        raise ValueError(
            f"there are {len(given)} chunk reports for {len(chunk_lists)} chunks: give chunks= the "
            "list the audit was expanded over, and reports= that audit's reports"
        )
    owner = {conn_id: index for index, chunk in enumerate(chunk_lists) for conn_id in chunk}
    warnings: list[str] = []
    claims = _claims(given, len(chunk_lists), owner, warnings)
    unmatched = bool(warnings)  # reports that could not be told to be any one chunk's
    results: dict[str, CheckResult] = {}
    for index, chunk in enumerate(chunk_lists):
        where = f"({task_id!r}, map index {index})"
        positions = claims.get(index, [])
        if not positions:
            if not unmatched:
                entry = CheckResult.not_reported(index, task_id)
            else:
                entry = CheckResult.not_merged(
                    f"no report could be matched to its chunk {where}: that task ended without "
                    "one, or its report held ids of other chunks too (see the merge's log). Clear "
                    "that task instance to audit the chunk again."
                )
            results.update(dict.fromkeys(chunk, entry))
            continue
        if len(positions) > 1:
            warnings.append(
                f"chunk reports {_numbers(positions)} all hold ids of chunk {index} {where} only; "
                "which one is its own cannot be told, so none of them is used for it"
            )
            entry = CheckResult.not_merged(
                f"{len(positions)} chunk reports hold entries for the ids of its chunk {where}, and "
                "which one is that chunk's own cannot be told. Clear that task instance to audit "
                "the chunk again."
            )
            results.update(dict.fromkeys(chunk, entry))
            continue
        report = given[positions[0]]
        assert report is not None  # only reports are claimed
        foreign = [c for c in report.results if owner.get(c) != index]
        if foreign:
            warnings.append(
                f"the report of chunk {index} {where} holds {len(foreign)} entr"
                f"{'y' if len(foreign) == 1 else 'ies'} for connection ids it was not given "
                f"({_ids(foreign, 10)}): ignored, only the chunk that lists an id reports on it"
            )
        lost = [c for c in chunk if c not in report.results]
        if lost:
            warnings.append(
                f"the report of chunk {index} {where} has no entry for {len(lost)} of its "
                f"{len(chunk)} connection id(s) ({_ids(lost, 10)}): reported as not checked"
            )
        absent = CheckResult.not_merged(
            f"the report of its chunk {where} has no entry for it. See that task instance's "
            "log, then clear it to audit the chunk again."
        )
        for conn_id in chunk:
            results[conn_id] = report.results.get(conn_id, absent)
    return MergedReport(AuditReport(results, status_checked=status_checked), tuple(warnings))


def _claims(
    given: list[AuditReport | None], chunks: int, owner: Mapping[str, int], warnings: list[str]
) -> dict[int, list[int]]:
    """Which chunk each report is (chunk -> positions in ``given``), for :func:`merge_chunk_reports`:
    by position when every chunk has a place in ``given``, else by its ids; a report that
    can be no one chunk's is in none (and in ``warnings``)."""
    if len(given) == chunks:  # every chunk reported (or pushed None): by position
        return {index: [index] for index, report in enumerate(given) if report is not None}
    claims: dict[int, list[int]] = {}
    missing = chunks - sum(1 for r in given if r is not None)
    for position, report in enumerate(given):
        if report is None:
            continue
        owners = sorted({owner[c] for c in report.results if c in owner})
        if len(owners) == 1:
            claims.setdefault(owners[0], []).append(position)
            continue
        holds = "no id of any chunk" if not owners else f"ids of chunks {_numbers(owners)}"
        warnings.append(
            f"chunk report {position} (in map-index order) holds {holds}; with {missing} chunk "
            "report(s) missing, which chunk it is cannot be told, so none of its entries is used"
        )
    return claims


def _merge_without_owners(given: list[AuditReport | None], status_checked: bool) -> MergedReport:
    """:func:`merge_chunk_reports` without ``chunks``: an id two reports hold is not trusted."""
    holders: dict[str, list[int]] = {}
    for position, report in enumerate(given):
        for conn_id in () if report is None else report.results:
            holders.setdefault(conn_id, []).append(position)
    results: dict[str, CheckResult] = {}
    disputed: list[str] = []
    for conn_id, positions in holders.items():
        if len(positions) == 1:
            report = given[positions[0]]
            assert report is not None
            results[conn_id] = report.results[conn_id]
            continue
        disputed.append(conn_id)
        results[conn_id] = CheckResult.not_merged(
            f"chunk reports {_numbers(positions)} each hold an entry for it, and without the "
            "chunk list the merge cannot tell which chunk owns it. Give PlugzAuditMergeOperator "
            "chunks= (what the audit was expanded over)."
        )
    warnings = []
    if disputed:
        warnings.append(
            f"{len(disputed)} connection id(s) are in more than one chunk report ({_ids(disputed, 10)}): "
            "reported as not checked; give chunks= so the merge knows which chunk owns each id"
        )
    return MergedReport(AuditReport(results, status_checked=status_checked), tuple(warnings))


def check_chunks(value: Any) -> list[list[str]]:
    """The merge's ``chunks``: a list (a lazy XCom sequence too) of non-empty lists of
    connection ids, no id in two places; a copy.

    :raises ValueError: saying which chunk is wrong and how (no id is quoted unless valid).
    """
    from collections.abc import Iterable as _Iterable

    if isinstance(value, (str, bytes, dict)) or not isinstance(value, _Iterable):
        raise ValueError(
            "chunks must be the list of id lists the audit was expanded over (what audit_chunks "
            f"returned), got {_kind(value)}"
        )
    chunks: list[list[str]] = []
    owner: dict[str, int] = {}
    for index, chunk in enumerate(value):
        if not isinstance(chunk, (list, tuple)) or not chunk:
            raise ValueError(f"chunk {index} must be a non-empty list of connection ids, got {_kind(chunk)}")
        for conn_id in chunk:
            if not _is_conn_id(conn_id):
                raise ValueError(f"chunk {index} holds {_kind(conn_id)}, which is not a connection id")
            if conn_id in owner:
                twice = (
                    f"chunk {index} lists"
                    if owner[conn_id] == index
                    else (f"chunks {owner[conn_id]} and {index} both list")
                )
                raise ValueError(
                    f"{twice} {conn_id!r}: each id belongs to one chunk only (give chunks= what "
                    "audit_chunks returned)"
                )
            owner[conn_id] = index
        chunks.append(list(chunk))
    return chunks


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
        chunks = _chunk_lists(self.chunks)
        xcoms = _report_list(self.reports)
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

    :raises PlugzConfigurationError: the ids are not valid, or ``chunk_size``/``max_map_length``
        is not an integer >= 1.
    """
    from airflow_provider_plugz.exceptions import PlugzConfigurationError
    from airflow_provider_plugz.hooks.fleet import chunked

    conn_ids = conn_id_list(plugz_conn_ids)
    if max_map_length is None:
        from airflow.configuration import conf

        max_map_length = conf.getint("core", "max_map_length")
    try:
        chunks = chunked(conn_ids, chunk_size, max_chunks=max_map_length)
    except ValueError as err:
        raise PlugzConfigurationError(f"Plugz PIN audit chunks: {err}") from None
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


def _chunk_lists(value: Any) -> list[list[str]] | None:
    """The merge's ``chunks`` after templating (see :func:`check_chunks`), or None."""
    if value is None:
        return None
    from airflow_provider_plugz.exceptions import PlugzConfigurationError

    try:
        return check_chunks(value)
    except ValueError as err:
        raise PlugzConfigurationError(f"Plugz PIN audit merge: {err}.") from None


def _report_list(value: Any) -> list[Any]:
    """The merge's ``reports`` after templating: a list (a lazy XCom sequence too) of reports."""
    from collections.abc import Iterable as _Iterable

    if value is None:  # no chunk pushed a report
        return []
    if isinstance(value, (str, bytes, dict)) or not isinstance(value, _Iterable):
        from airflow_provider_plugz.exceptions import PlugzConfigurationError

        raise PlugzConfigurationError(
            "Plugz PIN audit merge: reports must be the chunk reports, "
            f"<the mapped audit>.output[{REPORT_XCOM_KEY!r}], got {_kind(value)}."
        )
    return list(value)


def _expect_keys(xcom: dict[Any, Any], keys: set[str], what: str) -> None:
    """ValueError unless ``xcom`` has exactly ``keys``; quotes only short key names."""
    if set(xcom) == keys:
        return
    missing = sorted(keys.difference(xcom))
    extra = [key for key in xcom if key not in keys]
    parts = []
    if missing:
        parts.append(f"lacks {', '.join(map(repr, missing))}")
    if extra:
        named = [repr(key) for key in extra[:5] if isinstance(key, str) and _KEY_NAME.fullmatch(key)]
        others = len(extra) - len(named)
        shown = ", ".join([*named, *([f"{others} other(s)"] if others else [])])
        parts.append(f"has unexpected keys ({shown})")
    raise ValueError(f"{what} {' and '.join(parts)}; expected exactly {', '.join(sorted(keys))}")


def _kind(value: Any) -> str:
    """What ``value`` is, for a message, never what it holds (it may be a phone number)."""
    if value is None:
        return "null"
    if isinstance(value, str):
        return f"a string of {len(value):,} character(s)"
    name = type(value).__name__
    return f"{'an' if name[:1] in 'aeiou' else 'a'} {name}"


def _text(value: Any, what: str) -> str:
    """A report's text field: a string of at most :data:`MAX_TEXT_LENGTH` characters."""
    if not isinstance(value, str) or len(value) > MAX_TEXT_LENGTH:
        raise ValueError(
            f"{what} must be a string of at most {MAX_TEXT_LENGTH:,} characters, got {_kind(value)}"
        )
    return value


def _error_class(value: Any, what: str) -> str:
    """A report's ``error_class``: a Python class name."""
    if not isinstance(value, str) or not _ERROR_CLASS.fullmatch(value):
        raise ValueError(
            f"{what} must be a Python class name (at most {MAX_ERROR_CLASS_LENGTH} letters, digits "
            f"or _), got {_kind(value)}"
        )
    return value


def _cut(text: str) -> str:
    """``text`` within :data:`MAX_TEXT_LENGTH` characters, so that its report reads back."""
    return text if len(text) <= MAX_TEXT_LENGTH else text[: MAX_TEXT_LENGTH - 1] + "…"


def _is_conn_id(value: Any) -> bool:
    """A connection id: a string of 1 to 250 printable characters, none of them whitespace."""
    return isinstance(value, str) and bool(_CONN_ID.fullmatch(value)) and value.isprintable()


def _numbers(items: list[int]) -> str:
    """``0 and 1``, ``0, 1 and 3``."""
    text = [str(item) for item in items]
    return text[0] if len(text) == 1 else f"{', '.join(text[:-1])} and {text[-1]}"


def conn_id_list(value: Any) -> list[str]:
    """Validate ``plugz_conn_ids`` after templating: a non-empty list of ids, duplicates dropped.

    A string is read as a JSON or Python literal when it starts with ``[`` (or ``{``), otherwise as
    ids separated by commas or whitespace (Airflow connection ids contain neither). Text is at
    most :data:`MAX_CONN_IDS_TEXT` characters and a literal a flat list, checked before it is
    parsed; each id is a string of 1 to :data:`MAX_CONN_ID_LENGTH` printable characters
    without whitespace (surrounding whitespace is dropped).

    :raises PlugzConfigurationError: saying what is wrong; it quotes none of the value (a
        wrongly templated list may hold phone numbers).
    """
    from airflow_provider_plugz.exceptions import PlugzConfigurationError

    items: Any = value
    if isinstance(value, str):
        text = value.strip()
        if len(text) > MAX_CONN_IDS_TEXT:
            raise PlugzConfigurationError(
                f"plugz_conn_ids is {len(text):,} characters of text, more than {MAX_CONN_IDS_TEXT:,}: "
                "check the DAG param or Variable it is rendered from, or audit such a fleet in chunks"
            )
        if text[:1] in ("[", "{"):
            items = _list_literal(text)
        else:
            items = [part for part in _SEPARATORS.split(text) if part]
    if not isinstance(items, (list, tuple)):
        raise PlugzConfigurationError(
            "plugz_conn_ids must be a list of Plugz connection ids (or a string holding one), "
            f"got {_kind(items)}"
        )
    conn_ids: dict[str, None] = {}
    for number, item in enumerate(items, 1):
        conn_id = item.strip() if isinstance(item, str) else item
        if not _is_conn_id(conn_id):
            if not isinstance(item, str):
                why = _kind(item)
            elif not conn_id:
                why = "empty"
            elif len(conn_id) > MAX_CONN_ID_LENGTH:
                why = f"{len(conn_id):,} characters long"
            else:
                why = "holding whitespace or control characters"
            raise PlugzConfigurationError(
                "plugz_conn_ids must hold non-empty strings only, each an Airflow connection id "
                f"(at most {MAX_CONN_ID_LENGTH} characters, no whitespace or control characters); "
                f"item {number} is {why}"
            )
        conn_ids[conn_id] = None
    if not conn_ids:
        raise PlugzConfigurationError(
            "plugz_conn_ids is empty: give at least one Plugz connection id (check the DAG param "
            "or Variable it is rendered from)"
        )
    return list(conn_ids)


def _list_literal(text: str) -> Any:
    """``text`` (at most :data:`MAX_CONN_IDS_TEXT` characters) as JSON or a Python literal,
    refused before parsing when it nests: a list of ids is flat, and deep nesting would
    exhaust the parser's stack."""
    from airflow_provider_plugz.exceptions import PlugzConfigurationError

    outside = _STRING_LITERALS.sub("", text)
    if sum(outside.count(bracket) for bracket in "[{(") > 1:
        raise PlugzConfigurationError(
            "plugz_conn_ids must be a flat list of Plugz connection ids, but its text nests lists, "
            "objects or tuples"
        )
    try:
        return json.loads(text)
    except (ValueError, RecursionError, MemoryError):
        pass
    try:
        return ast.literal_eval(text)  # "['a', 'b']": how Jinja renders a list as text
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise PlugzConfigurationError(
            "plugz_conn_ids looks like a list but is neither JSON nor a Python literal"
        ) from None


def timeout_seconds(value: Any) -> float:
    """Validate ``audit_timeout``: seconds or a ``timedelta``, within :mod:`.._intervals`' bounds.

    :raises PlugzConfigurationError: saying what is wrong, when the DAG file is parsed.
    """
    from airflow_provider_plugz import _intervals

    return _intervals.seconds(
        value,
        name="audit_timeout",
        maximum=_intervals.MAX_TIMEOUT,
        hint="give how long the whole audit may take, e.g. timedelta(minutes=30) (the default).",
    )


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
    if not _ERROR_CLASS.fullmatch(name):  # never in practice; kept so the report reads back
        name = "UnexpectedError"
    if _is_reportable(err):
        return name, _cut(str(err))
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
