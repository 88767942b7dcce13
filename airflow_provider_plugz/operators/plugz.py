"""Operators that read a Plugz instance's PIN status, connection state and queue, and set its PIN.

Cheap to import: DAG files import this on every parse, so the hook (and ``requests``)
is loaded only when a task runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_plugz._compat import BaseBranchOperator, BaseOperator
from airflow_provider_plugz._vocabulary import CONNECTED, instance_state
from airflow_provider_plugz.connection import DEFAULT_CONN_ID
from airflow_provider_plugz.operators._base import PlugzHookMixin

# Where a PIN may be stored, and whether Airflow shows it there, is its own module.
from airflow_provider_plugz.operators._pin_storage import DOCUMENTED_PIN_EXTRA, read_pin

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from airflow.sdk import Context

#: XCom key under which every Plugz task also publishes the PIN state it saw.
HAS_CODE_XCOM_KEY = "has_code"


class PlugzPinStatusOperator(PlugzHookMixin, BaseOperator):
    """Check whether the instance's WhatsApp account has a two-step-verification PIN.

    Returns ``has_code`` (a bool), so it lands in XCom as ``return_value``.

    :param plugz_conn_id: the Plugz connection (templated).
    """

    template_fields: Sequence[str] = PlugzHookMixin.template_fields
    ui_color = "#25d366"

    def __init__(self, *, plugz_conn_id: str = DEFAULT_CONN_ID, **kwargs: Any) -> None:
        super().__init__(plugz_conn_id=plugz_conn_id, **kwargs)

    def execute(self, context: Context) -> bool:
        has_code = self.hook.get_pin_status().has_code
        self.log.info("Plugz connection %r: PIN set = %s", self.plugz_conn_id, has_code)
        return has_code


class PlugzInstanceStatusOperator(PlugzHookMixin, BaseOperator):
    """Read whether the number is connected (``GET .../status``) and push that to XCom.

    Returns (XCom ``return_value``) a JSON-safe dict: ``{"connected": bool, "session": bool |
    None, "smartphone_connected": bool, "error": str | None}``. ``session`` is None where the
    server does not send it; ``error`` is the server's reason when something is not connected
    (e.g. "You need to restore the session."): state, not a failure. A disconnected number does
    not fail the task (it logs a WARNING): branch on the value, or wait for a state with
    ``PlugzInstanceStatusSensor``.

    :param plugz_conn_id: the Plugz connection (templated).
    """

    template_fields: Sequence[str] = PlugzHookMixin.template_fields
    ui_color = "#25d366"

    def __init__(self, *, plugz_conn_id: str = DEFAULT_CONN_ID, **kwargs: Any) -> None:
        super().__init__(plugz_conn_id=plugz_conn_id, **kwargs)

    def execute(self, context: Context) -> dict[str, Any]:
        import dataclasses

        status = dataclasses.asdict(self.hook.get_instance_status())
        healthy = instance_state(status) == CONNECTED
        line = "Plugz connection %r: connected = %s, session = %s, phone online = %s"
        facts = (self.plugz_conn_id, status["connected"], status["session"], status["smartphone_connected"])
        if healthy:
            self.log.info(line, *facts)
        else:  # state, not a failure: the task succeeds, the log says so
            self.log.warning(line + " (%s)", *facts, status["error"] or "no reason given")
        return status


class PlugzQueueOperator(PlugzHookMixin, BaseOperator):
    """Read how many messages wait in the number's queue (``GET .../queue``) and push that to XCom.

    Returns (XCom ``return_value``) the queue's column as the fleet audit writes it: ``{"state":
    "empty" | "queued", "count": int, "oldest_created": str | None}`` (ISO-8601 UTC of the oldest
    queued message). What the messages say and who they are for is never read into XCom or logs.
    Queued messages are normal for a moment (Plugz sends them 1-3 s apart) and pile up while the
    phone is not connected: check before reconnecting a number, since on reconnect they all go out.

    :param fail_if_queued: fail the task with a ``PlugzAuditError`` when any message waits (the
        value is pushed under the XCom key ``queue`` first).
    :param plugz_conn_id: the Plugz connection (templated).
    """

    template_fields: Sequence[str] = PlugzHookMixin.template_fields
    ui_color = "#25d366"

    def __init__(
        self, *, fail_if_queued: bool = False, plugz_conn_id: str = DEFAULT_CONN_ID, **kwargs: Any
    ) -> None:
        super().__init__(plugz_conn_id=plugz_conn_id, **kwargs)
        if not isinstance(fail_if_queued, bool):
            raise ValueError(f"fail_if_queued must be True or False, got {fail_if_queued!r}")
        self.fail_if_queued = fail_if_queued

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_plugz.endpoints import QUEUE_FACT
        from airflow_provider_plugz.exceptions import PlugzAuditError

        column = QUEUE_FACT.fields(self.hook.get_queue())
        self.log.info("Plugz connection %r: %s.", self.plugz_conn_id, QUEUE_FACT.describe(column))
        if self.fail_if_queued and QUEUE_FACT.is_bad(QUEUE_FACT.state(column)):
            context["ti"].xcom_push(key="queue", value=column)
            raise PlugzAuditError(
                f"Plugz connection {self.plugz_conn_id!r}: {column['count']} message(s) wait in the "
                "queue; see why before reconnecting the number (they all go out on reconnect), or "
                "empty the queue in the Plugz panel."
            )
        return column


class PlugzPinBranchOperator(PlugzHookMixin, BaseBranchOperator):
    """Follow ``if_pin_set`` when the account has a PIN, ``if_pin_missing`` when it has none.

    The task ids not chosen (among the direct downstream tasks) are skipped. ``has_code``
    is pushed under the XCom key ``has_code``.

    :param if_pin_set: task id(s) or task group id(s) to run when a PIN is set.
    :param if_pin_missing: task id(s) or task group id(s) to run when no PIN is set.
    :param plugz_conn_id: the Plugz connection (templated).
    """

    template_fields: Sequence[str] = PlugzHookMixin.template_fields
    ui_color = "#25d366"

    def __init__(
        self,
        *,
        if_pin_set: str | Iterable[str],
        if_pin_missing: str | Iterable[str],
        plugz_conn_id: str = DEFAULT_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(plugz_conn_id=plugz_conn_id, **kwargs)
        self.if_pin_set = _task_ids(if_pin_set, "if_pin_set")
        self.if_pin_missing = _task_ids(if_pin_missing, "if_pin_missing")

    def choose_branch(self, context: Context) -> list[str]:
        has_code = self.hook.get_pin_status().has_code
        context["ti"].xcom_push(key=HAS_CODE_XCOM_KEY, value=has_code)
        chosen = self.if_pin_set if has_code else self.if_pin_missing
        self.log.info("Plugz connection %r: PIN set = %s; following %s", self.plugz_conn_id, has_code, chosen)
        return chosen


def _task_ids(value: str | Iterable[str], name: str) -> list[str]:
    ids = [value] if isinstance(value, str) else list(value)
    if not ids or not all(isinstance(task_id, str) and task_id for task_id in ids):
        raise ValueError(f"{name} must be a task id or a non-empty list of task ids")
    return ids


class PlugzSetPinOperator(PlugzHookMixin, BaseOperator):
    """Register a two-step-verification PIN on the account, from a secret you already manage.

    The PIN never appears in the DAG file: name where it lives instead. The documented place is
    a connection extra whose name Airflow treats as sensitive, holding a JSON *string*
    (``pin_extra="pin_secret"``, ``{"pin_secret": "012345"}``): Airflow's REST API, and so
    Airflow 3's UI, show it as ``***``. A Variable works too when a secrets backend serves it
    (``pin_variable``); a Variable kept in Airflow's metadata database is shown in clear (six
    digits parse as a JSON number, which Airflow never redacts). When the source is one Airflow
    shows in clear, the task log gets one WARNING saying why (never the value); a JSON number
    in an extra is refused. The PIN is registered with the secrets masker as soon as it is read
    and never reaches XCom, logs, rendered fields or exception texts (see :mod:`._pin_storage`).

    Idempotent by default: it checks first and does nothing when a PIN is already set, unless
    ``overwrite=True``. After setting, it reads the status again and fails unless the PIN is
    now reported. Returns ``{"changed": bool, "has_code": bool}``.

    Sent at most once per task instance, Airflow's retries included (as the send-message
    operator's text, see :mod:`._once`): a request that may have reached Plugz fails the try
    without an Airflow retry; a later try reads the PIN state first and sends again only when
    no PIN is set, or with ``allow_resend=True``.

    :param pin_extra: name of the Plugz connection's extra holding the PIN, e.g. ``"pin_secret"``.
    :param pin_variable: name of the Airflow Variable holding the PIN (templated).
    :param overwrite: replace a PIN that is already set.
    :param plugz_conn_id: the Plugz connection (templated).
    :param allow_resend: with ``overwrite``, send even when an earlier try of this task instance
        may have registered the PIN already.
    """

    template_fields: Sequence[str] = (*PlugzHookMixin.template_fields, "pin_variable")
    ui_color = "#25d366"

    def __init__(
        self,
        *,
        pin_variable: str | None = None,
        pin_extra: str | None = None,
        overwrite: bool = False,
        plugz_conn_id: str = DEFAULT_CONN_ID,
        allow_resend: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(plugz_conn_id=plugz_conn_id, **kwargs)
        if not isinstance(allow_resend, bool):
            raise TypeError(f"allow_resend must be True or False, not {type(allow_resend).__name__}")
        if (pin_variable is None) == (pin_extra is None):
            raise ValueError(
                "give exactly one of pin_extra (a connection extra, e.g. "
                f"pin_extra={DOCUMENTED_PIN_EXTRA!r}) or pin_variable (an Airflow Variable)"
            )
        self.pin_variable = pin_variable
        self.pin_extra = pin_extra
        self.overwrite = overwrite
        self.allow_resend = allow_resend

    def execute(self, context: Context) -> dict[str, bool]:
        from airflow_provider_plugz.exceptions import PlugzError
        from airflow_provider_plugz.operators._once import SENT, AttemptLedger
        from airflow_provider_plugz.retry import may_have_been_applied

        ledger = AttemptLedger.for_task(context, "the PIN")
        earlier = ledger.earlier()
        has_code = self.hook.get_pin_status().has_code
        if has_code and earlier is not None and not self.allow_resend:
            # An earlier try sent the PIN and the number reports one now.
            if earlier.state == SENT or not self.overwrite:
                self.log.info(
                    "Try %d of this task registered the PIN; not sending it again.", earlier.try_number
                )
                return {"changed": earlier.state == SENT, "has_code": True}
            self.log.warning(
                "Not sending: try %d of this task may have registered the PIN, and a PIN is set now "
                "(allow_resend=False).",
                earlier.try_number,
            )
            raise ledger.refused_after(earlier)
        if has_code and not self.overwrite:
            self.log.info("Plugz connection %r already has a PIN; nothing to do.", self.plugz_conn_id)
            return {"changed": False, "has_code": True}
        if earlier is not None:
            # Read first: no PIN now means the earlier try's request did not take (or was undone).
            why = "allow_resend=True" if self.allow_resend else "the number reports no PIN"
            self.log.warning(
                "Try %d of this task sent the PIN before; sending it again: %s.", earlier.try_number, why
            )
        pin = read_pin(
            conn_id=self.plugz_conn_id,
            pin_variable=self.pin_variable,
            pin_extra=self.pin_extra,
            read_extra=self.hook.config_extra,
            log=self.log,
        )
        ledger.record_sending()
        try:
            self.hook.set_pin(pin)
        except PlugzError as err:
            if not may_have_been_applied(err):
                ledger.forget()
                raise
            raise ledger.outcome_unknown(err) from None
        if not self.hook.get_pin_status().has_code:
            raise PlugzError(
                f"Plugz connection {self.plugz_conn_id!r}: the server accepted the PIN but still reports "
                "no PIN set; check the number in the Plugz panel before running again."
            )
        ledger.record_sent({"has_code": "true"})
        self.log.info("Plugz connection %r: PIN registered and confirmed.", self.plugz_conn_id)
        return {"changed": True, "has_code": True}
