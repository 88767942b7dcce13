"""``PlugzSendMessageOperator``: send a WhatsApp text from a DAG.

Cheap to import: DAG files import this on every parse, so the hook is loaded only when the
task runs.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_plugz._compat import BaseOperator
from airflow_provider_plugz.connection import DEFAULT_CONN_ID

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import Context

    from airflow_provider_plugz.hooks.plugz import PlugzHook


class PlugzSendMessageOperator(BaseOperator):
    """Send ``message`` to ``phone`` over WhatsApp; returns ``{"zaap_id", "message_id"}``.

    A success means Plugz *queued* the message: it sends its queue one message at a time, and a
    message from a number that is not connected waits there until it reconnects (at most 1,000).
    The message is sent at most once: after a request that may have reached Plugz it is never
    retried, since a duplicate is something a person reads. Phone and text are personal data:
    the log shows the phone's last 4 digits and the text's length, errors show neither.

    :param phone: digits with country and area code (``5511999999999``) or a group id (templated).
    :param message: the text, 1 to 4,096 characters (templated).
    :param plugz_conn_id: the Plugz connection of the sending number (templated).
    """

    template_fields: Sequence[str] = ("phone", "message", "plugz_conn_id")
    template_fields_renderers: ClassVar[dict[str, str]] = {"message": "md"}
    ui_color = "#25d366"

    def __init__(
        self,
        *,
        phone: str,
        message: str,
        plugz_conn_id: str = DEFAULT_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.phone = phone
        self.message = message
        self.plugz_conn_id = plugz_conn_id

    @cached_property
    def hook(self) -> PlugzHook:
        from airflow_provider_plugz.hooks.plugz import PlugzHook

        return PlugzHook(plugz_conn_id=self.plugz_conn_id)

    def execute(self, context: Context) -> dict[str, str]:
        from airflow_provider_plugz.endpoints import mask_phone

        phone = str(self.phone).strip()
        sent = self.hook.send_text(phone, str(self.message))
        self.log.info(
            "Plugz connection %r queued a WhatsApp message of %d character(s) to %s (Plugz id %s).",
            self.plugz_conn_id,
            len(str(self.message)),
            mask_phone(phone),
            sent.zaap_id,
        )
        return {"zaap_id": sent.zaap_id, "message_id": sent.message_id}
