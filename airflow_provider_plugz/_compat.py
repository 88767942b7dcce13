"""Every import that differs between Airflow 2.11+ and 3.x, resolved in one place.

Nothing else in the package checks Airflow's version or catches an ImportError.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from airflow import __version__ as AIRFLOW_VERSION

AIRFLOW_V3 = int(AIRFLOW_VERSION.split(".", 1)[0]) >= 3

if TYPE_CHECKING:  # type-checked against the newest Airflow
    from airflow.sdk import (
        BaseBranchOperator,
        BaseHook,
        BaseOperator,
        BaseSensorOperator,
        PokeReturnValue,
        Variable,
    )
    from airflow.sdk.bases.notifier import BaseNotifier
    from airflow.sdk.exceptions import (
        AirflowException,
        AirflowFailException,
        AirflowSensorTimeout,
        TaskDeferred,
    )
    from airflow.sdk.log import mask_secret
else:
    try:  # Airflow 3.1+
        from airflow.sdk import BaseHook
        from airflow.sdk.exceptions import (
            AirflowException,
            AirflowFailException,
            AirflowSensorTimeout,
            TaskDeferred,
        )
    except ImportError:  # Airflow 2.11 - 3.0
        from airflow.exceptions import (
            AirflowException,
            AirflowFailException,
            AirflowSensorTimeout,
            TaskDeferred,
        )
        from airflow.hooks.base import BaseHook
    try:  # Airflow 3
        from airflow.sdk import BaseOperator, BaseSensorOperator, PokeReturnValue, Variable
    except ImportError:  # Airflow 2
        from airflow.models.baseoperator import BaseOperator
        from airflow.models.variable import Variable
        from airflow.sensors.base import BaseSensorOperator, PokeReturnValue
    try:  # Airflow 3.1+
        from airflow.sdk import BaseBranchOperator
    except ImportError:
        try:  # Airflow 3.0
            from airflow.providers.standard.operators.branch import BaseBranchOperator
        except ImportError:  # Airflow 2
            from airflow.operators.branch import BaseBranchOperator
    try:  # Airflow 3
        from airflow.sdk.bases.notifier import BaseNotifier
    except ImportError:  # Airflow 2
        from airflow.notifications.basenotifier import BaseNotifier
    try:  # Airflow 3.1+
        from airflow.sdk.log import mask_secret
    except ImportError:
        try:  # Airflow 3.0
            from airflow.sdk.execution_time.secrets_masker import mask_secret
        except ImportError:  # Airflow 2
            from airflow.utils.log.secrets_masker import mask_secret


async def aget_connection(conn_id: str) -> Any:
    """Read a connection from inside an event loop without blocking it (Airflow 3's own async
    lookup where there is one; Airflow 2 has only the blocking one: run it in a thread)."""
    aget = getattr(BaseHook, "aget_connection", None)
    if aget is not None:
        return await aget(conn_id)
    return await asyncio.to_thread(BaseHook.get_connection, conn_id)


def channel_answers_through_this_loop() -> bool:
    """True where Airflow's channel to its supervisor answers through the running event loop.

    That is Airflow 3's triggerer: a thread that waits on the channel (reading a connection,
    registering a secret) waits for this loop, and at shutdown, when the loop waits for its
    threads, neither moves. There such work runs on the loop, as Airflow's own code does; in a
    task (the fleet audit) and on Airflow 2 it can run in a worker thread.
    """
    try:
        from airflow.sdk.execution_time import task_runner
    except ImportError:  # Airflow 2
        return False
    loop = getattr(getattr(task_runner, "SUPERVISOR_COMMS", None), "_loop", None)
    try:
        return loop is not None and loop is asyncio.get_running_loop()
    except RuntimeError:
        return False


def event_trigger_base() -> type[Any]:
    """The base class of triggers that schedule DAGs (``AssetWatcher``): Airflow 3's
    ``BaseEventTrigger``; on Airflow 2, which has none, ``BaseTrigger`` (so the module still
    imports; nothing there runs it as a watcher)."""
    from airflow.triggers import base

    base_class: type[Any] = getattr(base, "BaseEventTrigger", base.BaseTrigger)
    return base_class


def has_event_triggers() -> bool:
    """Whether this Airflow schedules DAGs on external events (``Asset`` + ``AssetWatcher``, 3.0+)."""
    from airflow.triggers import base

    return hasattr(base, "BaseEventTrigger")


def has_shared_streams() -> bool:
    """Whether this Airflow's triggerer lets event triggers share one poll (shared streams, 3.3+)."""
    from airflow.triggers import base

    return hasattr(getattr(base, "BaseEventTrigger", None), "shared_stream_key")


def should_hide_value_for_key(name: str) -> bool:
    """Airflow's own rule: does its UI / REST API hide a Variable or extra of this name?"""
    import importlib

    for module in (
        "airflow.sdk._shared.secrets_masker",  # Airflow 3.1+
        "airflow.sdk.execution_time.secrets_masker",  # Airflow 3.0
        "airflow.utils.log.secrets_masker",  # Airflow 2
    ):
        try:
            hide = importlib.import_module(module).should_hide_value_for_key
        except (ImportError, AttributeError):
            continue
        return bool(hide(name))
    return False


#: Where Airflow's secrets maskers live: for each masker (the task SDK's, Airflow core's), the
#: modules to try, newest first; the first one that imports is that masker. On Airflow 3.1+ they
#: are two objects (``mask_secret`` above feeds the task SDK's); on Airflow 2 there is one.
_MASKER_MODULES = (
    ("airflow.sdk._shared.secrets_masker", "airflow.sdk.execution_time.secrets_masker"),  # 3.1+, 3.0
    ("airflow._shared.secrets_masker", "airflow.utils.log.secrets_masker"),  # core: 3.1+, 2.x / 3.0
)
#: What Airflow's ``redact`` returns when it failed (it logs why).
_REDACTION_FAILED = "<redaction-failed>"


def redact_registered(text: str) -> str:
    """``text`` with every secret registered with Airflow's secrets masker replaced by ``***``,
    as Airflow's own logs show it (connection passwords, sensitive extras, ``mask_secret`` values).

    Airflow's masker is imported here, when first used, never on a DAG file's import path. A
    masker Airflow has not set up (Airflow 2 with a logging config that lacks it) holds no
    secrets and changes nothing. Raises ``ValueError`` when a masker fails to redact the text.
    """
    import importlib

    for candidates in _MASKER_MODULES:
        for name in candidates:
            try:
                module = importlib.import_module(name)
            except ImportError:
                continue
            if not hasattr(module, "redact"):
                continue
            try:
                redacted = module.redact(text) if AIRFLOW_V3 else _redact_airflow2(module, text)
            except RuntimeError:
                # Airflow 2's "No SecretsMasker found": its mask_secret raises the same, so no
                # secret can have been registered. (Airflow's maskers catch their own failures.)
                redacted = text
            except Exception as err:  # its text might quote ours: only the class is kept
                raise ValueError(f"Airflow's secrets masker failed ({type(err).__name__})") from None
            if not isinstance(redacted, str) or (redacted == _REDACTION_FAILED != text):
                raise ValueError("Airflow's secrets masker could not redact the text")
            text = redacted
            break
    return text


#: The shortest secret Airflow 3's maskers hide (``[logging] min_length_masked_secret``'s default).
_MIN_MASKED = 5


def _redact_airflow2(module: Any, text: str) -> str:
    """Airflow 2's ``redact``, without the values Airflow 3 would never have registered.

    Airflow 2 registers any non-empty value (a connection password of " " or "a"), so its
    ``redact`` would turn every space or that letter of an alert into ``***``. Its masker is frozen
    (Airflow 2 is end of life), so its registered patterns are read here and only those of at
    least :data:`_MIN_MASKED` non-blank characters are applied, as Airflow 3 does.
    """
    import re

    masker = module._secrets_masker()  # RuntimeError when its logging has no masker
    patterns = sorted(
        (p for p in masker.patterns if len(re.sub(r"\\(.)", r"\1", p).strip()) >= _MIN_MASKED),
        key=len,
        reverse=True,
    )
    if not patterns:
        return text
    try:
        replacer = re.compile("|".join(patterns))
    except re.error:  # a pattern only re2 reads: Airflow's own redaction, unfiltered
        return str(module.redact(text))
    return replacer.sub("***", text)


def secrets_backends() -> list[Any]:
    """The secrets backends a task reads Variables and connections from, in order."""
    if AIRFLOW_V3:
        from airflow.sdk.execution_time.supervisor import ensure_secrets_backend_loaded

        return list(ensure_secrets_backend_loaded())
    from airflow.configuration import ensure_secrets_loaded

    return list(ensure_secrets_loaded())


def default_deferrable() -> bool:
    """Airflow's ``[operators] default_deferrable``, read when an operator is built."""
    from airflow.configuration import conf

    return conf.getboolean("operators", "default_deferrable", fallback=False)


def get_variable(key: str) -> Any:
    """An Airflow Variable (from the metadata DB or a secrets backend), or None if unset."""
    if AIRFLOW_V3:
        return Variable.get(key, default=None)
    return Variable.get(key, default_var=None)  # type: ignore[call-arg]


def read_xcoms(session: Any, dag_id: str, run_id: str) -> list[tuple[str, str, Any]]:
    """Every XCom of a DAG run as (task_id, key, value): for the testing helpers only."""
    if AIRFLOW_V3:
        from airflow.models.xcom import XComModel

        rows = session.scalars(XComModel.get_many(run_id=run_id, dag_ids=dag_id)).all()
        return [(row.task_id, row.key, XComModel.deserialize_value(row)) for row in rows]
    from airflow.models.xcom import XCom

    rows = XCom.get_many(run_id=run_id, dag_ids=dag_id, session=session).all()
    return [(row.task_id, row.key, row.value) for row in rows]  # deserialized on load


def dag_bag(dag_folder: str) -> Any:
    """A ``DagBag`` of ``dag_folder``: for the testing helpers only."""
    try:  # Airflow 3.1+
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]
    return DagBag(dag_folder=dag_folder)


def listener_manager() -> Any:
    """Airflow's listener manager (hooks into task outcomes): for the testing helpers only."""
    try:  # Airflow 3.1+
        from airflow.sdk.listener import get_listener_manager
    except ImportError:
        from airflow.listeners.listener import get_listener_manager  # type: ignore[assignment]
    return get_listener_manager()


__all__ = [
    "AIRFLOW_V3",
    "AirflowException",
    "AirflowFailException",
    "AirflowSensorTimeout",
    "BaseBranchOperator",
    "BaseHook",
    "BaseNotifier",
    "BaseOperator",
    "BaseSensorOperator",
    "PokeReturnValue",
    "TaskDeferred",
    "Variable",
    "aget_connection",
    "channel_answers_through_this_loop",
    "dag_bag",
    "default_deferrable",
    "event_trigger_base",
    "get_variable",
    "has_event_triggers",
    "has_shared_streams",
    "listener_manager",
    "mask_secret",
    "read_xcoms",
    "redact_registered",
    "secrets_backends",
    "should_hide_value_for_key",
]
