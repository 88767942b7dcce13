"""What the audit asks of one number: its PIN (:func:`pin_status`), or with ``check_status``
its PIN and then its status (:func:`pin_and_status`, giving a :class:`PinAndStatus`). Each is
a check for :func:`~airflow_provider_plugz.audit.fanout.check_fleet`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from airflow_provider_plugz.exceptions import PlugzInstanceNotSupportedError

if TYPE_CHECKING:
    from airflow_provider_plugz.hooks.plugz import InstanceStatus, PinStatus, PlugzHook


@dataclass(frozen=True)
class PinAndStatus:
    """What the audit's check of one number got with ``check_status``: each call's answer, or
    the exception it raised, so that a failing status call does not cost the PIN answer.

    ``pin`` is an exception only for a web instance (``PlugzInstanceNotSupportedError``: the PIN
    endpoints are mobile-only, its status is still read); any other PIN failure ends the check
    before the status call, as it would end that call the same way.
    """

    pin: PinStatus | Exception
    status: InstanceStatus | Exception


async def pin_status(hook: PlugzHook) -> PinStatus:
    """The audit's check of one connection, for :func:`~airflow_provider_plugz.audit.fanout.check_fleet`."""
    return await hook.aget_pin_status()


async def pin_and_status(hook: PlugzHook) -> PinAndStatus:
    """The ``check_status`` check: the PIN, then the status, one after the other on the same
    hook (and so the worker's HTTP connection). See :class:`PinAndStatus` for which PIN
    failures still get the status read."""
    pin: PinStatus | Exception
    try:
        pin = await hook.aget_pin_status()
    except PlugzInstanceNotSupportedError as err:  # a web instance: no PIN endpoint, a status
        pin = err
    status: InstanceStatus | Exception
    try:
        status = await hook.aget_instance_status()
    except Exception as err:  # the PIN answer is kept; the entry reports the status failure
        status = err
    return PinAndStatus(pin, status)
