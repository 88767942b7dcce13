"""How an exception becomes a report entry's ``error_class`` and ``message``
(:func:`error_entry`): its class, and a text known to hold no secret.
"""

from __future__ import annotations

from airflow_provider_plugz.audit.xcom import ERROR_CLASS_PATTERN, cut
from airflow_provider_plugz.exceptions import PlugzError


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
