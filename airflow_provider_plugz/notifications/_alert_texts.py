"""The texts a :class:`~airflow_provider_plugz.notifications.plugz.PlugzNotifier` composes: the
alert sent when no message is given (:func:`default_message`) and the warning logged when the
alerting number does not send (:func:`sender_warning`). Pure functions of what Airflow hands a
callback; nothing here sends, logs or reads a connection.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from airflow_provider_plugz._compat import AIRFLOW_V3
from airflow_provider_plugz._vocabulary import CONNECTED, STATE_WORDS

__all__ = ["default_message", "sender_warning"]


def sender_warning(conn_id: str, state: str, reason: str | None = None) -> str | None:
    """The WARNING when the alerting number of ``conn_id`` is in connection ``state`` (one of
    :data:`~airflow_provider_plugz._vocabulary.CONNECTION_STATES`); None when it is connected.
    ``reason`` is the server's (``InstanceStatus.error``); without one the state is said in words."""
    if state == CONNECTED:
        return None
    return (
        f"The alerting number of connection {conn_id!r} is not connected "
        f"({reason or STATE_WORDS.get(state, state)}): Plugz keeps the alert in its queue (at most "
        "1,000 messages) and sends it when the number reconnects, possibly late. Reconnect the number "
        "in the Plugz panel."
    )


# --- the default text --------------------------------------------------------------------------

_TASK_STATES = {
    "failed": "failed",
    "up_for_retry": "failed, will retry",
    "success": "succeeded",
    "skipped": "was skipped",
    "running": "started",
    "up_for_reschedule": "is waiting to be rescheduled",
}
_RUN_STATES = {"failed": "failed", "success": "succeeded", "running": "is running"}


def default_message(context: Mapping[str, Any]) -> str:
    """The alert text when none is given: what happened, where, and the link to open.

    A task callback's names the DAG, task, run, try, the exception's class and the task's log
    URL; a DAG callback's the run, the reason and the last task's log; a Deadline Alert's the
    run and the deadline it missed. The exception's text is left out: it may hold anything, and
    the alert leaves Airflow (put ``{{ exception }}`` in your own message to send it; secrets
    in it are sent as ``***``).
    """
    ti = context.get("ti") or context.get("task_instance")
    dag_run = context.get("dag_run")
    dag_id = _text(_field(ti, "dag_id") or _field(context.get("dag"), "dag_id") or _field(dag_run, "dag_id"))
    run_id = _text(
        context.get("run_id")
        or _field(ti, "run_id")
        or _field(dag_run, "run_id")
        or _field(dag_run, "dag_run_id")
    )
    lines: list[tuple[str, Any]] = [("DAG", dag_id)]
    if "deadline" in context:
        title = "DAG run missed its deadline"
        lines += [("Run", run_id), ("Deadline", _field(context["deadline"], "deadline_time"))]
        lines += [("Link", _run_url(dag_id, run_id))]
    elif "reason" in context or ti is None:  # a DAG callback (its ti, if any, is the run's last)
        # A DAG's callbacks say why they run ("success", "task_failure", ...); while they run the
        # run's state may not be final yet (Airflow 2 still says "running").
        reason = context.get("reason")
        state = "success" if reason == "success" else "failed" if reason else _state(_field(dag_run, "state"))
        title = f"DAG run {_RUN_STATES.get(state or '', state or 'finished')}"
        lines += [("Run", run_id), ("Reason", reason)]
        if ti is not None:
            lines += [("Last task", _field(ti, "task_id")), ("Its log", _field(ti, "log_url"))]
        else:
            lines += [("Link", _run_url(dag_id, run_id))]
    else:
        state = _state(_field(ti, "state"))
        title = f"task {_TASK_STATES.get(state or '', state or 'finished')}"
        task_id = _text(_field(ti, "task_id"))
        map_index = _field(ti, "map_index")
        if isinstance(map_index, int) and map_index >= 0:
            task_id = f"{task_id} [{map_index}]"
        exception = context.get("exception")
        lines += [("Task", task_id), ("Run", run_id), ("Try", _field(ti, "try_number"))]
        lines += [("Error", None if exception is None else type(exception).__name__)]
        lines += [("Log", _field(ti, "log_url"))]
    body = [f"{label}: {value}" for label, value in lines if value not in (None, "")]
    return "\n".join([f"*Airflow: {title}*", *body])


def _field(obj: Any, name: str) -> Any:
    """``obj.name``, or ``obj[name]`` for the JSON dicts of a Deadline Alert's context; else None."""
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(name)
    try:
        return getattr(obj, name, None)
    except Exception:  # a property that cannot be computed here leaves its line out
        return None


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _state(value: Any) -> str | None:
    """A state enum's or string's value (``TaskInstanceState.FAILED`` -> ``failed``)."""
    value = getattr(value, "value", value)
    return None if value is None else str(value)


def _run_url(dag_id: str | None, run_id: str | None) -> str | None:
    """The DAG run's page in Airflow's UI, built as Airflow builds a task's ``log_url``."""
    if not dag_id or not run_id:
        return None
    from airflow.configuration import conf

    if AIRFLOW_V3:
        base = conf.get("api", "base_url", fallback="http://localhost:8080/")
        return f"{base.rstrip('/')}/dags/{dag_id}/runs/{quote(run_id)}"
    base = conf.get("webserver", "base_url", fallback="http://localhost:8080/")
    return f"{base.rstrip('/')}/dags/{dag_id}/grid?dag_run_id={quote(run_id, safe='')}"
