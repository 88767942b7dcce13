"""One number's column for one fact in the report (:class:`FactResult`): what the fact's call
answered, as the fact's JSON fields, or why it could not be read. Written once for every fact
declared in :data:`airflow_provider_plugz.endpoints.FACTS`; :class:`StatusResult` is the
connection status's column under the name and constructor it has always had.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_plugz._declarations import expect_keys, kind
from airflow_provider_plugz._vocabulary import connection_state
from airflow_provider_plugz.audit.errors import error_entry
from airflow_provider_plugz.audit.xcom import checked_error_class, checked_text

if TYPE_CHECKING:
    from airflow_provider_plugz._declarations import Fact, State
    from airflow_provider_plugz.hooks.plugz import InstanceStatus


def _fact(name: str) -> Fact[Any]:
    from airflow_provider_plugz.endpoints import fact

    return fact(name)


@dataclass(frozen=True, repr=False)
class FactResult:
    """One number's column for the fact named ``fact``: its ``fields`` (the fact's JSON, checked
    by the fact's own rules) or ``error_class`` and a ``message`` that never holds a secret.
    Build one with :meth:`of` or :meth:`failure`; :meth:`from_xcom` reads one back."""

    fact: str
    fields: Mapping[str, Any] | None = None
    error_class: str | None = None
    message: str | None = None

    #: Which class holds which fact's column (:class:`StatusResult` the connection's).
    _classes: ClassVar[dict[str, type[FactResult]]] = {}

    def __post_init__(self) -> None:
        declared = _fact(self.fact)  # KeyError for an unknown fact
        what = f"a {type(self).__name__} ({declared.name})"
        if self.error_class is None:
            if self.message is not None:
                raise ValueError(f"{what} with an answer has no message")
            fields = declared.read_fields(
                dict(self.fields) if isinstance(self.fields, Mapping) else self.fields
            )
            object.__setattr__(self, "fields", fields)  # a copy: no longer the caller's
        elif (
            not isinstance(self.error_class, str) or not self.error_class or not isinstance(self.message, str)
        ):
            raise ValueError(
                f"{what} with an error needs a non-empty error_class and a message, "
                f"both strings (got {kind(self.error_class)} and {kind(self.message)})"
            )
        elif self.fields is not None:
            raise ValueError(f"{what} with an error has no fields")

    @staticmethod
    def _build(
        fact: str, fields: Mapping[str, Any] | None, error_class: str | None, message: str | None
    ) -> FactResult:
        """A column of the class that holds ``fact``'s columns."""
        cls = FactResult._classes.get(fact, FactResult)
        column = object.__new__(cls)
        FactResult.__init__(column, fact, fields, error_class, message)
        return column

    @classmethod
    def of(cls, fact: Fact[Any], result: Any) -> FactResult:
        """The column of a call of ``fact`` that answered ``result``."""
        return cls._build(fact.name, fact.fields(result), None, None)

    @classmethod
    def failure(cls, fact: Fact[Any], conn_id: str, err: BaseException) -> FactResult:
        """The column of a call of ``fact`` that raised: its class and a secret-free text."""
        error_class, message = error_entry(conn_id, err, fact.doing)
        return cls._build(fact.name, None, error_class, message)

    @classmethod
    def from_xcom(cls, fact: Fact[Any], xcom: Any) -> FactResult:
        """The inverse of :meth:`to_xcom`, every field checked by type and size; ValueError when
        ``xcom`` is not what it gives (saying what, never quoting a text of it)."""
        if isinstance(xcom, dict) and "error_class" in xcom:
            expect_keys(xcom, {"error_class", "message"}, f"a {fact.column} entry with an error")
            return cls._build(
                fact.name,
                None,
                checked_error_class(xcom["error_class"], f"the {fact.column} error_class"),
                checked_text(xcom["message"], f"the {fact.column} message"),
            )
        return cls._build(fact.name, fact.read_fields(xcom), None, None)

    def __repr__(self) -> str:
        from airflow_provider_plugz._redaction import mask_phones

        # Its texts (a server's reason, our message about a failure) may quote a phone: masked.
        shown = (
            f"{name}={mask_phones(value) if isinstance(value, str) else value!r}"
            for name, value in self._shown_fields()
        )
        return f"{type(self).__name__}({', '.join(shown)})"

    def _shown_fields(self) -> list[tuple[str, Any]]:
        return [
            ("fact", self.fact),
            *((self.fields or {}).items()),
            ("error_class", self.error_class),
            ("message", self.message),
        ]

    @property
    def state(self) -> State | None:
        """The fact's state; None when the call failed."""
        if self.fields is None:
            return None
        return _fact(self.fact).state(self.fields)

    def describe(self) -> str:
        """The column in a few words, for the task log."""
        declared = _fact(self.fact)
        if self.fields is None:
            return f"{declared.column} ERROR {self.error_class}: {self.message}"
        return declared.describe(self.fields)

    def to_xcom(self) -> dict[str, Any]:
        """The fact's fields, or ``{"error_class", "message"}``."""
        if self.fields is None:
            return {"error_class": self.error_class, "message": self.message}
        return dict(self.fields)


class StatusResult(FactResult):
    """One number's connection state (``GET .../status``), or why it could not be read: the
    connection fact's column.

    Either the answer - ``connected``, ``session`` (None where the server does not send it),
    ``smartphone_connected`` and ``reason``, the server's own text about it (Plugz's ``error``
    field, state rather than failure, e.g. "You need to restore the session.") - or
    ``error_class`` and a ``message`` that never holds a secret. Build one with :meth:`of` or
    :meth:`failure`, or from its fields.
    """

    def __init__(
        self,
        connected: bool | None = None,
        session: bool | None = None,
        smartphone_connected: bool | None = None,
        reason: str | None = None,
        error_class: str | None = None,
        message: str | None = None,
    ) -> None:
        fields: dict[str, Any] | None = None
        if error_class is None:
            if (
                not isinstance(connected, bool)
                or not isinstance(smartphone_connected, bool)
                or not (session is None or isinstance(session, bool))
            ):
                raise ValueError(
                    "a StatusResult without error_class needs connected and smartphone_connected "
                    "as bools (and session a bool or None)"
                )
            if reason is not None and not isinstance(reason, str):
                raise ValueError(f"a StatusResult's reason must be a string or None, not {kind(reason)}")
            fields = {
                "state": connection_state(connected, session, smartphone_connected),
                "connected": connected,
                "session": session,
                "smartphone_connected": smartphone_connected,
                "reason": reason,
            }
        elif any(v is not None for v in (connected, session, smartphone_connected, reason)):
            raise ValueError(
                "a StatusResult with an error has no connected, session, smartphone_connected or reason"
            )
        super().__init__("connection", fields, error_class, message)

    @classmethod
    def of(cls, fact: Any, result: Any = None) -> FactResult:
        """A status that was read: ``StatusResult.of(status)`` (or, as every column,
        ``of(CONNECTION, status)``)."""
        if result is None:
            fact, result = _fact("connection"), fact
        return super().of(fact, result)

    @classmethod
    def failure(cls, fact: Any, conn_id: Any, err: Any = None) -> FactResult:
        """A status call that raised: ``StatusResult.failure(conn_id, err)`` (or, as every
        column, ``failure(CONNECTION, conn_id, err)``)."""
        if err is None:
            fact, conn_id, err = _fact("connection"), fact, conn_id
        return super().failure(fact, conn_id, err)

    @classmethod
    def from_xcom(cls, fact: Any, xcom: Any = None) -> FactResult:
        """``StatusResult.from_xcom(xcom)`` (or, as every column, ``from_xcom(CONNECTION, xcom)``)."""
        if xcom is None and not hasattr(fact, "read_fields"):
            fact, xcom = _fact("connection"), fact
        return super().from_xcom(fact, xcom)

    def _field(self, name: str) -> Any:
        return None if self.fields is None else self.fields[name]

    @property
    def connected(self) -> bool | None:
        return self._field("connected")  # type: ignore[no-any-return]

    @property
    def session(self) -> bool | None:
        return self._field("session")  # type: ignore[no-any-return]

    @property
    def smartphone_connected(self) -> bool | None:
        return self._field("smartphone_connected")  # type: ignore[no-any-return]

    @property
    def reason(self) -> str | None:
        return self._field("reason")  # type: ignore[no-any-return]

    def _shown_fields(self) -> list[tuple[str, Any]]:
        return [
            (name, getattr(self, name))
            for name in ("connected", "session", "smartphone_connected", "reason", "error_class", "message")
        ]


FactResult._classes["connection"] = StatusResult


def status_result(status: InstanceStatus) -> FactResult:
    """The connection column of a status that was read."""
    return FactResult.of(_fact("connection"), status)
