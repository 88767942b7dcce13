"""``PlugzSendMessageOperator``: send a WhatsApp text from a DAG.

Cheap to import: DAG files import this on every parse, so the hook is loaded only when the
task runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_plugz._compat import BaseOperator
from airflow_provider_plugz.connection import DEFAULT_CONN_ID
from airflow_provider_plugz.operators._base import PlugzHookMixin

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import Context


class PlugzSendMessageOperator(PlugzHookMixin, BaseOperator):
    """Send ``message`` to ``phone`` over WhatsApp; returns ``{"zaap_id", "message_id"}``.

    A success means Plugz *queued* the message: it sends its queue one message at a time, and a
    message from a number that is not connected waits there until it reconnects (at most 1,000).

    The message is sent at most once per task instance, Airflow's retries included, since a
    duplicate is something a person reads: a request that may have reached Plugz (a timeout or a
    dropped connection after sending) is never sent again, and the try fails without an Airflow
    retry (:class:`~..exceptions.PlugzOutcomeUnknownError`, saying how to check). Each try records
    its attempt durably before sending (:mod:`._once`), so a later try - a retry, a worker lost
    mid-request, a clear - sends nothing when an earlier one may have sent: it returns the earlier
    ids when that one was confirmed, and fails otherwise, unless ``allow_resend=True``.

    Phone and text are personal data: the log shows the phone's last 4 digits and the text's
    length, errors show neither. Secrets never go out: every secret this process knows (Airflow's
    masked values, the Plugz tokens and PINs it read) and instance URL credentials are sent as
    ``***`` (the log says when); a text Airflow's masker could not check is not sent at all.

    :param phone: digits with country and area code (``5511999999999``) or a group id (templated).
    :param message: the text, 1 to 4,096 characters (templated).
    :param plugz_conn_id: the Plugz connection of the sending number (templated).
    :param allow_resend: send even when an earlier try of this task instance sent, or may have
        sent, the message (a duplicate is then possible); logged when it does.
    """

    template_fields: Sequence[str] = ("phone", "message", *PlugzHookMixin.template_fields)
    template_fields_renderers: ClassVar[dict[str, str]] = {"message": "md"}
    ui_color = "#25d366"

    def __init__(
        self,
        *,
        phone: str,
        message: str,
        plugz_conn_id: str = DEFAULT_CONN_ID,
        allow_resend: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(plugz_conn_id=plugz_conn_id, **kwargs)
        if not isinstance(allow_resend, bool):
            raise TypeError(f"allow_resend must be True or False, not {type(allow_resend).__name__}")
        self.phone = phone
        self.message = message
        self.allow_resend = allow_resend

    def execute(self, context: Context) -> dict[str, str]:
        from airflow_provider_plugz.endpoints import mask_phone
        from airflow_provider_plugz.exceptions import PlugzError
        from airflow_provider_plugz.operators._once import SENT, AttemptLedger
        from airflow_provider_plugz.retry import may_have_been_applied

        phone = str(self.phone).strip()
        ledger = AttemptLedger.for_task(context, "the WhatsApp message")
        earlier = ledger.earlier()
        if (
            earlier is not None
            and earlier.result is not None
            and earlier.state == SENT
            and not self.allow_resend
        ):
            self.log.info(
                "Try %d of this task already queued the message (Plugz id %s); not sending it again.",
                earlier.try_number,
                earlier.result.get("zaap_id"),
            )
            return earlier.result
        if earlier is not None and not self.allow_resend:
            self.log.warning(
                "Not sending: try %d of this task may have sent the message and no answer was recorded "
                "(allow_resend=False).",
                earlier.try_number,
            )
            raise ledger.refused_after(earlier)
        if earlier is not None:
            self.log.warning(
                "Try %d of this task %s the message; sending again because allow_resend=True.",
                earlier.try_number,
                "sent" if earlier.state == SENT else "may have sent",
            )
        text = self._safe_text(str(self.message))
        ledger.record_sending()
        try:
            sent = self.hook.send_text(phone, text)
        except PlugzError as err:
            if not may_have_been_applied(err):
                ledger.forget()
                raise
            raise ledger.outcome_unknown(err) from None
        result = {"zaap_id": sent.zaap_id, "message_id": sent.message_id}
        ledger.record_sent(result)
        self.log.info(
            "Plugz connection %r queued a WhatsApp message of %d character(s) to %s (Plugz id %s).",
            self.plugz_conn_id,
            len(text),
            mask_phone(phone),
            sent.zaap_id,
        )
        return result

    def _safe_text(self, message: str) -> str:
        """The message as it may leave Airflow: every secret this process knows and instance URL
        credentials replaced by ``***`` (see :func:`~airflow_provider_plugz._redaction.redact_outgoing`).
        The connection is read first, so that its own secrets are known."""
        from airflow_provider_plugz._redaction import UNCHECKED, redact_outgoing
        from airflow_provider_plugz.endpoints import MAX_MESSAGE
        from airflow_provider_plugz.exceptions import PlugzError

        self.hook.config  # noqa: B018 - reads the connection: its secrets become known
        text = redact_outgoing(message)
        if text == UNCHECKED != message:
            # An alert may go out as a notice; a message to a person must be what was asked, or nothing.
            raise PlugzError(
                f"Plugz message for connection {self.plugz_conn_id!r} was not sent: Airflow's secrets "
                "masker failed while checking its text for secrets (its error is in the task log above). "
                "Fix the masker (a custom logging config or secrets backend), then run the task again."
            )
        if text != message:
            self.log.warning(
                "The message quoted secrets (a token, a PIN, instance URL credentials); they are sent as ***."
            )
        if len(text) > MAX_MESSAGE >= len(message):  # "***" for a 1-2 character value: still fits
            text = text[:MAX_MESSAGE]
        return text
