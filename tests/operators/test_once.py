"""At most once through Airflow's lifecycle: the send-once record of operators/_once.py.

The message (or PIN) is never sent again when an earlier try of the same task instance may have
sent it: not after a try whose request may have reached Plugz, not on an Airflow retry, not after
a worker was killed mid-request - unless the task opts in with ``allow_resend=True``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

import pytest
import requests_mock as rm

from airflow_provider_plugz._compat import AirflowFailException
from airflow_provider_plugz.exceptions import (
    PlugzAuthenticationError,
    PlugzBadRequestError,
    PlugzConnectError,
    PlugzError,
    PlugzOutcomeUnknownError,
    PlugzRateLimitedError,
)
from airflow_provider_plugz.operators._once import RECORD_KEY, SENDING, SENT
from airflow_provider_plugz.operators.messages import PlugzSendMessageOperator
from airflow_provider_plugz.operators.plugz import PlugzSetPinOperator
from airflow_provider_plugz.testing import Fault
from airflow_provider_plugz.testing.dag_run import run_dag
from tests.conftest import (
    CLIENT_TOKEN,
    INSTANCE_ID,
    INSTANCE_TOKEN,
    ROOT,
    FakeTaskStateStore,
    load_dag_file,
    task_context,
)

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from airflow_provider_plugz.testing import PlugzSandbox

PHONE = "5511987654321"
TEXT = "plugz_sales has NO two-step-verification PIN."
PIN = "135790"


@pytest.fixture
def short_deadline(sandbox: PlugzSandbox, monkeypatch: pytest.MonkeyPatch) -> PlugzSandbox:
    """``plugz_default`` with a 1 s deadline per attempt (the issue's dripping server), and a PIN."""
    conn = json.loads(sandbox.connection_json(INSTANCE_ID))
    conn["extra"].update(total_timeout=1, pin_secret=PIN)
    monkeypatch.setenv("AIRFLOW_CONN_PLUGZ_DEFAULT", json.dumps(conn))
    return sandbox


def send(store: FakeTaskStateStore, try_number: int = 1, **kwargs: Any) -> Any:
    operator = PlugzSendMessageOperator(task_id="send", phone=PHONE, message=TEXT, **kwargs)
    return operator.execute(task_context(store, try_number))


def served_sends(sandbox: PlugzSandbox) -> int:
    """Requests to send-text the sandbox received (answered or not)."""
    return sum(1 for request in sandbox.requests if request.path.endswith("/send-text"))


def record(store: FakeTaskStateStore) -> dict[str, Any] | None:
    value = store.values.get(RECORD_KEY)
    return None if value is None else dict(value)


# --- one try: what an error means for the next -----------------------------------------------

MAY_HAVE_LEFT = [
    pytest.param(Fault.drip(0.3), id="queued-then-dripped-past-the-deadline"),
    pytest.param(Fault.status(503), id="503-a-gateway-may-have-passed-it-on"),
    pytest.param(Fault.status(500), id="500"),
    pytest.param(Fault.drop(), id="connection-dropped-after-sending"),
    pytest.param(Fault.malformed(), id="200-we-cannot-read"),
]


@pytest.mark.parametrize("fault", MAY_HAVE_LEFT)
def test_a_request_that_may_have_left_fails_without_retry_and_blocks_later_tries(
    short_deadline: PlugzSandbox, fault: Fault
) -> None:
    store = FakeTaskStateStore()
    short_deadline.inject(fault)
    started = time.monotonic()
    with pytest.raises(PlugzOutcomeUnknownError) as info:
        send(store)
    assert time.monotonic() - started < 5  # the deadline held; nothing waited for the drip
    assert isinstance(info.value, AirflowFailException)  # Airflow does not retry it
    message = str(info.value)
    assert "may have received the WhatsApp message" in message
    assert "queue" in message
    assert "allow_resend=True" in message
    assert "try again later" not in message  # the advice of the error underneath is dropped
    assert PHONE not in message
    assert TEXT not in message
    assert record(store)["state"] == SENDING  # type: ignore[index]

    # A later try (a retry, a clear) sends nothing and says why.
    sent_before = served_sends(short_deadline)
    with pytest.raises(PlugzOutcomeUnknownError, match="try 1 of this task instance"):
        send(store, try_number=2)
    assert served_sends(short_deadline) == sent_before


def test_allow_resend_sends_again_after_an_unknown_outcome(short_deadline: PlugzSandbox) -> None:
    store = FakeTaskStateStore()
    short_deadline.inject(Fault.status(503))
    with pytest.raises(PlugzOutcomeUnknownError):
        send(store, allow_resend=True)
    result = send(store, try_number=2, allow_resend=True)
    assert served_sends(short_deadline) == 2
    assert record(store) == {"state": SENT, "try": 2, "at": record(store)["at"], "result": result}  # type: ignore[index]


NEVER_APPLIED = [
    pytest.param(Fault.status(401), PlugzAuthenticationError, id="401-refused"),
    pytest.param(Fault.status(429), PlugzRateLimitedError, id="429-refused"),
    pytest.param(
        Fault.status(400, body={"error": "The message queue is full"}),
        PlugzBadRequestError,
        id="400-queue-full",
    ),
]


@pytest.mark.parametrize(("fault", "error_class"), NEVER_APPLIED)
def test_a_refused_request_keeps_its_error_and_lets_the_retry_send(
    short_deadline: PlugzSandbox, fault: Fault, error_class: type[PlugzError]
) -> None:
    store = FakeTaskStateStore()
    short_deadline.inject(fault)
    with pytest.raises(error_class) as info:
        send(store)
    assert not isinstance(info.value, (PlugzOutcomeUnknownError, AirflowFailException))
    assert record(store) is None  # nothing to guard: the server said no
    send(store, try_number=2)
    assert len(short_deadline.messages) == 1


def test_a_request_that_never_left_lets_the_retry_send(
    short_deadline: PlugzSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Connection refused: provably never sent, so the next try sends (once)."""
    store = FakeTaskStateStore()
    good = os.environ["AIRFLOW_CONN_PLUGZ_DEFAULT"]
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    conn = json.loads(good)
    conn["host"] = f"http://127.0.0.1:{port}"
    conn["extra"]["max_attempts"] = 1
    monkeypatch.setenv("AIRFLOW_CONN_PLUGZ_DEFAULT", json.dumps(conn))
    with pytest.raises(PlugzConnectError):
        send(store)
    assert record(store) is None
    monkeypatch.setenv("AIRFLOW_CONN_PLUGZ_DEFAULT", good)
    send(store, try_number=2)
    assert len(short_deadline.messages) == 1


def test_a_confirmed_send_is_reported_again_not_sent_again(short_deadline: PlugzSandbox) -> None:
    """Try 1 got its answer and then died (XCom push failed, worker lost): try 2 returns its ids."""
    store = FakeTaskStateStore()
    first = send(store)
    assert record(store)["result"] == first  # type: ignore[index]
    assert send(store, try_number=2) == first
    assert served_sends(short_deadline) == 1
    # Opting in sends again, knowingly.
    assert send(store, try_number=3, allow_resend=True) != first
    assert served_sends(short_deadline) == 2


@pytest.mark.parametrize(
    "stored",
    [
        pytest.param("not json", id="text"),
        pytest.param({"state": "exploded"}, id="unknown-state"),
        pytest.param({"state": SENT, "result": {"zaap_id": 1}}, id="sent-without-a-usable-result"),
        pytest.param("x" * 100_000, id="huge"),
        pytest.param(["sending"], id="a-list"),
    ],
)
def test_a_record_we_cannot_read_counts_as_may_have_sent(short_deadline: PlugzSandbox, stored: Any) -> None:
    store = FakeTaskStateStore({RECORD_KEY: stored})
    with pytest.raises(PlugzOutcomeUnknownError, match="an earlier try"):
        send(store, try_number=2)
    assert served_sends(short_deadline) == 0


class BrokenStore(FakeTaskStateStore):
    def __init__(self, broken: str) -> None:
        super().__init__()
        self.broken = broken

    def get(self, key: str, default: Any = None) -> Any:
        if self.broken == "get":
            raise ConnectionError("api-server unreachable")
        return super().get(key, default)

    def set(self, key: str, value: Any) -> None:
        if self.broken == "set":
            raise ConnectionError("api-server unreachable")
        super().set(key, value)


@pytest.mark.parametrize("broken", ["get", "set"])
def test_no_record_no_send(short_deadline: PlugzSandbox, broken: str) -> None:
    with pytest.raises(PlugzError, match=r"could not (read|write) the record") as info:
        send(BrokenStore(broken))
    assert "Nothing was sent" in str(info.value)
    assert not isinstance(info.value, PlugzOutcomeUnknownError)
    assert served_sends(short_deadline) == 0


def test_a_context_without_a_task_instance_is_refused(short_deadline: PlugzSandbox) -> None:
    with pytest.raises(PlugzError, match="context"):
        PlugzSendMessageOperator(task_id="send", phone=PHONE, message=TEXT).execute({})  # type: ignore[arg-type]
    assert served_sends(short_deadline) == 0


# --- set PIN: the state is read first ------------------------------------------------------------


PIN_URL = f"https://api.plugzapi.com.br/instances/{INSTANCE_ID}/token/{INSTANCE_TOKEN}/security/two-fa-code"


@pytest.fixture
def pin_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[rm.Mocker]:
    """The PIN endpoints faked with requests_mock (the sandbox cannot fail only the POST)."""
    conn = {
        "conn_type": "plugz",
        "login": INSTANCE_ID,
        "password": INSTANCE_TOKEN,
        "extra": {"client_token": CLIENT_TOKEN, "pin_secret": PIN},
    }
    monkeypatch.setenv("AIRFLOW_CONN_PLUGZ_DEFAULT", json.dumps(conn))
    with rm.Mocker() as mocker:
        yield mocker


def set_pin(store: FakeTaskStateStore, try_number: int = 1, **kwargs: Any) -> Any:
    operator = PlugzSetPinOperator(task_id="set_pin", pin_extra="pin_secret", **kwargs)
    return operator.execute(task_context(store, try_number))


def pin_reads(*has_code: bool) -> list[dict[str, Any]]:
    return [{"json": {"success": True, "hasCode": value}} for value in has_code]


def test_set_pin_that_may_have_left_fails_without_retry(pin_api: rm.Mocker) -> None:
    store = FakeTaskStateStore()
    pin_api.get(PIN_URL, pin_reads(False))
    post = pin_api.post(PIN_URL, status_code=503)
    with pytest.raises(PlugzOutcomeUnknownError, match="may have received the PIN") as info:
        set_pin(store)
    assert isinstance(info.value, AirflowFailException)
    assert PIN not in str(info.value)
    assert post.call_count == 1
    assert record(store)["state"] == SENDING  # type: ignore[index]


@pytest.mark.parametrize(
    ("has_code", "overwrite", "allow_resend", "outcome", "posts"),
    [
        pytest.param(
            False, False, False, {"changed": True, "has_code": True}, 1, id="no-pin-now-it-did-not-take"
        ),
        pytest.param(True, False, False, {"changed": False, "has_code": True}, 0, id="pin-now-nothing-to-do"),
        pytest.param(True, True, False, PlugzOutcomeUnknownError, 0, id="overwrite-but-it-may-be-ours"),
        pytest.param(True, True, True, {"changed": True, "has_code": True}, 1, id="overwrite-opted-in"),
    ],
)
def test_set_pin_after_an_earlier_try_reads_the_state_first(
    pin_api: rm.Mocker, has_code: bool, overwrite: bool, allow_resend: bool, outcome: Any, posts: int
) -> None:
    store = FakeTaskStateStore({RECORD_KEY: {"state": SENDING, "try": 1, "at": "2026-12-07T00:00:00+00:00"}})
    pin_api.get(PIN_URL, pin_reads(has_code, True))
    post = pin_api.post(PIN_URL, json={"success": True})
    if isinstance(outcome, dict):
        assert set_pin(store, try_number=2, overwrite=overwrite, allow_resend=allow_resend) == outcome
    else:
        with pytest.raises(outcome):
            set_pin(store, try_number=2, overwrite=overwrite, allow_resend=allow_resend)
    assert post.call_count == posts


# --- real retries: dag.test() on Airflow 3 and 2 -------------------------------------------------

DAG_ID = "plugz_send_once"
DAG_FILE = """
import datetime

import pendulum

from airflow_provider_plugz.operators.messages import PlugzSendMessageOperator

try:  # Airflow 3
    from airflow.sdk import DAG
except ImportError:  # Airflow 2
    from airflow import DAG


class DiesAfterSending(PlugzSendMessageOperator):
    \"\"\"Its first try fails right after Plugz confirmed the send (a lost XCom push, say).\"\"\"

    def execute(self, context):
        result = super().execute(context)
        if {die_after_send!r} and context["ti"].try_number == 1:
            raise RuntimeError("lost after the send")
        return result


with DAG({dag_id!r}, schedule=None, start_date=pendulum.datetime(2024, 1, 1)):
    DiesAfterSending(
        task_id="send",
        phone={phone!r},
        message={text!r},
        allow_resend={allow_resend!r},
        retries=1,
        retry_delay=datetime.timedelta(0),
    )
"""


def dag_source(*, die_after_send: bool = False, allow_resend: bool = False) -> str:
    return DAG_FILE.format(
        dag_id=DAG_ID, phone=PHONE, text=TEXT, die_after_send=die_after_send, allow_resend=allow_resend
    )


def send_tries(report: Any) -> int:
    """How many tries of the send task ran (Airflow's own count)."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        ti = session.scalars(
            select(TaskInstance).where(TaskInstance.dag_id == DAG_ID, TaskInstance.run_id == report.run_id)
        ).one()
        return int(ti.try_number)


@pytest.mark.parametrize(
    ("fault", "die_after_send", "allow_resend", "state", "tries", "sends", "queued"),
    [
        # The case: try 1 times out while the server queues and drips; no try 2.
        pytest.param(Fault.drip(0.3), False, False, "failed", 1, 1, 1, id="dripped-answer-no-retry"),
        pytest.param(Fault.status(502), False, False, "failed", 1, 1, 0, id="502-no-retry"),
        # Refused: Airflow's retry is harmless and sends the one message.
        pytest.param(Fault.status(401), False, False, "success", 2, 2, 1, id="refused-then-retried"),
        # Try 1 sent and then died: try 2 reports the message, sends nothing.
        pytest.param(None, True, False, "success", 2, 1, 1, id="sent-then-died-retry-reports-it"),
        pytest.param(None, True, True, "success", 2, 2, 2, id="sent-then-died-allow-resend-sends-again"),
    ],
)
def test_real_airflow_retries_never_send_twice(
    airflow_db: Path,
    short_deadline: PlugzSandbox,
    tmp_path: Path,
    fault: Fault | None,
    die_after_send: bool,
    allow_resend: bool,
    state: str,
    tries: int,
    sends: int,
    queued: int,
) -> None:
    if fault is not None:
        short_deadline.inject(fault)
    dag = load_dag_file(
        tmp_path, dag_source(die_after_send=die_after_send, allow_resend=allow_resend), DAG_ID
    )
    report = run_dag(dag)

    assert report.task_states == {"send": state}
    assert send_tries(report) == tries
    deadline = time.monotonic() + 5
    while served_sends(short_deadline) < sends and time.monotonic() < deadline:
        time.sleep(0.05)  # a dripping request is still being served
    assert served_sends(short_deadline) == sends
    assert len(short_deadline.messages) == queued
    if state == "failed":
        assert isinstance(report.errors["send"], PlugzOutcomeUnknownError)
    else:
        (last, *_) = reversed(short_deadline.messages)
        assert report.xcom_value("send") == {"zaap_id": last.zaap_id, "message_id": last.message_id}


# --- a worker killed after the request left ------------------------------------------------------


def airflow_tasks_test(folder: Path, logical_date: str) -> subprocess.Popen[bytes]:
    """`airflow tasks test` of the send task, in its own process group (killed as a whole)."""
    from airflow import settings

    env = {
        **os.environ,
        # The database this process really uses (its environment may name a later temp home).
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": str(settings.engine.url),
        "AIRFLOW__CORE__DAGS_FOLDER": str(folder),
        "PYTHONPATH": str(ROOT),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "airflow", "tasks", "test", DAG_ID, "send", logical_date],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def test_a_worker_killed_after_the_request_left_is_not_sent_again(
    airflow_db: Path, short_deadline: PlugzSandbox, tmp_path: Path
) -> None:
    """Try 1 runs in a real process that dies (SIGKILL) once Plugz has queued the message and
    before it sees the answer; try 2 of the same task instance sends nothing and says why."""
    load_dag_file(tmp_path, dag_source(), DAG_ID)
    logical_date = "2026-01-02T00:00:00+00:00"
    short_deadline.inject(Fault.drip(5.0))  # queued, and the answer never arrives
    first = airflow_tasks_test(tmp_path, logical_date)
    try:
        deadline = time.monotonic() + 90
        while not short_deadline.messages and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if not short_deadline.messages:
            if first.poll() is None:
                os.killpg(first.pid, signal.SIGKILL)
            output = first.communicate(timeout=30)[0].decode(errors="replace")
            pytest.fail(f"try 1 never reached the sandbox: {output[-3000:]}")
        os.killpg(first.pid, signal.SIGKILL)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
        first.wait(30)

    second = airflow_tasks_test(tmp_path, logical_date)
    output, _ = second.communicate(timeout=120)
    text = output.decode(errors="replace")
    assert "PlugzOutcomeUnknownError" in text, text[-3000:]
    assert "may have sent the WhatsApp message" in text
    assert served_sends(short_deadline) == 1
    assert len(short_deadline.messages) == 1
    assert PHONE not in text
    assert TEXT not in text
