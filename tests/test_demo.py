"""`make demo` runs scripts/demo.py: it must run the DAG end to end and say what happened."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import TYPE_CHECKING

from tests.conftest import ROOT

if TYPE_CHECKING:
    from pathlib import Path


def test_demo_runs_the_security_check_both_ways(tmp_path: Path) -> None:
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
    assert "check_pin: PIN set = False -> branch taken: alert (skipped: ok)" in out
    assert "check_pin: PIN set = True -> branch taken: ok (skipped: alert)" in out
    assert "The sandbox answered 2 API call(s)" in out
    assert "AIRFLOW_CONN_PLUGZ_DEFAULT" in out  # how to point it at a real account
    assert len(out.splitlines()) < 30  # a few readable lines; Airflow's chatter goes to the log
    log = (tmp_path / "home" / "airflow.log").read_text()
    assert "demo-instance-token" not in log
    assert "demo-client-token" not in log
