"""Every Plugz operator and sensor holds its connection the same way: ``PlugzHookMixin`` gives the
templated ``plugz_conn_id`` and the lazy ``hook``; none repeats them.

The classes are found by importing every module of the package, so a new operator or sensor
that writes its own ``hook`` (or forgets the mixin) fails :func:`test_every_operator_and_sensor_uses_the_base`
until it uses the base or is listed in :data:`NO_CONNECTION` with a reason the test checks.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from functools import cached_property
from typing import TYPE_CHECKING, Any

import pytest

import airflow_provider_plugz
from airflow_provider_plugz._compat import BaseOperator
from airflow_provider_plugz.hooks.plugz import PlugzHook
from airflow_provider_plugz.operators._base import PlugzHookMixin

if TYPE_CHECKING:
    from collections.abc import Sequence

CONN_ID = "plugz_base_test"

#: (class name, constructor arguments besides task_id and plugz_conn_id, template_fields exactly,
#: the hook refuses a connection of another type)
USERS = [
    pytest.param("PlugzPinStatusOperator", {}, ("plugz_conn_id",), False, id="pin-status-operator"),
    pytest.param("PlugzInstanceStatusOperator", {}, ("plugz_conn_id",), False, id="instance-status-operator"),
    pytest.param("PlugzQueueOperator", {}, ("plugz_conn_id",), False, id="queue-operator"),
    pytest.param(
        "PlugzPinBranchOperator",
        {"if_pin_set": "a", "if_pin_missing": "b"},
        ("plugz_conn_id",),
        False,
        id="pin-branch-operator",
    ),
    pytest.param(
        "PlugzSetPinOperator",
        {"pin_extra": "pin_secret"},
        ("plugz_conn_id", "pin_variable"),
        False,
        id="set-pin-operator",
    ),
    pytest.param(
        "PlugzSendMessageOperator",
        {"phone": "5511999999999", "message": "hi"},
        ("phone", "message", "plugz_conn_id"),
        False,
        id="send-message-operator",
    ),
    pytest.param("PlugzPollingSensor", {}, ("plugz_conn_id", "poke_interval"), True, id="polling-sensor"),
    pytest.param(
        "PlugzPinStatusSensor", {}, ("plugz_conn_id", "poke_interval"), True, id="pin-status-sensor"
    ),
    pytest.param(
        "PlugzInstanceStatusSensor", {}, ("plugz_conn_id", "poke_interval"), True, id="instance-status-sensor"
    ),
]

#: Operators with no single connection, and why: they take neither ``plugz_conn_id`` nor a ``hook``
#: (checked by :func:`test_operators_without_one_connection_hold_none`).
NO_CONNECTION = {
    "PlugzPinAuditOperator": "many connections (plugz_conn_ids): a hook per connection, in audit.fanout",
    "PlugzAuditMergeOperator": "no connection: merges the chunk reports of the audit",
    "PlugzFleetAuditOperator": "the audit under its new name: many connections, like PlugzPinAuditOperator",
}


def operator_classes() -> dict[str, type]:
    """Every operator and sensor class defined in the package, by name."""
    package = airflow_provider_plugz
    found: dict[str, type] = {}
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        module = importlib.import_module(info.name)
        for name, cls in vars(module).items():
            if inspect.isclass(cls) and cls.__module__ == module.__name__ and issubclass(cls, BaseOperator):
                found[name] = cls
    return found


def base_problems(cls: type) -> list[str]:
    """What ``cls`` does against the rule "the connection comes from :class:`PlugzHookMixin`"."""
    if not issubclass(cls, PlugzHookMixin):
        return [f"{cls.__name__} does not use PlugzHookMixin"]
    problems = []
    if inspect.getattr_static(cls, "hook") is not vars(PlugzHookMixin)["hook"]:
        problems.append(f"{cls.__name__} defines its own hook")
    if cls.__mro__.index(PlugzHookMixin) > cls.__mro__.index(BaseOperator):
        problems.append(f"{cls.__name__} puts PlugzHookMixin after Airflow's base")
    return problems


CLASSES = operator_classes()


def test_the_walk_finds_the_operators_and_sensors() -> None:
    assert {"PlugzSetPinOperator", "PlugzPinAuditOperator", "PlugzInstanceStatusSensor"} <= set(CLASSES)


def test_every_operator_and_sensor_uses_the_base() -> None:
    users = {str(param.values[0]) for param in USERS}
    assert sorted(set(CLASSES) - users - set(NO_CONNECTION)) == [], "new operator: use PlugzHookMixin"
    problems = {name: base_problems(CLASSES[name]) for name in sorted(users)}
    assert problems == {name: [] for name in sorted(users)}


@pytest.mark.parametrize("name", sorted(NO_CONNECTION))
def test_operators_without_one_connection_hold_none(name: str) -> None:
    cls = CLASSES[name]
    assert "plugz_conn_id" not in inspect.signature(cls.__init__).parameters  # type: ignore[misc]
    assert not hasattr(cls, "hook")


@pytest.mark.parametrize(("name", "kwargs", "template_fields", "require_conn_type"), USERS)
def test_the_base_gives_the_templated_conn_id_and_a_lazy_hook(
    name: str, kwargs: dict[str, Any], template_fields: tuple[str, ...], require_conn_type: bool
) -> None:
    operator = CLASSES[name](task_id="t", plugz_conn_id=CONN_ID, **kwargs)
    assert tuple(operator.template_fields) == template_fields
    assert operator.plugz_conn_id == CONN_ID
    assert "hook" not in vars(operator)  # built on first use, never at DAG parse
    hook = operator.hook
    assert isinstance(hook, PlugzHook)
    assert (hook.plugz_conn_id, hook.require_conn_type) == (CONN_ID, require_conn_type)
    assert operator.hook is hook


@pytest.mark.parametrize(("name", "kwargs"), [pytest.param(p.values[0], p.values[1], id=p.id) for p in USERS])
def test_the_conn_id_defaults_to_plugz_default(name: str, kwargs: dict[str, Any]) -> None:
    assert CLASSES[name](task_id="t", **kwargs).plugz_conn_id == "plugz_default"


# --- the rule catches what it is for -----------------------------------------------------------


class _RepeatsTheHook(BaseOperator):
    """The shape every operator had before the base: its own conn id and hook."""

    template_fields = ("plugz_conn_id",)

    def __init__(self, *, plugz_conn_id: str = "plugz_default", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plugz_conn_id = plugz_conn_id

    @cached_property
    def hook(self) -> PlugzHook:
        return PlugzHook(plugz_conn_id=self.plugz_conn_id)


class _OverridesTheHook(PlugzHookMixin, BaseOperator):
    template_fields: Sequence[str] = ("plugz_conn_id",)

    @cached_property
    def hook(self) -> PlugzHook:
        return PlugzHook(plugz_conn_id="somewhere_else")


class _MixinAfterTheBase(BaseOperator, PlugzHookMixin):
    template_fields = ("plugz_conn_id",)


@pytest.mark.parametrize(
    ("cls", "problem"),
    [
        pytest.param(_RepeatsTheHook, "does not use PlugzHookMixin", id="no-mixin"),
        pytest.param(_OverridesTheHook, "defines its own hook", id="own-hook"),
        pytest.param(_MixinAfterTheBase, "after Airflow's base", id="mixin-after-base"),
    ],
)
def test_base_problems_finds_an_operator_that_does_not_use_the_base(cls: type, problem: str) -> None:
    (found,) = base_problems(cls)
    assert problem in found


def test_a_subclass_must_keep_the_conn_id_templated() -> None:
    with pytest.raises(TypeError, match=r"template_fields must include 'plugz_conn_id'"):

        class _Untemplated(PlugzHookMixin, BaseOperator):
            template_fields = ("message",)
