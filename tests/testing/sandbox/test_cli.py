"""The command line, ``python -m airflow_provider_plugz.testing.sandbox``: options, banner, signals."""

from __future__ import annotations

import json
import os
import queue
import shlex
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from airflow_provider_plugz.testing.sandbox import main
from tests.support.sandbox import AUTH, CT

if TYPE_CHECKING:
    import requests

    from airflow_provider_plugz.testing import PlugzSandbox

ROOT = Path(__file__).resolve().parents[3]


def _read_lines(proc: subprocess.Popen[str], count: int, timeout: float = 15) -> list[str]:
    """``count`` stdout lines, without hanging the suite if the child never prints them."""
    assert proc.stdout is not None
    stdout = proc.stdout
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in stdout:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    try:
        return [lines.get(timeout=timeout) for _ in range(count)]
    except queue.Empty:
        raise TimeoutError("the sandbox did not print its banner") from None


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_command_line_serves_until_signalled(http: requests.Session, stop_signal: signal.Signals) -> None:
    argv = [sys.executable, "-m", "airflow_provider_plugz.testing.sandbox", "--port", "0"]
    argv += [
        "--instance",
        "pin-1:tok-a:pin",
        "--instance",
        "web.2:tok-b:web:phone-offline:phone=5521987654321",
    ]
    argv += ["--fault", '{"kind": "status", "status": 503, "instance_id": "web.2"}']
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) as proc:
        try:
            lines = _read_lines(proc, 5)
            assert lines[0].startswith("# Plugz sandbox listening on http://127.0.0.1:")
            exports = dict(shlex.split(line)[1].split("=", 1) for line in lines[1:4])
            assert lines[4] == "# queued a status fault for the next 1 call(s) on web.2\n"
            base_url = exports["PLUGZ_SANDBOX_URL"]
            default = json.loads(exports["AIRFLOW_CONN_PLUGZ_DEFAULT"])
            assert default == {
                "conn_type": "plugz",
                "host": base_url,
                "login": "pin-1",
                "password": "tok-a",
                "extra": {"client_token": CT},
            }
            assert json.loads(exports["AIRFLOW_CONN_PLUGZ_WEB_2"])["login"] == "web.2"
            url = f"{base_url}/instances/pin-1/token/tok-a/security/two-fa-code"
            assert http.get(url, headers=AUTH).json() == {"success": True, "hasCode": True}
            web_url = f"{base_url}/instances/web.2/token/tok-b/security/two-fa-code"
            assert http.get(web_url, headers=AUTH).status_code == 503  # the --fault
            assert http.get(web_url, headers=AUTH).status_code == 400
            web = f"{base_url}/instances/web.2/token/tok-b"
            status = http.get(f"{web}/status", headers=AUTH).json()
            assert (status["connected"], status["smartphoneConnected"]) == (True, False)
            assert http.get(f"{web}/device", headers=AUTH).json()["phone"] == "5521987654321"
            assert http.get(f"{base_url}/instances/pin-1/token/tok-a/status", headers=AUTH).json() == {
                "connected": True,
                "session": True,
                "smartphoneConnected": True,
            }
        finally:
            proc.send_signal(stop_signal)
        assert proc.wait(timeout=15) == 0
        assert proc.stderr is not None
        assert "stopped" in proc.stderr.read()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(["--host", "0.0.0.0"], "refusing to listen on 0.0.0.0", id="non-loopback"),
        pytest.param(["--instance", "only-id"], "ID:TOKEN", id="bad-instance"),
        pytest.param(["--instance", "a:b:gold"], "unknown instance flag", id="bad-flag"),
        pytest.param(["--instance", "a:b:offline"], "unknown instance flag(s) ['offline']", id="bad-state"),
        pytest.param(["--instance", "a:b:disconnected:session-lost"], "at most one state", id="two-states"),
        pytest.param(
            ["--instance", "a:b:phone=1:phone=2"], "at most one state and one phone=", id="two-phones"
        ),
        pytest.param(
            ["--instance", "a:b:phone=+5511988887777"], "phone must be 8 to 15 digits", id="bad-phone"
        ),
        pytest.param(["--instance", "a:b:phone="], "phone must be 8 to 15 digits", id="empty-phone"),
        pytest.param(["--latency", "-1"], "--latency", id="negative-latency"),
        pytest.param(["--fault", "drop"], "expected a JSON object", id="fault-not-json"),
        pytest.param(
            ["--fault", '{"kind": "explode"}'],
            "kind must be one of status, html, malformed, drop, slow, redirect, drip, raw",
            id="fault-kind",
        ),
        pytest.param(
            ["--fault", '{"kind": "drip", "interval": 0}'], "interval must be", id="fault-bad-interval"
        ),
        pytest.param(
            ["--fault", '{"kind": "drop", "times": 0}'],
            "times must be an integer >= 1",
            id="fault-times-zero",
        ),
        pytest.param(["--idle-timeout", "0"], "--idle-timeout must be", id="idle-timeout-zero"),
        pytest.param(["--idle-timeout", "inf"], "--idle-timeout must be", id="idle-timeout-infinite"),
        pytest.param(["--max-connections", "0"], "--max-connections must be >= 1", id="max-connections-zero"),
        pytest.param(["--latency", "nan"], "--latency", id="latency-nan"),
    ],
)
def test_command_line_refuses_bad_options(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as excinfo:
        main(argv)
    assert excinfo.value.code == 2
    assert message in capsys.readouterr().err


def test_command_line_reports_a_busy_port(sb: PlugzSandbox, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--port", str(sb.port)]) == 1
    assert f"cannot listen on 127.0.0.1 port {sb.port}" in capsys.readouterr().err


def test_command_line_options(capsys: pytest.CaptureFixture[str]) -> None:
    """The options scripts rely on stay, next to the bounds that make a long run safe."""
    with pytest.raises(SystemExit) as excinfo:
        main(["--help"])
    assert excinfo.value.code == 0
    usage = capsys.readouterr().out
    for option in ("--host", "--port", "--client-token", "--instance", "--latency", "--fault"):
        assert option in usage
    assert "ID:TOKEN[:pin][:web][:expired][:STATE][:phone=DIGITS]" in usage
    assert "--idle-timeout SECONDS" in usage
    assert "--max-connections N" in usage
