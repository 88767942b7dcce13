"""What the audit asks of one number: its PIN, then each other fact it was asked to check
(:func:`read_facts`, giving a :class:`FactsRead`), each through the fact's declared call. Each is a
check for :func:`~airflow_provider_plugz.audit.fanout.check_fleet`. :func:`pin_status` and
:func:`pin_and_status` (a :class:`PinAndStatus`) are the PIN alone and the PIN with the status,
as they always were.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_provider_plugz.exceptions import PlugzInstanceNotSupportedError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    from airflow_provider_plugz.hooks.plugz import InstanceStatus, PinStatus, PlugzHook


@dataclass(frozen=True)
class FactsRead:
    """What the audit's check of one number got: the PIN answer and, per other fact asked for
    (by name, in the order asked), its call's result - or, for each, the exception it raised, so
    that one failing call does not cost the others' answers.

    ``pin`` is an exception only for a web instance (``PlugzInstanceNotSupportedError``: the PIN
    endpoints are mobile-only, its other facts are still read); any other PIN failure ends the
    check before the other calls, as it would end them the same way.
    """

    pin: PinStatus | Exception
    columns: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PinAndStatus:
    """What the audit's check of one number got with ``check_status``: each call's answer, or
    the exception it raised (see :class:`FactsRead`, of which this is the PIN-and-status case)."""

    pin: PinStatus | Exception
    status: InstanceStatus | Exception


def read_facts(names: tuple[str, ...]) -> Callable[[PlugzHook], Awaitable[FactsRead]]:
    """The check that reads the PIN, then the facts ``names`` (see
    :data:`~airflow_provider_plugz.endpoints.FACTS`), one after the other on the same hook (and
    so the worker's HTTP connection)."""
    from airflow_provider_plugz.endpoints import FACTS, PIN

    facts = [FACTS[name] for name in names if name != PIN.name]

    async def check(hook: PlugzHook) -> FactsRead:
        pin: PinStatus | Exception
        try:
            pin = await hook.acall(PIN.endpoint)
        except PlugzInstanceNotSupportedError as err:  # a web instance: no PIN endpoint, the rest
            pin = err
        columns: dict[str, Any] = {}
        for fact in facts:
            try:
                columns[fact.name] = await hook.acall(fact.endpoint)
            except Exception as err:  # the other answers are kept; the entry reports this failure
                columns[fact.name] = err
        return FactsRead(pin, columns)

    return check


async def pin_status(hook: PlugzHook) -> PinStatus:
    """The audit's check of one connection, for :func:`~airflow_provider_plugz.audit.fanout.check_fleet`."""
    return await hook.aget_pin_status()


async def pin_and_status(hook: PlugzHook) -> PinAndStatus:
    """The ``check_status`` check: the PIN, then the status, on the same hook."""
    read = await read_facts(("connection",))(hook)
    return PinAndStatus(read.pin, read.columns["connection"])
