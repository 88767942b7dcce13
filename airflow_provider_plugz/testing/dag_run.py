"""Run a DAG end to end in-process (``dag.test()`` on SQLite) and report what happened.

For our tests, the ``make demo`` script, and users who want to run their Plugz DAGs against
the sandbox. :func:`configure_airflow_home` must run before anything imports ``airflow``:
Airflow reads its home and database URL at import time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path


def configure_airflow_home(home: Path, dags_folder: Path) -> None:
    """Point Airflow at a throwaway home with SQLite metadata and the given DAGs folder."""
    home.mkdir(parents=True, exist_ok=True)
    os.environ.pop("AIRFLOW_CONFIG", None)
    os.environ.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            # dag.test() re-parses [core] dags_folder and serializes what it finds there.
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            # A retry would make dag.test() idle through retry_delay.
            "AIRFLOW__CORE__DEFAULT_TASK_RETRIES": "0",
        }
    )


def init_metadata_db() -> None:
    """Create the metadata tables (a fresh SQLite file is built from the models directly)."""
    from airflow.utils import db

    db.initdb()


def load_dag(dag_folder: Path, dag_id: str) -> Any:
    """Parse ``dag_folder`` afresh and return one DAG (dag.test() mutates DAGs: never reuse one)."""
    from airflow_provider_plugz._compat import dag_bag

    bag = dag_bag(str(dag_folder))
    if bag.import_errors:
        raise RuntimeError(f"DAG files failed to import: {bag.import_errors}")
    return bag.get_dag(dag_id)


@dataclass(frozen=True)
class DagRunReport:
    """The outcome of one :func:`run_dag`: run state, task states, every XCom by task and key."""

    dag_id: str
    run_id: str
    state: str
    task_states: dict[str, str | None]
    xcom: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: dict[str, BaseException | str | None] = field(default_factory=dict)

    def __repr__(self) -> str:
        # A task may push, or raise with, anything (a message text, a phone): keys and types only.
        xcom = {task_id: sorted(values) for task_id, values in self.xcom.items()}
        errors = {task_id: type(err).__name__ for task_id, err in self.errors.items()}
        return (
            f"DagRunReport(dag_id={self.dag_id!r}, run_id={self.run_id!r}, state={self.state!r}, "
            f"task_states={self.task_states!r}, xcom keys={xcom!r}, errors={errors!r})"
        )

    def xcom_value(self, task_id: str, key: str = "return_value") -> Any:
        return self.xcom.get(task_id, {}).get(key)


def run_dag(dag: Any, *, run_conf: dict[str, Any] | None = None) -> DagRunReport:
    """``dag.test()`` (tasks and triggers run inline), then read back states, XComs and errors.

    ``dag.test()`` never raises for a failed task; the report's ``state`` says ``failed``.
    """
    from airflow.listeners import hookimpl
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from airflow_provider_plugz._compat import listener_manager, read_xcoms

    class FailureCollector:
        """A task-SDK listener that keeps the exception each failed task raised."""

        def __init__(self) -> None:
            self.errors: dict[str, BaseException | str | None] = {}

        @hookimpl
        def on_task_instance_failed(self, previous_state: Any, task_instance: Any, error: Any) -> None:
            self.errors[task_instance.task_id] = error

    collector = FailureCollector()
    manager = listener_manager()
    manager.add_listener(collector)
    try:
        dag_run = dag.test(run_conf=run_conf)
    finally:
        manager.pm.unregister(collector)

    with create_session() as session:
        tis = session.scalars(
            select(TaskInstance).where(
                TaskInstance.dag_id == dag_run.dag_id, TaskInstance.run_id == dag_run.run_id
            )
        ).all()
        xcom: dict[str, dict[str, Any]] = {}
        for task_id, key, value in read_xcoms(session, dag_run.dag_id, dag_run.run_id):
            xcom.setdefault(task_id, {})[key] = value
        return DagRunReport(
            dag_id=dag_run.dag_id,
            run_id=dag_run.run_id,
            state=str(dag_run.state),
            task_states={ti.task_id: None if ti.state is None else str(ti.state) for ti in tis},
            xcom=xcom,
            errors=collector.errors,
        )
