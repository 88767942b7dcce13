"""The provider's vocabulary (:mod:`airflow_provider_plugz._vocabulary`): the connection states and
their one rule, how each is said, and that every module that speaks of states uses these - the
endpoints, the trigger, the sensor's condition, the operator - under their old import paths too.
(What it imports is checked in tests/test_import_graph.py.)"""

from __future__ import annotations

import dataclasses
import itertools
import logging
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_plugz import _vocabulary, endpoints
from airflow_provider_plugz._vocabulary import (
    CONNECTION_STATES,
    connection_state,
    describe_state,
    instance_state,
    mask_phone,
    state_label,
    status_sentence,
)
from airflow_provider_plugz.endpoints import InstanceStatus
from airflow_provider_plugz.operators.plugz import PlugzInstanceStatusOperator
from airflow_provider_plugz.sensors import plugz as sensors
from airflow_provider_plugz.testing import Fault
from airflow_provider_plugz.triggers import plugz as triggers
from tests.conftest import task_context

if TYPE_CHECKING:
    from airflow_provider_plugz.testing import PlugzSandbox

# (connected, session, smartphone_connected) -> state: every combination the API can answer.
RULE = [
    pytest.param(True, True, True, "connected", id="connected"),
    pytest.param(True, None, True, "connected", id="connected-session-not-reported"),
    pytest.param(True, True, False, "phone_offline", id="phone-offline"),
    pytest.param(True, None, False, "phone_offline", id="phone-offline-session-not-reported"),
    pytest.param(True, False, True, "session_lost", id="connected-without-session"),
    pytest.param(True, False, False, "session_lost", id="connected-without-session-phone-offline"),
    pytest.param(False, True, True, "session_lost", id="not-connected-phone-online"),
    pytest.param(False, False, True, "session_lost", id="not-connected-no-session-phone-online"),
    pytest.param(False, None, True, "session_lost", id="not-connected-phone-online-session-not-reported"),
    pytest.param(False, True, False, "disconnected", id="disconnected-session-reported"),
    pytest.param(False, False, False, "disconnected", id="disconnected"),
    pytest.param(False, None, False, "disconnected", id="disconnected-session-not-reported"),
]
ALL_COMBINATIONS = set(itertools.product([True, False], [True, False, None], [True, False]))


def test_the_rule_table_covers_every_answer_and_every_state() -> None:
    assert {tuple(p.values[:3]) for p in RULE} == ALL_COMBINATIONS
    assert {p.values[3] for p in RULE} == set(CONNECTION_STATES)
    # The audit's report counts them in this order (its XCom keys): one order, everywhere.
    assert CONNECTION_STATES == ("connected", "disconnected", "session_lost", "phone_offline")


@pytest.mark.parametrize(("connected", "session", "phone", "state"), RULE)
def test_every_reader_of_a_status_uses_the_one_rule(
    connected: bool, session: bool | None, phone: bool, state: str
) -> None:
    status = InstanceStatus(connected=connected, session=session, smartphone_connected=phone, error=None)
    observation = dataclasses.asdict(status)
    trigger = triggers.PlugzInstanceStatusTrigger("plugz_default")
    assert connection_state(connected, session, phone) == state
    assert status.state == state  # the endpoints' result
    assert instance_state(observation) == state  # a trigger's observation, an XCom entry
    assert trigger.facts(observation)["state"] == state  # what a sensor's condition is checked on
    assert trigger.matches(observation) is (state == "connected")  # the default condition


@pytest.mark.parametrize(
    ("state", "reason", "label", "described"),
    [
        pytest.param("connected", None, "connected", "connected", id="connected"),
        pytest.param("connected", "ignored", "connected", "connected", id="connected-reason-not-shown"),
        pytest.param("disconnected", None, "DISCONNECTED", "DISCONNECTED", id="disconnected"),
        pytest.param(
            "session_lost",
            "You need to restore the session.",
            "SESSION LOST",
            "SESSION LOST (You need to restore the session.)",
            id="session-lost",
        ),
        pytest.param("phone_offline", "", "PHONE OFFLINE", "PHONE OFFLINE", id="phone-offline-empty-reason"),
    ],
)
def test_how_a_state_is_said_in_log_lines(state: str, reason: str | None, label: str, described: str) -> None:
    assert state_label(state) == label
    assert describe_state(state, reason) == described
    # The trigger's log lines say it the same way.
    trigger = triggers.PlugzInstanceStatusTrigger("plugz_default")
    observation = {"connected": False, "session": None, "smartphone_connected": False, "error": reason}
    for connected, session, phone in sorted(ALL_COMBINATIONS, key=str):
        if connection_state(connected, session, phone) == state:
            observation.update(connected=connected, session=session, smartphone_connected=phone)
            assert trigger.describe(observation) == described
            break


@pytest.mark.parametrize(
    ("status", "sentence"),
    [
        pytest.param((True, True, True, None), "the number is connected (phone online)", id="connected"),
        pytest.param(
            (True, None, True, "stale text"),
            "the number is connected (phone online)",
            id="connected-no-reason",
        ),
        pytest.param(
            (True, True, False, "You are not connected."),
            "the number is connected but its phone is OFFLINE (You are not connected.)",
            id="phone-offline",
        ),
        pytest.param(
            (True, False, True, None),
            "the number is connected but holds NO WhatsApp session",
            id="connected-without-session",
        ),
        pytest.param(
            (False, False, True, "You need to restore the session."),
            "the number is NOT connected: its WhatsApp session was lost, restore it (You need to restore "
            "the session.)",
            id="session-lost",
        ),
        pytest.param((False, None, False, None), "the number is NOT connected", id="disconnected"),
    ],
)
def test_the_test_buttons_sentence(status: tuple[bool, bool | None, bool, str | None], sentence: str) -> None:
    assert status_sentence(*status) == sentence


@pytest.mark.parametrize(
    ("phone", "shown"),
    [
        pytest.param("5511987654321", "***4321", id="digits"),
        pytest.param("+55 11 98765-4321", "***4321", id="formatted"),
        pytest.param(5511987654321, "***4321", id="int"),
        pytest.param("1234567", "***", id="too-short-to-show-any"),
        pytest.param("120363012345678901-group", "***8901", id="group"),
        pytest.param(None, "***", id="none"),
        pytest.param(True, "***", id="bool"),
    ],
)
def test_mask_phone(phone: object, shown: str) -> None:
    assert mask_phone(phone) == shown


@pytest.mark.parametrize(
    ("old_home", "name"),
    [
        pytest.param(endpoints, "CONNECTION_STATES", id="endpoints.CONNECTION_STATES"),
        pytest.param(endpoints, "connection_state", id="endpoints.connection_state"),
        pytest.param(endpoints, "mask_phone", id="endpoints.mask_phone"),
        pytest.param(sensors, "instance_status_condition", id="sensors.instance_status_condition"),
        pytest.param(triggers, "instance_state", id="triggers.instance_state"),
    ],
)
def test_old_import_paths_name_the_vocabularys_own(old_home: Any, name: str) -> None:
    assert getattr(old_home, name) is getattr(_vocabulary, name)


def test_the_sensors_states_are_the_vocabularys() -> None:
    assert tuple(sensors.INSTANCE_STATES) == CONNECTION_STATES


@pytest.mark.parametrize(
    ("body", "level"),
    [
        pytest.param(
            {"connected": True, "session": True, "smartphoneConnected": True}, logging.INFO, id="connected"
        ),
        pytest.param(
            {"connected": True, "smartphoneConnected": True}, logging.INFO, id="session-not-reported"
        ),
        pytest.param(
            {"connected": True, "session": False, "smartphoneConnected": True},
            logging.WARNING,
            id="connected-without-session",
        ),
        pytest.param(
            {"connected": True, "session": True, "smartphoneConnected": False},
            logging.WARNING,
            id="phone-offline",
        ),
    ],
)
def test_the_status_operator_warns_by_the_one_rule(
    sandbox: PlugzSandbox,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    body: dict[str, Any],
    level: int,
) -> None:
    logger = logging.getLogger("tests.vocabulary.task_log")  # Airflow 3 renders its own via structlog
    monkeypatch.setattr(PlugzInstanceStatusOperator, "log", property(lambda self: logger))
    caplog.set_level(logging.INFO, logger=logger.name)
    sandbox.inject(Fault.status(200, body=body))
    PlugzInstanceStatusOperator(task_id="health").execute(task_context())
    (record,) = [r for r in caplog.records if r.name == logger.name and "Plugz connection" in r.getMessage()]
    assert record.levelno == level
