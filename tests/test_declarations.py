"""The declarations' machinery: a fact's derived names, the registry's refusals, and the checks
every column read back from XCom goes through. What each declared fact says is in
tests/test_endpoints.py; that the audit and the watcher follow the declarations, in their tests."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from airflow_provider_plugz._declarations import (
    MAX_TEXT_LENGTH,
    checked_text,
    cut,
    expect_keys,
    facts_by_name,
    kind,
)
from airflow_provider_plugz.endpoints import CONNECTION, PIN


@pytest.mark.parametrize(
    ("changes", "refused"),
    [
        pytest.param({"name": "pin"}, "same name: pin", id="name"),
        pytest.param({"column": "has_code"}, "same column: has_code", id="column"),
        pytest.param({"errors_count": "errors"}, "same count: errors", id="errors-count"),
        pytest.param({"states": {"x": "with_pin"}}, "same count: with_pin", id="state-count"),
    ],
)
def test_the_registry_refuses_two_facts_that_would_share_a_name(
    changes: dict[str, Any], refused: str
) -> None:
    twin = dataclasses.replace(CONNECTION, **changes)
    with pytest.raises(ValueError, match=refused):
        facts_by_name((PIN, twin))


def test_a_facts_counts_are_its_states_then_its_errors() -> None:
    assert PIN.counts == ("with_pin", "without_pin", "errors")
    assert CONNECTION.counts == (
        "connected",
        "disconnected",
        "session_lost",
        "phone_offline",
        "status_errors",
    )


@pytest.mark.parametrize(
    ("fact", "shows"),
    [pytest.param(PIN, False, id="one-bad-state"), pytest.param(CONNECTION, True, id="three-bad-states")],
)
def test_a_finding_names_its_state_when_several_are_bad(fact: Any, shows: bool) -> None:
    assert fact.shows_state is shows


@pytest.mark.parametrize(
    ("xcom", "keys", "says"),
    [
        pytest.param({"a": 1}, {"a", "b"}, "lacks 'b'", id="missing"),
        pytest.param({"a": 1, "b": 2, "zz": 3}, {"a", "b"}, "unexpected keys ('zz')", id="extra"),
        pytest.param(
            {"a": 1, "b": 2, "+5511987654321": 3}, {"a", "b"}, "(1 other(s))", id="extra-never-quoted"
        ),
    ],
)
def test_expect_keys_says_what_differs_quoting_only_plain_names(
    xcom: dict[str, Any], keys: set[str], says: str
) -> None:
    with pytest.raises(ValueError, match=r"^an entry ") as info:
        expect_keys(xcom, keys, "an entry")
    assert says in str(info.value)
    assert "5511987654321" not in str(info.value)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        pytest.param(None, "null", id="null"),
        pytest.param("+5511987654321", "a string of 14 character(s)", id="a-text-is-never-quoted"),
        pytest.param(1.5, "a float", id="float"),
        pytest.param([1], "a list", id="list"),
        pytest.param(object(), "an object", id="an"),
    ],
)
def test_kind_says_what_a_value_is_never_what_it_holds(value: Any, text: str) -> None:
    assert kind(value) == text


def test_texts_are_bounded_both_ways() -> None:
    long = "x" * (MAX_TEXT_LENGTH + 5)
    assert len(cut(long)) == MAX_TEXT_LENGTH
    assert checked_text(cut(long), "the message") == cut(long)
    with pytest.raises(ValueError, match="at most 4,096 characters"):
        checked_text(long, "the message")
