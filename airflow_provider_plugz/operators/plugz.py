"""Operators that read a Plugz instance's PIN status.

Cheap to import: DAG files import this on every parse, so the hook (and ``requests``)
is loaded only when a task runs.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow_provider_plugz._compat import BaseBranchOperator, BaseOperator
from airflow_provider_plugz.connection import DEFAULT_CONN_ID

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from airflow.sdk import Context

    from airflow_provider_plugz.hooks.plugz import PlugzHook

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


class PlugzSetPinOperator(BaseOperator):
    """Register a two-step-verification PIN on the account, from a secret you already manage.

    The PIN never appears in the DAG file: name where it lives instead — an Airflow Variable
    (``pin_variable``; a secrets backend serves Variables too) or an extra of the Plugz
    connection (``pin_extra``). It is registered with the secrets masker as soon as it is
    read and never reaches XCom, logs, rendered fields or exception texts.

    Idempotent by default: it checks first and does nothing when a PIN is already set, unless
    ``overwrite=True``. After setting, it reads the status again and fails unless the PIN is
    now reported. Returns ``{"changed": bool, "has_code": bool}``.

    :param pin_variable: name of the Airflow Variable holding the PIN (templated).
    :param pin_extra: name of the Plugz connection's extra holding the PIN, e.g. ``"pin"``.
    :param overwrite: replace a PIN that is already set.
    :param plugz_conn_id: the Plugz connection (templated).
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
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if (pin_variable is None) == (pin_extra is None):
            raise ValueError(
                "give exactly one of pin_variable (an Airflow Variable) or pin_extra (a connection extra)"
            )
        self.pin_variable = pin_variable
        self.pin_extra = pin_extra
        self.overwrite = overwrite
        self.plugz_conn_id = plugz_conn_id

    @cached_property
    def hook(self) -> PlugzHook:
        from airflow_provider_plugz.hooks.plugz import PlugzHook

        return PlugzHook(plugz_conn_id=self.plugz_conn_id)

    def execute(self, context: Context) -> dict[str, bool]:
        from airflow_provider_plugz.exceptions import PlugzError

        if self.hook.get_pin_status().has_code and not self.overwrite:
            self.log.info("Plugz connection %r already has a PIN; nothing to do.", self.plugz_conn_id)
            return {"changed": False, "has_code": True}
        self.hook.set_pin(self._read_pin())
        if not self.hook.get_pin_status().has_code:
            raise PlugzError(
                f"Plugz connection {self.plugz_conn_id!r}: the server accepted the PIN but still reports "
                "no PIN set; check the number in the Plugz panel before running again."
            )
        self.log.info("Plugz connection %r: PIN registered and confirmed.", self.plugz_conn_id)
        return {"changed": True, "has_code": True}

    def _read_pin(self) -> str:
        """Fetch the PIN from its secret and register it with the masker before anything else."""
        from airflow_provider_plugz._compat import get_variable, mask_secret
        from airflow_provider_plugz.exceptions import PlugzConfigurationError

        if self.pin_variable is not None:
            source = f"Airflow Variable {self.pin_variable!r}"
            value = get_variable(self.pin_variable)
        else:
            source = f"extra {self.pin_extra!r} of connection {self.plugz_conn_id!r}"
            value = self.hook.config_extra(str(self.pin_extra))
        if value is None or value == "":
            raise PlugzConfigurationError(
                f"Plugz PIN registration: {source} is missing or empty; store the six-digit PIN there."
            )
        pin = str(value).strip()
        if len(pin) >= 5:
            mask_secret(pin)
        return pin
