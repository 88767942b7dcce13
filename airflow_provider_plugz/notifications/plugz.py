"""``PlugzNotifier``: WhatsApp alerts from Airflow callbacks and Deadline Alerts.

The notifier renders, cleans and sends; the texts it composes (the default alert, the warning
about an alerting number that does not send) are in :mod:`._alert_texts`.

Cheap to import: DAG files import this on every parse, so the hook (and ``requests`` /
``httpx``) is loaded only when an alert is sent.
"""

from __future__ import annotations

import contextlib
import json
import re
import sys
from typing import TYPE_CHECKING, Any, cast

from airflow_provider_plugz._compat import BaseNotifier, get_variable
from airflow_provider_plugz._vocabulary import connection_state, mask_phone
from airflow_provider_plugz.exceptions import PlugzConfigurationError
from airflow_provider_plugz.notifications._alert_texts import default_message, sender_warning

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence

    import jinja2
    from airflow.sdk import Context

    from airflow_provider_plugz.endpoints import InstanceStatus, SentMessage
    from airflow_provider_plugz.hooks.plugz import PlugzHook

__all__ = ["DEFAULT_ALERTS_CONN_ID", "PlugzNotifier", "default_message", "send_plugz_notification"]

#: The connection alerts go out from unless told otherwise: a WhatsApp number of its own, so
#: that an alert about a number (disconnected, no PIN) does not depend on that number.
DEFAULT_ALERTS_CONN_ID = "plugz_alerts"

_HOOK_MODULE = "airflow_provider_plugz.hooks.plugz"
_CUT = "\n[...] (truncated)"


class PlugzNotifier(BaseNotifier):
    """Send a WhatsApp message through Plugz when something happens in Airflow.

    Use it as any callback (``on_failure_callback=PlugzNotifier(phone=...)`` on a task or a
    DAG, ``on_retry_callback``, ...) or in a Deadline Alert (Airflow 3.1+), where it runs in the
    triggerer without blocking its event loop::

        DeadlineAlert(
            reference=DeadlineReference.DAGRUN_QUEUED_AT,
            interval=timedelta(hours=1),
            callback=AsyncCallback(PlugzNotifier, kwargs={"phone": "{{ var.value.plugz_oncall_phone }}"}),
        )

    **Delivery.** Success means Plugz *queued* the message (HTTP 200), not that the phone
    received it: Plugz sends its queue one message at a time, 1-3 s apart. If the sending
    number is disconnected, the message waits in Plugz's queue (at most 1,000 messages) and goes
    out, late, when the number reconnects; after the send the notifier checks the number and
    logs a WARNING when it is not connected (``check_sender=False`` skips that request). A
    message is sent at most once: a retry after a lost answer could be a duplicate alert.

    **Failures.** A failed send raises the hook's :class:`~airflow_provider_plugz.exceptions.PlugzError`
    subclass, whose text says what to do (an undefined connection is a
    :class:`~airflow_provider_plugz.exceptions.PlugzConfigurationError` too). Airflow logs it
    and keeps the task's own failure as it was: Airflow 3 logs the error and the callback's
    failure; Airflow 2's notifier base logs it with its traceback and goes on.

    **Secrets.** Just before it is sent, after templating, the text loses every secret this
    process knows - what Airflow's secrets masker hides in logs, the Plugz tokens and PINs read
    here - and instance URL credentials in any form: each becomes ``***`` and a WARNING says so
    (see :func:`~airflow_provider_plugz._redaction.redact_outgoing`). So ``{{ exception }}`` is
    safe to send even when the exception quotes a Plugz URL.

    **Personal data.** Logs show the phone masked (its last 4 digits) and the text's length;
    neither is ever put in an exception text. Prefer a Variable for the phone: Airflow stores a
    Deadline Alert's kwargs with the DAG and its triggerer logs them when a callback fails.

    :param phone: the recipient (templated): digits with country and area code
        (``5511999999999``, no ``+`` or spaces) or a WhatsApp group id, e.g.
        ``"{{ var.value.plugz_oncall_phone }}"``.
    :param message: the text (templated; WhatsApp formatting such as ``*bold*`` works; longer
        than 4,096 characters it is cut). Default: :func:`default_message` - the DAG, task,
        run, try and the task's log URL.
    :param plugz_conn_id: the Plugz connection of the number alerts are sent from (templated),
        default ``plugz_alerts``.
    :param check_sender: after sending, check that the sending number is connected and log a
        WARNING when the alert is waiting in Plugz's queue.
    :param context: the Airflow context, for Airflow's own use (Deadline Alerts pass it).
    """

    template_fields: Sequence[str] = ("phone", "message", "plugz_conn_id")

    def __init__(
        self,
        phone: str,
        message: str | None = None,
        *,
        plugz_conn_id: str = DEFAULT_ALERTS_CONN_ID,
        check_sender: bool = True,
        context: Context | None = None,
    ) -> None:
        super().__init__()
        # Airflow 3.1+ passes the context here (Deadline Alerts) and awaits the notifier; older
        # notifier bases take no arguments.
        self.context = context or {}
        self.phone = phone
        self.message = message
        self.plugz_conn_id = plugz_conn_id
        self.check_sender = check_sender

    def __repr__(self) -> str:
        # Airflow 3 names the callback in its "Failed to run task callback" log line.
        return (
            f"{type(self).__name__}(plugz_conn_id={self.plugz_conn_id!r}, phone={mask_phone(self.phone)!r})"
        )

    def render_template_fields(self, context: Context, jinja_env: jinja2.Environment | None = None) -> None:
        """Render the template fields, each time from the templates given.

        Airflow renders a notifier in place; one shared by several tasks (``default_args``) or
        callbacks in one process would otherwise send the first rendering again. ``{{
        var.value.<key> }}`` works even where the context has no ``var`` (a Deadline Alert's holds
        only the DAG run and the deadline).
        """
        templates = self.__dict__.setdefault(
            "_templates", {f: getattr(self, f) for f in self.template_fields}
        )
        for name, template in templates.items():
            setattr(self, name, template)
        if "var" not in context:
            context["var"] = {"value": _Variables(), "json": _Variables(deserialize_json=True)}
        dag = context.get("dag")
        if jinja_env is None and dag is not None and not hasattr(dag, "get_template_env"):
            # Airflow 3.3's dag.test() runs DAG callbacks with its scheduler's SerializedDAG in the
            # context, which cannot make a template environment: use Airflow's DAG-less one.
            jinja_env = self.get_template_env(dag=None)
        super().render_template_fields(context, jinja_env)

    def notify(self, context: Context) -> None:
        """Send the alert (task and DAG callbacks, a Deadline Alert's ``SyncCallback``)."""
        phone, text = self._phone_and_text(context)
        from airflow_provider_plugz.hooks.plugz import PlugzHook

        hook = PlugzHook(plugz_conn_id=self.plugz_conn_id)
        try:
            with _connection_defined(self.plugz_conn_id):
                hook.config  # noqa: B018 - read the connection first: its secrets become known
                text = self._safe_text(text)
                sent = hook.send_text(phone, text)
            status = self._sender_status(hook) if self.check_sender else None
        finally:
            hook.close()
        self._log_sent(phone, text, sent, status)

    async def async_notify(self, context: Context) -> None:
        """Send the alert from an event loop (a Deadline Alert's ``AsyncCallback``, in the triggerer).

        Nothing here blocks the loop: the hook's module is first imported in a worker thread,
        and the hook's async path reads the connection and sends over httpx.
        """
        phone, text = self._phone_and_text(context)
        try:
            hook_class = await _ahook_class()
            hook = hook_class(plugz_conn_id=self.plugz_conn_id)
            try:
                with _connection_defined(self.plugz_conn_id):
                    await hook.aget_config()  # read the connection first: its secrets become known
                    text = self._safe_text(text)
                    sent = await hook.asend_text(phone, text)
                status = await self._asender_status(hook) if self.check_sender else None
            finally:
                await hook.aclose()
        except Exception as err:
            # Airflow's notifier base logs failures of the sync path; an awaited notifier's are ours.
            self.log.error(
                "Failed to send the Plugz alert to %s from connection %r: %s: %s",
                mask_phone(phone),
                self.plugz_conn_id,
                type(err).__name__,
                err,
            )
            raise
        self._log_sent(phone, text, sent, status)

    def _phone_and_text(self, context: Context) -> tuple[Any, str]:
        """The rendered phone and text (the default one when no message was given)."""
        phone: Any = self.phone
        if isinstance(phone, int) and not isinstance(phone, bool):  # a DAG that renders native objects
            phone = str(phone)
        if isinstance(phone, str):
            phone = phone.strip()
        message: Any = self.message
        text = default_message(cast("Mapping[str, Any]", context)) if message is None else str(message)
        return phone, text

    def _safe_text(self, text: str) -> str:
        """The text as it may leave Airflow: every secret this process knows and instance URL
        credentials replaced by ``***`` (see :func:`~airflow_provider_plugz._redaction.redact_outgoing`),
        then cut to what Plugz takes (after redacting: a cut secret could no longer be recognised)."""
        from airflow_provider_plugz._redaction import UNCHECKED, redact_outgoing
        from airflow_provider_plugz.endpoints import MAX_MESSAGE

        safe = redact_outgoing(text)
        if safe == UNCHECKED != text:
            self.log.warning(
                "Airflow's secrets masker could not check the Plugz alert text; a notice is sent "
                "instead of it."
            )
        elif safe != text:
            self.log.warning(
                "The Plugz alert text quoted secrets (a token, a PIN, instance URL credentials); they "
                "are sent as ***."
            )
        text = safe
        if len(text) > MAX_MESSAGE:
            self.log.warning(
                "The Plugz alert text has %d characters; sending its first %d.", len(text), MAX_MESSAGE
            )
            text = text[: MAX_MESSAGE - len(_CUT)] + _CUT
        return text

    def _sender_status(self, hook: PlugzHook) -> InstanceStatus | None:
        from airflow_provider_plugz.exceptions import PlugzError
        from airflow_provider_plugz.retry import RetryPolicy

        try:
            return hook.get_instance_status(retry=RetryPolicy(max_attempts=1))
        except PlugzError as err:
            self.log.info("Could not check the alerting number's connection: %s", err)
            return None

    async def _asender_status(self, hook: PlugzHook) -> InstanceStatus | None:
        from airflow_provider_plugz.exceptions import PlugzError
        from airflow_provider_plugz.retry import RetryPolicy

        try:
            return await hook.aget_instance_status(retry=RetryPolicy(max_attempts=1))
        except PlugzError as err:
            self.log.info("Could not check the alerting number's connection: %s", err)
            return None

    def _log_sent(self, phone: Any, text: str, sent: SentMessage, status: InstanceStatus | None) -> None:
        self.log.info(
            "Plugz alert to %s (%d characters) queued by connection %r: zaapId %s.",
            mask_phone(phone),
            len(text),
            self.plugz_conn_id,
            sent.zaap_id,
        )
        if status is None:
            return
        # The one rule of what a status means: a connected number without a session sends nothing.
        state = connection_state(status.connected, status.session, status.smartphone_connected)
        warning = sender_warning(self.plugz_conn_id, state, status.error)
        if warning is not None:
            self.log.warning("%s", warning)


#: The name Airflow's other providers give their notifier's function form.
send_plugz_notification = PlugzNotifier


# --- helpers -------------------------------------------------------------------------------------


@contextlib.contextmanager
def _connection_defined(conn_id: str) -> Iterator[None]:
    """Turn Airflow's "conn_id isn't defined" into a PlugzConfigurationError that says what to do."""
    # The same class on Airflow 2 and 3 (3 re-exports the task SDK's from here).
    from airflow.exceptions import AirflowNotFoundException  # type: ignore[attr-defined]

    try:
        yield
    except AirflowNotFoundException as err:
        env = "AIRFLOW_CONN_" + re.sub(r"[^0-9A-Za-z]", "_", conn_id).upper()
        raise PlugzConfigurationError(
            f"Plugz alert: the connection {conn_id!r} is not defined. Create it for the WhatsApp "
            f"number alerts are sent from (Admin > Connections, type Plugz, or {env}), or give "
            "PlugzNotifier another plugz_conn_id."
        ) from err


async def _ahook_class() -> type[PlugzHook]:
    """``PlugzHook``, its module (requests, urllib3) first imported in a worker thread."""
    module = sys.modules.get(_HOOK_MODULE)
    if module is None:
        import asyncio
        import importlib

        module = await asyncio.to_thread(importlib.import_module, _HOOK_MODULE)
    return cast("type[PlugzHook]", module.PlugzHook)


class _Variables:
    """``var.value`` / ``var.json`` for a context that has none: each attribute reads a Variable."""

    def __init__(self, *, deserialize_json: bool = False) -> None:
        self._deserialize_json = deserialize_json

    def __repr__(self) -> str:
        return f"<Airflow Variables ({'json' if self._deserialize_json else 'value'})>"

    def __getattr__(self, key: str) -> Any:
        if key.startswith("_"):  # copy, pickle and Jinja probe such names; no Variable is read
            raise AttributeError(key)
        return self.get(key, _MISSING)

    def get(self, key: str, default: Any = None) -> Any:
        value = get_variable(key)
        if value is None:
            if default is _MISSING:
                env = "AIRFLOW_VAR_" + re.sub(r"[^0-9A-Za-z]", "_", key).upper()
                raise PlugzConfigurationError(
                    f"Plugz alert: the Variable {key!r} its template reads is not set; set it "
                    f"(Admin > Variables, {env} or a secrets backend)."
                )
            return default
        return json.loads(value) if self._deserialize_json else value


_MISSING: Any = object()
