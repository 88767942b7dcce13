"""One number's entry in the report: :class:`CheckResult` (its PIN answer, or why there is none)
with a column (:class:`~airflow_provider_plugz.audit.columns.FactResult`) per other fact the audit
checked - under ``check_status`` a :class:`StatusResult` (its connection state, or why it could
not be read); each to and from its XCom form. And how an exception becomes an entry
(:func:`error_entry`): its class, and a text known to hold no secret.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_plugz.audit.columns import FactResult, StatusResult
from airflow_provider_plugz.audit.errors import error_entry, is_reportable, raised_at
from airflow_provider_plugz.audit.texts import seconds_text
from airflow_provider_plugz.audit.xcom import (
    checked_error_class,
    checked_text,
    expect_keys,
    kind,
)
from airflow_provider_plugz.endpoints import FACTS, PIN
from airflow_provider_plugz.exceptions import PlugzAuditError, PlugzTimeoutError

__all__ = [
    "NOT_CHECKED_PREFIX",
    "NOT_REPORTED_ERROR_CLASS",
    "TIMED_OUT_ERROR_CLASS",
    "CheckResult",
    "FactResult",
    "StatusResult",
    "error_entry",
    "is_reportable",
    "raised_at",
]

#: ``error_class`` of a number the audit did not get to check before its deadline.
TIMED_OUT_ERROR_CLASS = PlugzTimeoutError.__name__
#: How the message of such a number starts: how a report read back from XCom
#: (:meth:`AuditReport.from_xcom`) tells it from a timeout of one HTTP attempt.
NOT_CHECKED_PREFIX = "not checked within the audit's "
#: ``error_class`` of a number whose chunk task ended without a report (merged reports only).
NOT_REPORTED_ERROR_CLASS = PlugzAuditError.__name__


@dataclass(frozen=True)
class CheckResult:
    """One connection's entry in the report: its PIN answer, or why there is none, and a column
    per other fact the audit checked (with ``check_status``, its :class:`StatusResult`).

    Exactly one of ``has_code`` and ``error_class`` is set; ``message`` goes with
    ``error_class`` and never holds a secret. ``timed_out`` marks a number the audit's own
    deadline came before (a ``PlugzTimeoutError`` of one HTTP attempt is an ordinary error).
    ``columns`` maps a fact's name to its :class:`FactResult`, or to None when it was not read:
    the PIN check failed in a way the other calls would too, or the deadline came first.
    ``status`` is the connection fact's column (``columns["connection"]``; giving either sets both).
    Build one with :meth:`pin`, :meth:`failure` or :meth:`not_checked`.
    """

    has_code: bool | None = None
    error_class: str | None = None
    message: str | None = None
    timed_out: bool = False
    status: StatusResult | None = field(default=None, compare=False)
    columns: Mapping[str, FactResult | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.has_code is None:
            if (
                not isinstance(self.error_class, str)
                or not self.error_class
                or not isinstance(self.message, str)
            ):
                raise ValueError(
                    "a CheckResult without has_code needs a non-empty error_class and a message, "
                    f"both strings (got {kind(self.error_class)} and {kind(self.message)})"
                )
        elif not isinstance(self.has_code, bool):
            raise ValueError(f"has_code must be a bool, got {kind(self.has_code)}")
        elif self.error_class is not None or self.message is not None or self.timed_out:
            raise ValueError("a CheckResult with has_code has no error_class, message or timed_out")
        if not isinstance(self.timed_out, bool):
            raise ValueError(f"a CheckResult's timed_out must be a bool, got {kind(self.timed_out)}")
        if self.status is not None and not isinstance(self.status, StatusResult):
            raise ValueError(f"a CheckResult's status must be a StatusResult, got {kind(self.status)}")
        columns = dict(self.columns) if isinstance(self.columns, Mapping) else None
        if columns is None:
            raise ValueError(
                f"a CheckResult's columns must map fact names to columns, got {kind(self.columns)}"
            )
        if self.status is not None:
            if columns.get("connection") not in (None, self.status):
                raise ValueError("a CheckResult's status and columns['connection'] differ")
            columns["connection"] = self.status
        for name, column in columns.items():
            if name not in FACTS or name == PIN.name:
                raise ValueError(
                    f"a CheckResult has no column {kind(name) if not isinstance(name, str) else repr(name)}"
                )
            if column is not None and (not isinstance(column, FactResult) or column.fact != name):
                raise ValueError(
                    f"a CheckResult's {name} column must be a {name} FactResult, got {kind(column)}"
                )
        if self.timed_out and any(column is not None for column in columns.values()):
            raise ValueError("a CheckResult that timed out has no status or other column")
        # A column not read is no column: None and absent are one (what XCom gives back).
        ordered = {name: columns[name] for name in FACTS if columns.get(name) is not None}
        object.__setattr__(self, "columns", ordered)
        object.__setattr__(self, "status", ordered.get("connection"))

    @classmethod
    def pin(
        cls,
        has_code: bool,
        *,
        status: StatusResult | None = None,
        columns: Mapping[str, FactResult | None] | None = None,
    ) -> CheckResult:
        """A number that was checked: whether its WhatsApp account has a PIN."""
        return cls(has_code=has_code, status=status, columns=columns or {})

    @classmethod
    def failure(
        cls,
        conn_id: str,
        err: BaseException,
        *,
        status: StatusResult | None = None,
        columns: Mapping[str, FactResult | None] | None = None,
    ) -> CheckResult:
        """A check that raised: its class and a text known to be secret-free."""
        error_class, message = error_entry(conn_id, err, PIN.doing)
        return cls(error_class=error_class, message=message, status=status, columns=columns or {})

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
                f"{NOT_CHECKED_PREFIX}{seconds_text(deadline_seconds)} deadline; {what}. Raise "
                "audit_timeout (and the task's execution_timeout, which caps it) or max_concurrency, "
                "or check why this number's Plugz instance answers slowly."
            ),
            timed_out=True,
        )

    def __repr__(self) -> str:
        from airflow_provider_plugz._redaction import mask_phones

        # Its texts (our message about a failure) may quote a phone: masked; columns mask their own.
        shown = [
            f"{name}={mask_phones(v) if isinstance(v := getattr(self, name), str) else v!r}"
            for name in ("has_code", "error_class", "message", "timed_out")
        ]
        shown += [f"{name}={column!r}" for name, column in self.columns.items()]
        return f"CheckResult({', '.join(shown)})"

    @property
    def severity(self) -> int:
        """0 could not be checked, 1 a problem (no PIN, not connected, ...), 2 all well: the log
        lists problems first."""
        levels = [0 if self.has_code is None else 1 if PIN.is_bad(self.has_code) else 2]
        for name, column in self.columns.items():
            if column is not None:
                state = column.state
                levels.append(0 if state is None else 1 if FACTS[name].is_bad(state) else 2)
        return min(levels)

    def describe(self) -> str:
        """The result in a few words, for the task log."""
        if self.has_code is not None:
            text = PIN.describe({"has_code": self.has_code})
        else:
            text = f"ERROR {self.error_class}: {self.message}"
        return "; ".join(
            [text, *(column.describe() for column in self.columns.values() if column is not None)]
        )

    def to_xcom(self, *, with_status: bool = False, checks: tuple[str, ...] = ()) -> dict[str, Any]:
        """``{"has_code": bool}`` or ``{"error_class": str, "message": str}``, then per fact in
        ``checks`` (``with_status``: the connection) its column under the fact's key:
        :meth:`FactResult.to_xcom`, or None when it was not read."""
        if self.has_code is not None:
            xcom: dict[str, Any] = {"has_code": self.has_code}
        else:
            xcom = {"error_class": self.error_class, "message": self.message}
        for name in _checks(checks, with_status):
            column = self.columns.get(name)
            xcom[FACTS[name].column] = None if column is None else column.to_xcom()
        return xcom

    @classmethod
    def from_xcom(cls, xcom: Any, *, with_status: bool = False, checks: tuple[str, ...] = ()) -> CheckResult:
        """The inverse of :meth:`to_xcom` (``timed_out`` read from the message, see
        :data:`NOT_CHECKED_PREFIX`), every field checked by type and size; ValueError when
        ``xcom`` is not what it gives (saying what, never quoting a text of it)."""
        if not isinstance(xcom, dict):
            raise ValueError(f"a report entry must be a JSON object, got {kind(xcom)}")
        names = _checks(checks, with_status)
        column_keys = {FACTS[name].column for name in names}
        if "has_code" in xcom:
            expect_keys(xcom, {"has_code", *column_keys}, "a report entry with a PIN answer")
        else:
            expect_keys(xcom, {"error_class", "message", *column_keys}, "a report entry with an error")
        columns: dict[str, FactResult | None] = {}
        for name in names:
            value = xcom[FACTS[name].column]
            columns[name] = None if value is None else FactResult.from_xcom(FACTS[name], value)
        if "has_code" in xcom:
            return cls(has_code=PIN.read_fields({"has_code": xcom["has_code"]})["has_code"], columns=columns)
        error_class = checked_error_class(xcom["error_class"], "error_class")
        message = checked_text(xcom["message"], "the message")
        timed_out = error_class == TIMED_OUT_ERROR_CLASS and message.startswith(NOT_CHECKED_PREFIX)
        return cls(error_class=error_class, message=message, timed_out=timed_out, columns=columns)

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


def _checks(checks: tuple[str, ...], with_status: bool) -> list[str]:
    """The facts of ``checks`` (and the connection, ``with_status``) in :data:`FACTS` order."""
    wanted = {*checks, *(("connection",) if with_status else ())}
    return [name for name in FACTS if name in wanted and name != PIN.name]
