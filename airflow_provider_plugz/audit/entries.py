"""One number's entry in the report: :class:`CheckResult` (its PIN answer, or why there is none)
with, under ``check_status``, a :class:`StatusResult` (its connection state, or why it could not
be read); each to and from its XCom form. And how an exception becomes an entry
(:func:`error_entry`): its class, and a text known to hold no secret.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_plugz._vocabulary import CONNECTION_STATES, connection_state, describe_state
from airflow_provider_plugz.audit.texts import seconds_text
from airflow_provider_plugz.audit.xcom import (
    ERROR_CLASS_PATTERN,
    checked_error_class,
    checked_text,
    cut,
    expect_keys,
    kind,
)
from airflow_provider_plugz.exceptions import PlugzAuditError, PlugzError, PlugzTimeoutError

if TYPE_CHECKING:
    from airflow_provider_plugz.hooks.plugz import InstanceStatus

#: ``error_class`` of a number the audit did not get to check before its deadline.
TIMED_OUT_ERROR_CLASS = PlugzTimeoutError.__name__
#: How the message of such a number starts: how a report read back from XCom
#: (:meth:`AuditReport.from_xcom`) tells it from a timeout of one HTTP attempt.
NOT_CHECKED_PREFIX = "not checked within the audit's "
#: ``error_class`` of a number whose chunk task ended without a report (merged reports only).
NOT_REPORTED_ERROR_CLASS = PlugzAuditError.__name__


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
                raise ValueError(f"a StatusResult's reason must be a string or None, not {kind(self.reason)}")
        elif (
            not isinstance(self.error_class, str) or not self.error_class or not isinstance(self.message, str)
        ):
            raise ValueError(
                "a StatusResult with an error needs a non-empty error_class and a message, both "
                f"strings (got {kind(self.error_class)} and {kind(self.message)})"
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
            reason=None if status.error is None else cut(status.error),
        )

    @classmethod
    def failure(cls, conn_id: str, err: BaseException) -> StatusResult:
        """A status call that raised: its class and a text known to be secret-free."""
        error_class, message = error_entry(conn_id, err, "reading the status of")
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
        return describe_state(state, self.reason)

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
            raise ValueError(f"a status entry must be a JSON object, got {kind(xcom)}")
        if "error_class" in xcom:
            expect_keys(xcom, {"error_class", "message"}, "a status entry with an error")
            return cls(
                error_class=checked_error_class(xcom["error_class"], "the status error_class"),
                message=checked_text(xcom["message"], "the status message"),
            )
        expect_keys(
            xcom, {"state", "connected", "session", "smartphone_connected", "reason"}, "a status entry"
        )
        for name in ("connected", "smartphone_connected"):
            if not isinstance(xcom[name], bool):
                raise ValueError(f"a status entry's {name} must be true or false, not {kind(xcom[name])}")
        if xcom["session"] is not None and not isinstance(xcom["session"], bool):
            raise ValueError(
                f"a status entry's session must be true, false or null, not {kind(xcom['session'])}"
            )
        reason = xcom["reason"]
        status = cls(
            connected=xcom["connected"],
            session=xcom["session"],
            smartphone_connected=xcom["smartphone_connected"],
            reason=None if reason is None else checked_text(reason, "the status reason"),
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
        if self.timed_out and self.status is not None:
            raise ValueError("a CheckResult that timed out has no status")

    @classmethod
    def pin(cls, has_code: bool, *, status: StatusResult | None = None) -> CheckResult:
        """A number that was checked: whether its WhatsApp account has a PIN."""
        return cls(has_code=has_code, status=status)

    @classmethod
    def failure(cls, conn_id: str, err: BaseException, *, status: StatusResult | None = None) -> CheckResult:
        """A check that raised: its class and a text known to be secret-free."""
        error_class, message = error_entry(conn_id, err, "checking")
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
                f"{NOT_CHECKED_PREFIX}{seconds_text(deadline_seconds)} deadline; {what}. Raise "
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
            raise ValueError(f"a report entry must be a JSON object, got {kind(xcom)}")
        status_keys = {"status"} if with_status else set()
        if "has_code" in xcom:
            expect_keys(xcom, {"has_code", *status_keys}, "a report entry with a PIN answer")
        else:
            expect_keys(xcom, {"error_class", "message", *status_keys}, "a report entry with an error")
        status = None
        if with_status and xcom["status"] is not None:
            status = StatusResult.from_xcom(xcom["status"])
        if "has_code" in xcom:
            if not isinstance(xcom["has_code"], bool):
                raise ValueError(f"has_code must be a bool, got {kind(xcom['has_code'])}")
            return cls(has_code=xcom["has_code"], status=status)
        error_class = checked_error_class(xcom["error_class"], "error_class")
        message = checked_text(xcom["message"], "the message")
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


def error_entry(conn_id: str, err: BaseException, doing: str) -> tuple[str, str]:
    """An exception as a report entry's ``(error_class, message)``, with no secret in the message."""
    name = type(err).__name__
    if not ERROR_CLASS_PATTERN.fullmatch(name):  # never in practice; kept so the report reads back
        name = "UnexpectedError"
    if is_reportable(err):
        return name, cut(str(err))
    # Anything else is a bug somewhere; its text may quote a URL (and so the instance
    # token): keep only the class and where it was raised.
    return name, (
        f"unexpected {name}{raised_at(err)} while {doing} connection {conn_id!r}; "
        "this is not a Plugz error: please report it to airflow-provider-plugz."
    )


def is_reportable(err: BaseException) -> bool:
    """Whether ``err``'s text may go into the report as it is."""
    # The same class on Airflow 2 and 3 (3 re-exports the task SDK's from here).
    from airflow.exceptions import AirflowNotFoundException  # type: ignore[attr-defined]

    # PlugzError texts are redacted at the source; Airflow's "conn_id `x` isn't defined"
    # names only the connection id.
    return isinstance(err, (PlugzError, AirflowNotFoundException))


def raised_at(err: BaseException) -> str:
    """`` in module.function`` of the innermost frame, with no values from it."""
    tb = err.__traceback__
    if tb is None:
        return ""
    while tb.tb_next is not None:
        tb = tb.tb_next
    code = tb.tb_frame.f_code
    module = tb.tb_frame.f_globals.get("__name__", "?")
    return f" in {module}.{code.co_name}"
