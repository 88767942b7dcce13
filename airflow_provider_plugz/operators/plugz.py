"""Operators that read a Plugz instance's PIN status and connection state, and set its PIN.

Cheap to import: DAG files import this on every parse, so the hook (and ``requests``)
is loaded only when a task runs.
"""

from __future__ import annotations

import logging
import re
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow_provider_plugz._compat import BaseBranchOperator, BaseOperator
from airflow_provider_plugz.connection import DEFAULT_CONN_ID

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from airflow.sdk import Context

    from airflow_provider_plugz.hooks.plugz import PlugzHook

_log = logging.getLogger(__name__)

#: XCom key under which every Plugz task also publishes the PIN state it saw.
HAS_CODE_XCOM_KEY = "has_code"


class PlugzPinStatusOperator(BaseOperator):
    """Check whether the instance's WhatsApp account has a two-step-verification PIN.

    Returns ``has_code`` (a bool), so it lands in XCom as ``return_value``.

    :param plugz_conn_id: the Plugz connection (templated).
    """

    template_fields: Sequence[str] = ("plugz_conn_id",)
    ui_color = "#25d366"

    def __init__(self, *, plugz_conn_id: str = DEFAULT_CONN_ID, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plugz_conn_id = plugz_conn_id

    @cached_property
    def hook(self) -> PlugzHook:
        from airflow_provider_plugz.hooks.plugz import PlugzHook

        return PlugzHook(plugz_conn_id=self.plugz_conn_id)

    def execute(self, context: Context) -> bool:
        has_code = self.hook.get_pin_status().has_code
        self.log.info("Plugz connection %r: PIN set = %s", self.plugz_conn_id, has_code)
        return has_code


class PlugzInstanceStatusOperator(BaseOperator):
    """Read whether the number is connected (``GET .../status``) and push that to XCom.

    Returns (XCom ``return_value``) a JSON-safe dict: ``{"connected": bool, "session": bool |
    None, "smartphone_connected": bool, "error": str | None}``. ``session`` is None where the
    server does not send it; ``error`` is the server's reason when something is not connected
    (e.g. "You need to restore the session."): state, not a failure. A disconnected number does
    not fail the task (it logs a WARNING): branch on the value, or wait for a state with
    ``PlugzInstanceStatusSensor``.

    :param plugz_conn_id: the Plugz connection (templated).
    """

    template_fields: Sequence[str] = ("plugz_conn_id",)
    ui_color = "#25d366"

    def __init__(self, *, plugz_conn_id: str = DEFAULT_CONN_ID, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plugz_conn_id = plugz_conn_id

    @cached_property
    def hook(self) -> PlugzHook:
        from airflow_provider_plugz.hooks.plugz import PlugzHook

        return PlugzHook(plugz_conn_id=self.plugz_conn_id)

    def execute(self, context: Context) -> dict[str, Any]:
        import dataclasses

        status = dataclasses.asdict(self.hook.get_instance_status())
        healthy = status["connected"] and status["smartphone_connected"] and status["session"] is not False
        line = "Plugz connection %r: connected = %s, session = %s, phone online = %s"
        facts = (self.plugz_conn_id, status["connected"], status["session"], status["smartphone_connected"])
        if healthy:
            self.log.info(line, *facts)
        else:  # state, not a failure: the task succeeds, the log says so
            self.log.warning(line + " (%s)", *facts, status["error"] or "no reason given")
        return status


class PlugzPinBranchOperator(BaseBranchOperator):
    """Follow ``if_pin_set`` when the account has a PIN, ``if_pin_missing`` when it has none.

    The task ids not chosen (among the direct downstream tasks) are skipped. ``has_code``
    is pushed under the XCom key ``has_code``.

    :param if_pin_set: task id(s) or task group id(s) to run when a PIN is set.
    :param if_pin_missing: task id(s) or task group id(s) to run when no PIN is set.
    :param plugz_conn_id: the Plugz connection (templated).
    """

    template_fields: Sequence[str] = ("plugz_conn_id",)
    ui_color = "#25d366"

    def __init__(
        self,
        *,
        if_pin_set: str | Iterable[str],
        if_pin_missing: str | Iterable[str],
        plugz_conn_id: str = DEFAULT_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.if_pin_set = _task_ids(if_pin_set, "if_pin_set")
        self.if_pin_missing = _task_ids(if_pin_missing, "if_pin_missing")
        self.plugz_conn_id = plugz_conn_id

    @cached_property
    def hook(self) -> PlugzHook:
        from airflow_provider_plugz.hooks.plugz import PlugzHook

        return PlugzHook(plugz_conn_id=self.plugz_conn_id)

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


#: The connection extra the README documents for the PIN: Airflow's REST API (and Airflow 3's UI)
#: hide an extra whose name contains "secret" when its value is a JSON string; ``pin`` is no such name.
DOCUMENTED_PIN_EXTRA = "pin_secret"

_SIX_DIGITS = re.compile(r"[0-9]{6}")


class PlugzSetPinOperator(BaseOperator):
    """Register a two-step-verification PIN on the account, from a secret you already manage.

    The PIN never appears in the DAG file: name where it lives instead. The documented place is
    a connection extra whose name Airflow treats as sensitive, holding a JSON *string*
    (``pin_extra="pin_secret"``, ``{"pin_secret": "012345"}``): Airflow's REST API, and so
    Airflow 3's UI, show it as ``***``. A Variable works too when a secrets backend serves it
    (``pin_variable``); a Variable kept in Airflow's metadata database is shown in clear (six
    digits parse as a JSON number, which Airflow never redacts). When the source is one Airflow
    shows in clear, the task log gets one WARNING saying why (never the value); a JSON number
    in an extra is refused. The PIN is registered with the secrets masker as soon as it is read
    and never reaches XCom, logs, rendered fields or exception texts.

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

    template_fields: Sequence[str] = ("plugz_conn_id", "pin_variable")
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
        super().__init__(**kwargs)
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
        self.plugz_conn_id = plugz_conn_id
        self.allow_resend = allow_resend

    @cached_property
    def hook(self) -> PlugzHook:
        from airflow_provider_plugz.hooks.plugz import PlugzHook

        return PlugzHook(plugz_conn_id=self.plugz_conn_id)

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
        pin = self._read_pin()
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

    @property
    def _pin_source(self) -> str:
        """Where the PIN comes from, for messages (a name, never the value)."""
        if self.pin_variable is not None:
            return f"Airflow Variable {self.pin_variable!r}"
        return f"extra {self.pin_extra!r} of connection {self.plugz_conn_id!r}"

    def _read_pin(self) -> str:
        """Fetch the PIN, mask it at once, warn if Airflow shows its source, then validate it."""
        from airflow_provider_plugz._compat import get_variable
        from airflow_provider_plugz.exceptions import PlugzConfigurationError

        variable = self.pin_variable is not None
        name = str(self.pin_variable if variable else self.pin_extra)
        value = get_variable(name) if variable else self.hook.config_extra(name)
        _mask_pin(value)
        source = self._pin_source
        if value is None or (isinstance(value, str) and not value.strip()):
            raise PlugzConfigurationError(
                f"Plugz PIN registration: {source} is missing or empty; store the six-digit PIN there."
            )
        if not variable and _is_number(value):
            raise PlugzConfigurationError(
                f"Plugz PIN registration: {source} is a JSON number; store the PIN as a JSON string "
                f'(e.g. {{"{name}": "012345"}}): a number loses leading zeros (012345 becomes 12345) '
                "and Airflow's UI and REST API show numbers in clear even under a sensitive name."
            )
        self._warn_if_shown(variable, name, value)
        pin = value.strip() if isinstance(value, str) else ""
        if not _SIX_DIGITS.fullmatch(pin):
            raise PlugzConfigurationError(
                f"Plugz PIN registration: the PIN in {source} must be a string of exactly six digits "
                "(0-9), as WhatsApp's two-step verification requires; fix the value stored there."
            )
        return pin

    def _warn_if_shown(self, variable: bool, name: str, value: object) -> None:
        """One WARNING (never the value) when Airflow's UI and REST API would show the PIN."""
        from airflow_provider_plugz._compat import AIRFLOW_V3

        if variable:
            in_backend = _from_secrets_backend(variable=name)
        else:
            in_backend = _from_secrets_backend(conn_id=self.plugz_conn_id)
        if in_backend:
            return
        reasons = _pin_exposure(
            variable=variable,
            name_hidden=_airflow_hides_name(name),
            value=value,
            airflow_v3=AIRFLOW_V3,
            form_masks=variable or _plugz_form_masks(name),
        )
        if reasons:
            self.log.warning(
                "Plugz PIN source %s is shown in clear by Airflow (%s); keep the PIN "
                "as a JSON string in a connection extra whose name Airflow hides, e.g. pin_extra=%r, "
                "or in a secrets backend.",
                self._pin_source,
                "; ".join(reasons),
                DOCUMENTED_PIN_EXTRA,
            )


def _pin_exposure(
    *, variable: bool, name_hidden: bool, value: object, airflow_v3: bool, form_masks: bool = True
) -> list[str]:
    """Why Airflow would show a PIN kept in its metadata database in clear (empty: it hides it).

    Airflow's REST API (which Airflow 3's UI reads) hides a connection extra or Variable only
    when its *name* is sensitive (``should_hide_value_for_key``) and only when the value is a
    string: ``redact()`` passes numbers through, and a Variable's text is JSON-decoded first,
    so six digits become a number. Airflow 2's REST API never redacts Variables, and its
    connection edit page carries every extra in clear except the password fields a provider's
    form declares (``form_masks``). Sources in a secrets backend never show: callers skip them.
    """
    what = "Variable" if variable else "extra"
    reasons = [] if name_hidden else [f"Airflow does not treat that {what} name as sensitive"]
    if variable and not airflow_v3:
        reasons.append("Airflow 2's REST API returns every Variable's value unredacted")
    elif variable and isinstance(value, str) and _is_number(_json_or_none(value)):
        reasons.append("its text parses as a JSON number, which Airflow never redacts")
    elif not variable and _is_number(value):
        reasons.append("its value is a JSON number, which Airflow never redacts")
    if not variable and not airflow_v3 and not form_masks:
        reasons.append(
            "Airflow 2's connection edit page carries it in clear: it is not a password field of the "
            "Plugz connection form"
        )
    return reasons


def _plugz_form_masks(name: str) -> bool:
    """Whether the Plugz connection form declares extra ``name`` a password field (masked there)."""
    from airflow_provider_plugz.get_provider_info import get_provider_info

    for conn_type in get_provider_info()["connection-types"]:
        field = conn_type.get("conn-fields", {}).get(name) or {}
        if field.get("schema", {}).get("format") == "password":
            return True
    return False


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _json_or_none(text: str) -> object:
    import json

    try:
        return json.loads(text)
    except ValueError:  # e.g. "012345": JSON forbids leading zeros
        return None


def _mask_pin(value: object) -> None:
    """Register whatever was read (as text, raw and stripped) with Airflow's secrets masker."""
    from airflow_provider_plugz._compat import mask_secret

    if isinstance(value, str) or _is_number(value):
        for text in {str(value), str(value).strip()}:
            if len(text) >= 5:  # Airflow skips (and warns about) shorter secrets
                mask_secret(text)


def _airflow_hides_name(name: str) -> bool:
    """Airflow's own verdict: does its UI / REST API hide a Variable or extra of this name?"""
    from airflow_provider_plugz._compat import should_hide_value_for_key

    return should_hide_value_for_key(name)


# Secrets backends that read Airflow's metadata database (directly, or through the task API):
# what they serve is what the UI and REST API show.
_DATABASE_BACKENDS = frozenset({"MetastoreBackend", "ExecutionAPISecretsBackend"})


def _from_secrets_backend(*, variable: str | None = None, conn_id: str | None = None) -> bool:
    """Whether a secrets backend other than the metadata database serves this Variable or
    connection (environment variables, Vault, ...): Airflow's UI and REST API never show those."""
    from airflow_provider_plugz._compat import secrets_backends

    try:
        backends = secrets_backends()
    except Exception:  # no backend list to be had: assume the database (warn, never hide)
        return False
    for backend in backends:
        if type(backend).__name__ in _DATABASE_BACKENDS:
            continue
        try:
            if variable is not None:
                found = backend.get_variable(variable)
            else:
                found = backend.get_connection(conn_id)
        except Exception as err:  # a backend that cannot answer does not hold it for us
            _log.debug("Secrets backend %s did not answer: %s", type(backend).__name__, type(err).__name__)
            continue
        if found is not None:
            return True
    return False
