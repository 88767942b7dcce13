"""`make demo` runs scripts/demo.py: it must run the DAG end to end and say what happened.

`make demo` runs in the Airflow 3 virtualenv (.venv), so this runs there only: once per `make test`.
On Airflow 2 the same DAG runs end to end in tests/test_example_dags.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from airflow_provider_plugz._compat import AIRFLOW_V3
from tests.conftest import ROOT

if TYPE_CHECKING:
    from pathlib import Path


@pytest.mark.skipif(not AIRFLOW_V3, reason="make demo runs in the Airflow 3 virtualenv: run once, there")
def test_demo_runs_the_security_check_both_ways_and_shows_the_alert_in_the_outbox(tmp_path: Path) -> None:
    env = {**os.environ, "PLUGZ_DEMO_HOME": str(tmp_path / "home")}
    env.pop("AIRFLOW_CONN_PLUGZ_DEFAULT", None)
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "demo.py")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "PIN set = False; check_connection: connected = True -> branch taken: alert (skipped: ok)" in out
    assert "PIN set = True; check_connection: connected = True -> branch taken: ok (skipped: alert)" in out
    # The alert arrived in the sandbox's outbox, from plugz_alerts to the masked on-call phone.
    outbox = out.split("The sandbox's outbox (what WhatsApp would deliver):\n", 1)[1].split("\n\n", 1)[0]
    assert outbox.splitlines() == [
        "  demo-alerts -> ***1234: *Plugz security check* / The WhatsApp number of connection plugz_default"
        " has NO two-step-verification PIN: set one in WhatsApp > Settings."
    ]
    assert "5511900001234" not in out
    assert "The sandbox answered 6 API call(s)" in out  # PIN and status twice; the alert and its check
    for name in ("AIRFLOW_CONN_PLUGZ_DEFAULT", "AIRFLOW_CONN_PLUGZ_ALERTS", "AIRFLOW_VAR_PLUGZ_ONCALL_PHONE"):
        assert name in out  # how to point it at a real account
    assert len(out.splitlines()) < 30  # a few readable lines; Airflow's chatter goes to the log
    log = (tmp_path / "home" / "airflow.log").read_text()
    assert "demo-instance-token" not in log
    assert "demo-client-token" not in log
    assert "demo-alerts-token" not in log
    assert "5511900001234" not in log  # the on-call phone, masked in the notifier's log line
