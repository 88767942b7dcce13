"""``PlugzNotifier``: WhatsApp alerts as a real ``on_failure_callback`` in ``dag.test()``, awaited
in an event loop, and through Airflow 3's Deadline Alert runners - against the sandbox, with
distinctive secrets and personal data that must stay out of logs and exception texts."""

from __future__ import annotations

import asyncio
import json
import logging
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_plugz._compat import AIRFLOW_V3, BaseNotifier
from airflow_provider_plugz.exceptions import (
    PlugzAuthenticationError,
    PlugzBadRequestError,
    PlugzConfigurationError,
)
from airflow_provider_plugz.hooks.plugz import PlugzHook
from airflow_provider_plugz.notifications.plugz import DEFAULT_ALERTS_CONN_ID, PlugzNotifier, default_message
from airflow_provider_plugz.testing import Fault
from airflow_provider_plugz.testing.dag_run import run_dag
from tests.conftest import CLIENT_TOKEN, INSTANCE_ID, INSTANCE_TOKEN, assert_no_secrets, load_dag_file

if TYPE_CHECKING:
    from pathlib import Path

    from airflow_provider_plugz.testing import PlugzSandbox
    from airflow_provider_plugz.testing.dag_run import DagRunReport

# The number alerts go out from: an instance of its own, not the one the DAG checks.
ALERTS_ID = "A1ERT51NSTANCE000000000000001"
ALERTS_TOKEN = "A1ERT5T0KEN5ECRET00000000001"
WRONG_CLIENT_TOKEN = "WR0NGC11ENT70KEN5ECRET0000009"
PHONE = "5511987654321"  # the on-call number: personal data, never in a log or an exception
MASKED = "***4321"
FORMATTED_PHONE = "+55 11 98765-4321"  # as people write it; Plugz wants digits only
SECRETS = (INSTANCE_TOKEN, CLIENT_TOKEN, ALERTS_TOKEN, WRONG_CLIENT_TOKEN)
DAG_ID = "plugz_alert_test"
ALERTS_CONN = "plugz_alerts"


@pytest.fixture
def alerts(sandbox: PlugzSandbox, monkeypatch: pytest.MonkeyPatch) -> PlugzSandbox:
    """The sandbox with a second instance, the alerting number, behind ``plugz_alerts``."""
    sandbox.add_instance(ALERTS_ID, ALERTS_TOKEN)
    monkeypatch.setenv("AIRFLOW_CONN_PLUGZ_ALERTS", sandbox.connection_json(ALERTS_ID))
    return sandbox


@pytest.fixture
def notifier_log(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> pytest.LogCaptureFixture:
    """The notifier's log as plain records (Airflow 3 renders its own through structlog)."""
    logger = logging.getLogger("tests.plugz_notifier")
    monkeypatch.setattr(PlugzNotifier, "log", property(lambda self: logger))
    caplog.set_level(logging.INFO, logger=logger.name)
    return caplog


def logged(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "tests.plugz_notifier" and r.levelno == level]


@pytest.fixture
def oncall_variable(monkeypatch: pytest.MonkeyPatch) -> str:
    """The on-call phone as an Airflow Variable; the template that reads it."""
    monkeypatch.setenv("AIRFLOW_VAR_PLUGZ_ONCALL_PHONE", PHONE)
    return "{{ var.value.plugz_oncall_phone }}"


def task_failure_context() -> dict[str, Any]:
    """What Airflow hands an ``on_failure_callback`` (the parts the notifier reads)."""
    ti = SimpleNamespace(
        dag_id="nightly_sync",
        task_id="load",
        run_id="manual__2026-01-02T03:04:05+00:00",
        map_index=-1,
        try_number=2,
        state="failed",
        log_url="http://airflow.example/dags/nightly_sync/runs/manual__2026/tasks/load?try_number=2",
    )
    return {"ti": ti, "run_id": ti.run_id, "exception": PlugzAuthenticationError("Client-Token not allowed")}


def deadline_context() -> dict[str, Any]:
    """What Airflow 3.1+ hands a Deadline Alert callback: JSON of the run and the deadline."""
    return {
        "dag_run": {"dag_id": "nightly_sync", "dag_run_id": "scheduled__2026-01-02T00:00:00+00:00"},
        "deadline": {"id": "0193", "deadline_time": "2026-01-02T01:00:00+00:00"},
    }


def sent_texts(sandbox: PlugzSandbox) -> list[Any]:
    return [m for m in sandbox.messages if m.instance_id == ALERTS_ID]


MODES = [pytest.param("sync", id="notify"), pytest.param("async", id="async_notify")]


def send(notifier: PlugzNotifier, mode: str) -> None:
    """Run the notifier's sync path, or its async one in an event loop."""
    if mode == "sync":
        notifier.notify({})
    else:
        asyncio.run(notifier.async_notify({}))


# --- the default text ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("context", "expected"),
    [
        pytest.param(
            task_failure_context(),
            [
                "*Airflow: task failed*",
                "DAG: nightly_sync",
                "Task: load",
                "Run: manual__2026-01-02T03:04:05+00:00",
                "Try: 2",
                "Error: PlugzAuthenticationError",
                "Log: http://airflow.example/dags/nightly_sync/runs/manual__2026/tasks/load?try_number=2",
            ],
            id="task-failure",
        ),
        pytest.param(
            {
                "ti": SimpleNamespace(
                    dag_id="d", task_id="t", run_id="r", map_index=3, try_number=1, state="up_for_retry"
                )
            },
            ["*Airflow: task failed, will retry*", "DAG: d", "Task: t [3]", "Run: r", "Try: 1"],
            id="mapped-task-retry",
        ),
        pytest.param(
            {
                "run_id": "r",
                "reason": "task_failure",
                "dag_run": SimpleNamespace(dag_id="d", state="failed"),
                "ti": SimpleNamespace(dag_id="d", task_id="last", log_url="http://a/log"),
            },
            [
                "*Airflow: DAG run failed*",
                "DAG: d",
                "Run: r",
                "Reason: task_failure",
                "Last task: last",
                "Its log: http://a/log",
            ],
            id="dag-callback",
        ),
        pytest.param(
            deadline_context(),
            [
                "*Airflow: DAG run missed its deadline*",
                "DAG: nightly_sync",
                "Run: scheduled__2026-01-02T00:00:00+00:00",
                "Deadline: 2026-01-02T01:00:00+00:00",
                "Link: http://localhost:8080/dags/nightly_sync/"
                + (
                    "runs/scheduled__2026-01-02T00%3A00%3A00%2B00%3A00"
                    if AIRFLOW_V3
                    else "grid?dag_run_id=scheduled__2026-01-02T00%3A00%3A00%2B00%3A00"
                ),
            ],
            id="deadline-alert",
        ),
    ],
)
def test_default_message_names_what_happened_and_where(context: dict[str, Any], expected: list[str]) -> None:
    assert default_message(context).splitlines() == expected


def test_default_message_leaves_the_exception_text_out() -> None:
    """An exception's text may hold anything (a token, a customer's data); the alert leaves Airflow."""
    context = task_failure_context()
    context["exception"] = RuntimeError("password=hunter2 for 5511999990000")
    text = default_message(context)
    assert "Error: RuntimeError" in text
    assert "hunter2" not in text
    assert "5511999990000" not in text


# --- the notifier itself -----------------------------------------------------------------------


def test_arguments_defaults_and_repr() -> None:
    notifier = PlugzNotifier(phone=PHONE)
    assert notifier.template_fields == ("phone", "message", "plugz_conn_id")
    assert (notifier.plugz_conn_id, notifier.message, notifier.check_sender) == ("plugz_alerts", None, True)
    assert DEFAULT_ALERTS_CONN_ID == "plugz_alerts"
    # Airflow 3 logs the callback's repr when it fails: the phone is masked there too.
    assert repr(notifier) == f"PlugzNotifier(plugz_conn_id='plugz_alerts', phone='{MASKED}')"
    assert repr(PlugzNotifier("{{ var.value.plugz_oncall_phone }}")).endswith("phone='***')")


def test_a_shared_notifier_renders_its_templates_afresh_for_each_callback(alerts: PlugzSandbox) -> None:
    """One notifier in ``default_args`` serves every task: each alert names its own task."""
    try:  # Airflow 3
        from airflow.sdk import DAG
    except ImportError:  # Airflow 2
        from airflow import DAG  # type: ignore[attr-defined,no-redef]

    notifier = PlugzNotifier(phone=PHONE, message="{{ ti.task_id }} failed", check_sender=False)
    dag = DAG("t", schedule=None)
    for task_id in ("extract", "load"):
        notifier({"dag": dag, "ti": SimpleNamespace(task_id=task_id)})  # as Airflow calls a callback
    assert [m.message for m in sent_texts(alerts)] == ["extract failed", "load failed"]
    assert notifier.message == "load failed"  # rendered in place, as Airflow's notifiers are


@pytest.mark.parametrize("mode", MODES)
def test_sends_the_text_from_the_alerting_number(
    alerts: PlugzSandbox, mode: str, monkeypatch: pytest.MonkeyPatch, notifier_log: pytest.LogCaptureFixture
) -> None:
    if mode == "async":  # the event-loop path must never fall back to the blocking client
        monkeypatch.setattr(PlugzHook, "send_text", _must_not_block)
        monkeypatch.setattr(PlugzHook, "get_instance_status", _must_not_block)
    send(PlugzNotifier(phone=PHONE, message="*Backup failed*: see the log"), mode)
    (sent,) = sent_texts(alerts)
    assert (sent.phone, sent.message, sent.delivered) == (PHONE, "*Backup failed*: see the log", True)
    assert [r.method for r in alerts.requests] == ["POST", "GET"]  # the send, then the sender's status
    assert f"Plugz alert to {MASKED} (28 characters) queued by connection 'plugz_alerts'" in notifier_log.text
    assert_no_secrets(notifier_log.text, secrets=(*SECRETS, PHONE, "Backup failed"))


def _must_not_block(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("the async path called the blocking hook")


def test_check_sender_false_sends_only_the_message(alerts: PlugzSandbox) -> None:
    PlugzNotifier(phone=PHONE, message="hi", check_sender=False).notify({})
    assert [r.method for r in alerts.requests] == ["POST"]
    assert len(sent_texts(alerts)) == 1


@pytest.mark.parametrize(
    ("state", "reason"),
    [
        pytest.param("disconnected", "You are not connected.", id="disconnected"),
        pytest.param("session-lost", "You need to restore the session.", id="session-lost"),
    ],
)
@pytest.mark.parametrize("mode", MODES)
def test_a_disconnected_alerting_number_queues_the_alert_and_warns(
    alerts: PlugzSandbox, notifier_log: pytest.LogCaptureFixture, state: str, reason: str, mode: str
) -> None:
    alerts.set_state(ALERTS_ID, state)  # type: ignore[arg-type]
    send(PlugzNotifier(phone=PHONE, message="disk full"), mode)
    (sent,) = sent_texts(alerts)
    assert sent.delivered is False  # queued in Plugz until the number reconnects
    (warning,) = logged(notifier_log, logging.WARNING)
    assert f"connection 'plugz_alerts' is not connected ({reason})" in warning
    assert "sends it when the number reconnects" in warning
    alerts.set_state(ALERTS_ID, "connected")
    assert [m.delivered for m in sent_texts(alerts)] == [True]


# The status answers of the alerting number, faked at the HTTP boundary (the sandbox has no
# "connected without a session" state), and what the WARNING says is why, if it warns at all.
SENDER_STATUSES = [
    pytest.param({"connected": True, "session": True, "smartphoneConnected": True}, None, id="connected"),
    pytest.param({"connected": True, "smartphoneConnected": True}, None, id="connected-session-not-reported"),
    pytest.param(
        {"connected": True, "session": False, "smartphoneConnected": True},
        "session lost",
        id="connected-without-session",
    ),
    pytest.param(
        {"connected": True, "session": False, "smartphoneConnected": True, "error": "Restore the session."},
        "Restore the session.",
        id="connected-without-session-with-reason",
    ),
    pytest.param(
        {"connected": False, "session": False, "smartphoneConnected": True},
        "session lost",
        id="session-lost-without-reason",
    ),
    pytest.param(
        {"connected": True, "session": True, "smartphoneConnected": False},
        "phone offline",
        id="phone-offline",
    ),
    pytest.param(
        {"connected": False, "session": False, "smartphoneConnected": False},
        "disconnected",
        id="disconnected",
    ),
]


@pytest.mark.parametrize(("status", "why"), SENDER_STATUSES)
@pytest.mark.parametrize("mode", MODES)
def test_the_sender_check_warns_for_every_state_but_connected(
    alerts: PlugzSandbox,
    notifier_log: pytest.LogCaptureFixture,
    status: dict[str, Any],
    why: str | None,
    mode: str,
) -> None:
    """The sender check reads a status as everything else does (one rule: a connected number
    without a session sends nothing) and says the state in the vocabulary's words."""
    alerts.inject(
        Fault.status(200, body={"zaapId": "Z1", "messageId": "M1", "id": "M1"}), instance_id=ALERTS_ID
    )
    alerts.inject(Fault.status(200, body=status), instance_id=ALERTS_ID)
    send(PlugzNotifier(phone=PHONE, message="disk full"), mode)
    assert [r.method for r in alerts.requests] == ["POST", "GET"]
    assert alerts.pending_faults == []
    warnings = logged(notifier_log, logging.WARNING)
    if why is None:
        assert warnings == []
    else:
        (warning,) = warnings
        assert f"connection 'plugz_alerts' is not connected ({why}): Plugz keeps the alert" in warning


def test_a_full_queue_is_a_clear_error(alerts: PlugzSandbox) -> None:
    """Plugz queues at most 1,000 messages for a disconnected number, then refuses new ones."""
    alerts.set_state(ALERTS_ID, "disconnected")
    hook = PlugzHook(DEFAULT_ALERTS_CONN_ID)
    for _ in range(1000):
        hook.send_text(PHONE, "filler")
    hook.close()
    with pytest.raises(PlugzBadRequestError) as caught:
        PlugzNotifier(phone=PHONE, message="disk full").notify({})
    assert "connection 'plugz_alerts'" in str(caught.value)
    assert_no_secrets(str(caught.value), secrets=(*SECRETS, PHONE, "disk full"))


def test_a_long_text_is_cut_to_what_plugz_takes(
    alerts: PlugzSandbox, notifier_log: pytest.LogCaptureFixture
) -> None:
    PlugzNotifier(phone=PHONE, message="x" * 5000, check_sender=False).notify({})
    (sent,) = sent_texts(alerts)
    assert len(sent.message) == 4096
    assert sent.message.endswith("[...] (truncated)")
    assert "has 5000 characters; sending its first 4096" in notifier_log.text


# --- no secret leaves in an alert ---------------------------------------------------------------

URL_TOKEN = "UNKN0WNUR1T0KEN5ECRET00000007"  # known to nobody: only its place in the URL gives it away
MASKED_CLIENT_TOKEN = "MA5KEDC11ENT70KEN5ECRET0000007"  # registered with Airflow's masker only
MASKED_PIN = "518273"  # registered with Airflow's masker only; stands alone in the text
REMEMBERED_TOKEN = "REMEMBEREDT0KEN5ECRET00000007"  # known to our redaction only (remember)
LEAKS = (URL_TOKEN, MASKED_CLIENT_TOKEN, MASKED_PIN, REMEMBERED_TOKEN, INSTANCE_ID)


@pytest.fixture
def known_elsewhere(fresh_airflow_masker: None) -> None:
    """What the failed task registered before it failed: a PIN and a Client-Token with Airflow's
    masker (``mask_secret``, as Airflow does for a connection's password), a token with ours."""
    from airflow_provider_plugz._compat import mask_secret
    from airflow_provider_plugz._redaction import remember

    mask_secret(MASKED_CLIENT_TOKEN)
    mask_secret(MASKED_PIN)
    remember(REMEMBERED_TOKEN)


def alert_with(notifier: PlugzNotifier, context: dict[str, Any], mode: str) -> None:
    """Render and send as Airflow does: called as a callback, or rendered then awaited."""
    if mode == "sync":
        notifier(context)
    else:
        notifier.render_template_fields(context)  # type: ignore[arg-type]
        asyncio.run(notifier.async_notify(context))  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.usefixtures("known_elsewhere")
def test_an_alert_never_carries_a_secret(
    alerts: PlugzSandbox, notifier_log: pytest.LogCaptureFixture, mode: str
) -> None:
    """``{{ exception }}`` quoting a Plugz URL, a Client-Token and a PIN: each goes out as ``***``."""
    from airflow_provider_plugz.exceptions import PlugzError

    context = task_failure_context()
    context["exception"] = PlugzError(
        f"POST https://127.0.0.1:9/instances/{INSTANCE_ID}/token/{URL_TOKEN}/send-text refused; "
        f"client token {MASKED_CLIENT_TOKEN}, PIN {MASKED_PIN} (token {REMEMBERED_TOKEN.lower()})"
    )
    notifier = PlugzNotifier(phone=PHONE, message="Task failed: {{ exception }}", check_sender=False)
    alert_with(notifier, {"dag": _dag(), **context}, mode)
    (sent,) = sent_texts(alerts)
    assert sent.message == (
        "Task failed: POST https://127.0.0.1:9/instances/***/token/***/send-text refused; "
        "client token ***, PIN *** (token ***)"
    )
    assert_no_secrets(sent.message, notifier_log.text, secrets=(*SECRETS, *LEAKS))
    assert "they are sent as ***" in " ".join(logged(notifier_log, logging.WARNING))


@pytest.mark.usefixtures("known_elsewhere")
def test_a_secret_across_the_cut_is_removed_whole(alerts: PlugzSandbox) -> None:
    """Redacted before the text is cut: a cut secret's first half would not be recognised."""
    PlugzNotifier(
        phone=PHONE, message="x" * 4070 + MASKED_CLIENT_TOKEN + "y" * 100, check_sender=False
    ).notify({})
    (sent,) = sent_texts(alerts)
    assert sent.message.startswith("x" * 4070 + "***yyy")
    assert MASKED_CLIENT_TOKEN[:6] not in sent.message
    assert len(sent.message) == 4096


@pytest.mark.parametrize(
    ("message", "context", "expected"),
    [
        pytest.param(
            None, task_failure_context(), default_message(task_failure_context()), id="default-text"
        ),
        pytest.param(
            "{{ ti.task_id }} failed: {{ exception }}",
            {
                **task_failure_context(),
                "exception": ValueError("disk full on db-7 (5 instances, token bucket)"),
            },
            "load failed: disk full on db-7 (5 instances, token bucket)",
            id="task-and-exception",
        ),
        pytest.param(
            "*Backup failed*\nsee {{ ti.log_url }}",
            task_failure_context(),
            "*Backup failed*\nsee http://airflow.example/dags/nightly_sync/runs/manual__2026/tasks/load?try_number=2",
            id="formatting-and-log-link",
        ),
    ],
)
@pytest.mark.usefixtures("known_elsewhere")
def test_documented_templates_are_sent_as_written(
    alerts: PlugzSandbox,
    notifier_log: pytest.LogCaptureFixture,
    message: str | None,
    context: dict[str, Any],
    expected: str,
) -> None:
    PlugzNotifier(phone=PHONE, message=message, check_sender=False)({"dag": _dag(), **context})
    assert [m.message for m in sent_texts(alerts)] == [expected]
    assert logged(notifier_log, logging.WARNING) == []


def test_an_alert_airflow_could_not_check_is_replaced_by_a_notice(
    alerts: PlugzSandbox, notifier_log: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Airflow's masker failing never sends the unchecked text, nor fails the alert confusingly."""
    from airflow_provider_plugz import _compat
    from airflow_provider_plugz._redaction import UNCHECKED

    def broken(text: str) -> str:
        raise ValueError("Airflow's secrets masker failed (KeyError)")

    monkeypatch.setattr(_compat, "redact_registered", broken)
    PlugzNotifier(
        phone=PHONE, message=f"disk full, client token {MASKED_CLIENT_TOKEN}", check_sender=False
    ).notify({})
    assert [m.message for m in sent_texts(alerts)] == [UNCHECKED]
    (warning,) = logged(notifier_log, logging.WARNING)
    assert "secrets masker could not check the Plugz alert text" in warning


def _dag() -> Any:
    try:  # Airflow 3
        from airflow.sdk import DAG
    except ImportError:  # Airflow 2
        from airflow import DAG  # type: ignore[attr-defined,no-redef]
    return DAG("t", schedule=None)


@pytest.mark.parametrize(
    "phone",
    [
        pytest.param("+55 11 98765-4321", id="formatted"),
        pytest.param("98765", id="too-short"),
        pytest.param("", id="empty"),
        pytest.param("55119876543210000", id="too-long"),
    ],
)
@pytest.mark.parametrize("mode", MODES)
def test_a_bad_phone_is_refused_without_echoing_it(alerts: PlugzSandbox, phone: str, mode: str) -> None:
    notifier = PlugzNotifier(phone=phone, message="disk full")
    with pytest.raises(PlugzConfigurationError) as caught:
        send(notifier, mode)
    text = str(caught.value)
    assert "the phone must be digits only, with country and area code" in text
    assert_no_secrets(text, repr(caught.value), secrets=(*SECRETS, phone or "\0", "98765", "disk full"))
    assert alerts.messages == []
    assert [r.method for r in alerts.requests] == []  # refused before anything was sent


@pytest.mark.parametrize("mode", MODES)
def test_an_undefined_alerting_connection_says_how_to_define_it(sandbox: PlugzSandbox, mode: str) -> None:
    notifier = PlugzNotifier(phone=PHONE, message="disk full", plugz_conn_id="plugz_oncall")
    with pytest.raises(PlugzConfigurationError) as caught:
        send(notifier, mode)
    text = str(caught.value)
    assert "the connection 'plugz_oncall' is not defined" in text
    assert "AIRFLOW_CONN_PLUGZ_ONCALL" in text
    assert PHONE not in text


def test_async_failure_is_logged_as_error_with_a_masked_phone(
    alerts: PlugzSandbox, monkeypatch: pytest.MonkeyPatch, notifier_log: pytest.LogCaptureFixture
) -> None:
    """Airflow's notifier base logs failures of ``notify``; an awaited notifier logs its own."""
    conn = json.loads(alerts.connection_json(ALERTS_ID))
    conn["extra"]["client_token"] = WRONG_CLIENT_TOKEN
    monkeypatch.setenv("AIRFLOW_CONN_PLUGZ_ALERTS", json.dumps(conn))
    with pytest.raises(PlugzAuthenticationError):
        asyncio.run(PlugzNotifier(phone=PHONE, message="disk full").async_notify({}))
    (error,) = logged(notifier_log, logging.ERROR)
    assert error.startswith(
        f"Failed to send the Plugz alert to {MASKED} from connection 'plugz_alerts': PlugzAuthenticationError"
    )
    assert_no_secrets(notifier_log.text, secrets=(*SECRETS, PHONE, "disk full"))


# --- awaited as Airflow 3.1+ awaits it: a Deadline Alert in the triggerer -------------------------

AWAITABLE = pytest.mark.skipif(
    not hasattr(BaseNotifier, "__await__"),
    reason="Airflow 2 notifiers are not awaitable",
)


@AWAITABLE
def test_awaited_with_its_context_renders_a_variable_phone(
    alerts: PlugzSandbox, oncall_variable: str
) -> None:
    """``await PlugzNotifier(..., context=...)``, as Deadline Alerts run it: the templates are
    rendered from a context that has no ``var`` of its own."""

    async def alert() -> None:
        await PlugzNotifier(phone=oncall_variable, context=deadline_context())  # type: ignore[arg-type]

    asyncio.run(alert())
    (sent,) = sent_texts(alerts)
    assert sent.phone == PHONE
    assert sent.message.splitlines()[:3] == [
        "*Airflow: DAG run missed its deadline*",
        "DAG: nightly_sync",
        "Run: scheduled__2026-01-02T00:00:00+00:00",
    ]


@AWAITABLE
def test_a_missing_variable_in_a_deadline_context_is_named(alerts: PlugzSandbox) -> None:
    notifier = PlugzNotifier(phone="{{ var.value.plugz_nobody }}", context=deadline_context())  # type: ignore[arg-type]
    with pytest.raises(
        PlugzConfigurationError, match="the Variable 'plugz_nobody' its template reads is not set"
    ):
        notifier.render_template_fields(notifier.context)
    assert alerts.messages == []


def test_deadline_alert_callback_runs_in_airflows_callback_trigger(
    alerts: PlugzSandbox, oncall_variable: str
) -> None:
    """The real triggerer path: ``AsyncCallback(PlugzNotifier, kwargs=...)`` run by Airflow's
    ``CallbackTrigger`` with the context the scheduler attaches to a missed deadline."""
    callback_module = pytest.importorskip(
        "airflow.triggers.callback", reason="Deadline Alerts are Airflow 3.1+"
    )
    from airflow.sdk import AsyncCallback

    from tests.conftest import trigger_events

    callback = AsyncCallback(
        PlugzNotifier, kwargs={"phone": oncall_variable, "plugz_conn_id": "plugz_alerts"}
    )
    trigger = callback_module.CallbackTrigger(
        callback_path=callback.path, callback_kwargs={**callback.kwargs, "context": deadline_context()}
    )
    events = asyncio.run(trigger_events(trigger))
    assert [event["state"] for event in events] == ["running", "success"]
    (sent,) = sent_texts(alerts)
    assert sent.phone == PHONE
    assert "missed its deadline" in sent.message


def test_deadline_alert_sync_callback_runs_in_airflows_callback_runner(
    alerts: PlugzSandbox, oncall_variable: str
) -> None:
    """``SyncCallback(PlugzNotifier, ...)``: built with the context, then called with it."""
    supervisor = pytest.importorskip(
        "airflow.sdk.execution_time.callback_supervisor", reason="executor callbacks are Airflow 3.2+"
    )
    import structlog

    kwargs = {"phone": oncall_variable, "context": deadline_context()}
    ok, error = supervisor.execute_callback(
        "airflow_provider_plugz.notifications.plugz.PlugzNotifier", kwargs, "", None, structlog.get_logger()
    )
    assert (ok, error) == (True, None)
    assert [m.phone for m in sent_texts(alerts)] == [PHONE]


# --- a real on_failure_callback in dag.test() ----------------------------------------------------

DAG_FILE = """
import pendulum

from airflow_provider_plugz.notifications.plugz import PlugzNotifier
from airflow_provider_plugz.operators.plugz import PlugzPinStatusOperator

try:  # Airflow 3
    from airflow.sdk import DAG
except ImportError:  # Airflow 2
    from airflow import DAG

alert = PlugzNotifier(phone={phone!r})
with DAG({dag_id!r}, schedule=None, start_date=pendulum.datetime(2024, 1, 1), {dag_callback}):
    PlugzPinStatusOperator(task_id="check_pin", {task_callback})
"""


def run_alert_dag(folder: Path, phone: str, on: str) -> DagRunReport:
    """Write a DAG whose one task fails (a PIN check with a revoked Client-Token) with the
    notifier as the task's (``on="task"``) or the DAG's ``on_failure_callback``, and run it."""
    callback = "on_failure_callback=alert"
    source = DAG_FILE.format(
        phone=phone,
        dag_id=DAG_ID,
        dag_callback=callback if on == "dag" else "",
        task_callback=callback if on == "task" else "",
    )
    return run_dag(load_dag_file(folder, source, DAG_ID))


@pytest.fixture
def run_logs(captured_logs: Any, caplog: pytest.LogCaptureFixture) -> Any:
    """Everything a DAG run logs (see tests/conftest.py), the notifier's INFO lines
    included: Airflow 2's dag.test() leaves the root logger at WARNING."""
    caplog.set_level(logging.INFO, logger=f"{PlugzNotifier.__module__}.{PlugzNotifier.__name__}")
    return captured_logs


@pytest.fixture
def revoked_check(alerts: PlugzSandbox, monkeypatch: pytest.MonkeyPatch) -> PlugzSandbox:
    """``plugz_default`` (the number the DAG checks) with a revoked Client-Token: its task fails."""
    conn = json.loads(alerts.connection_json(INSTANCE_ID))
    conn["extra"]["client_token"] = WRONG_CLIENT_TOKEN
    monkeypatch.setenv("AIRFLOW_CONN_PLUGZ_DEFAULT", json.dumps(conn))
    return alerts


@pytest.mark.parametrize(
    ("on", "templated", "header"),
    [
        pytest.param("task", False, "*Airflow: task failed*", id="task-callback"),
        pytest.param("task", True, "*Airflow: task failed*", id="task-callback-variable-phone"),
        pytest.param("dag", False, "*Airflow: DAG run failed*", id="dag-callback"),
    ],
)
def test_on_failure_callback_alerts_from_the_alerting_number(
    airflow_db: Path,
    revoked_check: PlugzSandbox,
    oncall_variable: str,
    run_logs: Any,
    tmp_path: Path,
    on: str,
    templated: bool,
    header: str,
) -> None:
    report = run_alert_dag(tmp_path, oncall_variable if templated else PHONE, on)

    # The task's own failure is what the run reports; the alert went out beside it.
    assert (report.state, report.task_states) == ("failed", {"check_pin": "failed"})
    assert isinstance(report.errors["check_pin"], PlugzAuthenticationError)
    (sent,) = sent_texts(revoked_check)
    assert sent.phone == PHONE
    lines = sent.message.splitlines()
    assert lines[0] == header
    assert f"DAG: {DAG_ID}" in lines
    assert f"Run: {report.run_id}" in lines
    if on == "task":
        assert "Task: check_pin" in lines
        assert "Error: PlugzAuthenticationError" in lines
        (log,) = [line for line in lines if line.startswith("Log: ")]
        assert log.startswith(f"Log: http://localhost:8080/dags/{DAG_ID}/")
        assert "check_pin" in log

    logs = run_logs()
    assert f"Plugz alert to {MASKED} (" in logs  # the capture saw the notifier's own line
    assert_no_secrets(logs, secrets=(*SECRETS, PHONE, header))


def test_a_failing_alert_keeps_the_task_failure_and_says_why(
    airflow_db: Path,
    revoked_check: PlugzSandbox,
    run_logs: Any,
    tmp_path: Path,
) -> None:
    """A bad phone: the callback fails, Airflow logs why, the task's own failure stands."""
    # (A name, not the value: Airflow 2 logs the traceback, and so this line, of the failed callback.)
    report = run_alert_dag(tmp_path, FORMATTED_PHONE, "task")

    assert (report.state, report.task_states) == ("failed", {"check_pin": "failed"})
    assert isinstance(report.errors["check_pin"], PlugzAuthenticationError)
    assert sent_texts(revoked_check) == []
    logs = run_logs()
    assert "the phone must be digits only" in logs
    assert "Failed to send notification" in logs  # Airflow's notifier base, on 2 and 3
    assert_no_secrets(logs, secrets=(*SECRETS, "98765-4321", "98765"))
