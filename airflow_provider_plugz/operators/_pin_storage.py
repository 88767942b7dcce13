"""Where a PIN may be stored, and whether Airflow would show it there.

:class:`~airflow_provider_plugz.operators.plugz.PlugzSetPinOperator` never takes a PIN itself:
it is named where the PIN lives - a connection extra or an Airflow Variable - and
:func:`read_pin` fetches it from there, registers it with Airflow's secrets masker at once,
refuses what cannot be a PIN, and logs one WARNING (never the value) when the place is one
Airflow's UI or REST API shows in clear. The documented place is a connection extra whose name
Airflow treats as sensitive, holding a JSON *string*: :data:`DOCUMENTED_PIN_EXTRA`.

Cheap to import (the operator module imports it at DAG parse): Airflow's helpers and the
provider info are imported inside the functions that use them.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_provider_plugz._intervals import _Log

__all__ = ["DOCUMENTED_PIN_EXTRA", "pin_source", "read_pin"]

_log = logging.getLogger(__name__)

#: The connection extra the docs document for the PIN: Airflow's REST API (and Airflow 3's UI)
#: hide an extra whose name contains "secret" when its value is a JSON string; ``pin`` is no such name.
DOCUMENTED_PIN_EXTRA = "pin_secret"

_SIX_DIGITS = re.compile(r"[0-9]{6}")


def pin_source(*, conn_id: str, pin_variable: str | None, pin_extra: str | None) -> str:
    """Where the PIN comes from, for messages (a name, never the value)."""
    if pin_variable is not None:
        return f"Airflow Variable {pin_variable!r}"
    return f"extra {pin_extra!r} of connection {conn_id!r}"


def read_pin(
    *,
    conn_id: str,
    pin_variable: str | None,
    pin_extra: str | None,
    read_extra: Callable[[str], object],
    log: _Log,
) -> str:
    """Fetch the PIN (a Variable, or an extra through ``read_extra``), mask it at once, warn on
    ``log`` if Airflow shows its source, then validate it: six digits, as a string.

    :raises PlugzConfigurationError: the PIN is missing, empty, a JSON number in an extra, or not
        exactly six digits (the text names the source, never the value).
    """
    from airflow_provider_plugz._compat import get_variable
    from airflow_provider_plugz.exceptions import PlugzConfigurationError

    variable = pin_variable is not None
    name = str(pin_variable if variable else pin_extra)
    value = get_variable(name) if variable else read_extra(name)
    _mask_pin(value)
    source = pin_source(conn_id=conn_id, pin_variable=pin_variable, pin_extra=pin_extra)
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
    _warn_if_shown(conn_id=conn_id, variable=variable, name=name, value=value, source=source, log=log)
    pin = value.strip() if isinstance(value, str) else ""
    if not _SIX_DIGITS.fullmatch(pin):
        raise PlugzConfigurationError(
            f"Plugz PIN registration: the PIN in {source} must be a string of exactly six digits "
            "(0-9), as WhatsApp's two-step verification requires; fix the value stored there."
        )
    return pin


def _warn_if_shown(
    *,
    conn_id: str,
    variable: bool,
    name: str,
    value: object,
    source: str,
    log: _Log,
) -> None:
    """One WARNING (never the value) when Airflow's UI and REST API would show the PIN."""
    from airflow_provider_plugz._compat import AIRFLOW_V3

    lookup = {"variable": name} if variable else {"conn_id": conn_id}
    if _from_secrets_backend(**lookup):
        return
    reasons = _pin_exposure(
        variable=variable,
        name_hidden=_airflow_hides_name(name),
        value=value,
        airflow_v3=AIRFLOW_V3,
        form_masks=variable or _plugz_form_masks(name),
    )
    if reasons:
        log.warning(
            "Plugz PIN source %s is shown in clear by Airflow (%s); keep the PIN "
            "as a JSON string in a connection extra whose name Airflow hides, e.g. pin_extra=%r, "
            "or in a secrets backend.",
            source,
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
