"""`make demo`: run the plugz_security_check example DAG end to end against the Plugz sandbox.

Airflow runs in-process (``dag.test()``) on a throwaway SQLite home; its own chatter goes to a
log file, and this script prints what happened in a few lines.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

ROOT = Path(__file__).resolve().parent.parent
INSTANCE_ID, INSTANCE_TOKEN = "demo-instance", "demo-instance-token"
ALERTS_ID, ALERTS_TOKEN = "demo-alerts", "demo-alerts-token"
ONCALL_PHONE = "5511900001234"  # made up: the sandbox sends nothing anywhere

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow_provider_plugz.testing import PlugzSandbox
    from airflow_provider_plugz.testing.dag_run import DagRunReport


@contextlib.contextmanager
def output_to(path: Path) -> Iterator[None]:
    """Send everything written to stdout/stderr (Airflow's logs included) to ``path``."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with path.open("ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def describe(report: DagRunReport, seconds: float) -> list[str]:
    has_code, status = report.xcom_value("check_pin"), report.xcom_value("check_connection")
    taken = [task for task in ("alert", "ok") if report.task_states.get(task) == "success"]
    skipped = [task for task in ("alert", "ok") if report.task_states.get(task) == "skipped"]
    lines = [f"  DAG run {report.state} in {seconds:.1f} s"]
    if has_code is None or status is None:
        for task in ("check_pin", "check_connection"):
            lines.append(f"  {task}: {report.task_states.get(task)}: {report.errors.get(task)}")
        return lines
    lines.append(
        f"  check_pin: PIN set = {has_code}; check_connection: connected = {status['connected']}"
        f" -> branch taken: {', '.join(taken) or 'none'} (skipped: {', '.join(skipped) or 'none'})"
    )
    if "ok" in taken:
        lines.append(f"  ok: {report.xcom_value('ok')}")
    if "alert" in taken:
        lines.append("  alert: sent a WhatsApp message to the on-call phone (see the outbox below)")
    return lines


def outbox(sandbox: PlugzSandbox) -> list[str]:
    """The sandbox's outbox, a line per message: sender instance, recipient (masked), text."""
    return [
        f"  {m.instance_id} -> ***{m.phone[-4:]}: {' / '.join(m.message.splitlines())}"
        for m in sandbox.messages
    ]


def run() -> tuple[DagRunReport, float]:
    from airflow_provider_plugz.testing.dag_run import load_dag, run_dag

    started = time.monotonic()
    report = run_dag(load_dag(ROOT / "example_dags", "plugz_security_check"))
    return report, time.monotonic() - started


def main() -> int:
    home = Path(os.environ.get("PLUGZ_DEMO_HOME", ROOT / ".demo-airflow"))
    shutil.rmtree(home, ignore_errors=True)

    from airflow_provider_plugz.testing.dag_run import configure_airflow_home

    configure_airflow_home(home, ROOT / "example_dags")
    log_path = home / "airflow.log"

    from airflow_provider_plugz.testing import PlugzSandbox

    print("Plugz provider demo: the plugz_security_check DAG, run by Airflow against the Plugz sandbox")
    with PlugzSandbox(client_token="demo-client-token") as sandbox:
        sandbox.add_instance(INSTANCE_ID, INSTANCE_TOKEN, has_code=False)
        sandbox.add_instance(ALERTS_ID, ALERTS_TOKEN)
        os.environ["AIRFLOW_CONN_PLUGZ_DEFAULT"] = sandbox.connection_json(INSTANCE_ID)
        os.environ["AIRFLOW_CONN_PLUGZ_ALERTS"] = sandbox.connection_json(ALERTS_ID)
        os.environ["AIRFLOW_VAR_PLUGZ_ONCALL_PHONE"] = ONCALL_PHONE
        print(
            f"Sandbox at {sandbox.base_url}; plugz_default -> instance {INSTANCE_ID!r} (no PIN yet),\n"
            f"plugz_alerts -> instance {ALERTS_ID!r}, plugz_oncall_phone = ***{ONCALL_PHONE[-4:]}"
        )
        print("Starting Airflow (SQLite metadata, first start takes ~20 s) ...", flush=True)
        with output_to(log_path):
            from airflow_provider_plugz.testing.dag_run import init_metadata_db

            init_metadata_db()
            first = run()
        print("\nRun 1 (the number has no PIN):")
        print("\n".join(describe(*first)))
        first_outbox = outbox(sandbox)
        print("The sandbox's outbox (what WhatsApp would deliver):")
        print("\n".join(first_outbox) or "  (empty)")

        sandbox.set_has_code(INSTANCE_ID, True)
        with output_to(log_path):
            second = run()
        print("\nRun 2 (after a PIN was set on the number):")
        print("\n".join(describe(*second)))
        calls = sandbox.request_count
        sent_after_second = len(sandbox.messages)

    print(f"\nThe sandbox answered {calls} API call(s). Airflow's full log: {log_path}")
    print(
        "\nTo run the same DAG against your real Plugz account, put example_dags/ in your DAGs folder\n"
        "and give it your credentials (Plugz panel: instance id, instance token, account security token):\n"
        '  export AIRFLOW_CONN_PLUGZ_DEFAULT=\'{"conn_type": "plugz", "login": "<instance id>",\n'
        '    "password": "<instance token>", "extra": {"client_token": "<Client-Token>"}}\'\n'
        "  export AIRFLOW_CONN_PLUGZ_ALERTS='...'  # the same, for the number alerts are sent from\n"
        "  export AIRFLOW_VAR_PLUGZ_ONCALL_PHONE=5511999999999  # who gets them\n"
        "  airflow dags test plugz_security_check"
    )
    expected = (
        first[0].state == "success"
        and first[0].task_states.get("alert") == "success"
        and second[0].state == "success"
        and second[0].task_states.get("ok") == "success"
        and len(first_outbox) == 1
        and sent_after_second == 1
    )
    if not expected:
        print(f"\nThe demo did not go as expected; see {log_path}", file=sys.stderr)
    return 0 if expected else 1


if __name__ == "__main__":
    sys.exit(main())
