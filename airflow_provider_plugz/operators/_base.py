"""``PlugzHookMixin``: what every Plugz operator and sensor holds - a templated ``plugz_conn_id``
and a :class:`~airflow_provider_plugz.hooks.plugz.PlugzHook` built the first time it is used.

A mixin, not a base operator, because the Airflow bases differ (``BaseOperator``,
``BaseBranchOperator``, ``BaseSensorOperator``): put it first, ``class X(PlugzHookMixin,
BaseOperator)``. Cheap to import: DAG files import it on every parse, so the hook (and
``requests``) is imported inside :attr:`PlugzHookMixin.hook`, when a task runs.

Operators that work on many connections at once (the PIN audit) take ``plugz_conn_ids`` and
build their hooks per connection; they do not use it.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_plugz.connection import DEFAULT_CONN_ID

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow_provider_plugz.hooks.plugz import PlugzHook

__all__ = ["PlugzHookMixin"]

#: The template field the mixin provides; a subclass that declares its own ``template_fields``
#: includes it: ``template_fields = (*PlugzHookMixin.template_fields, "pin_variable")``.
CONN_ID_FIELD = "plugz_conn_id"


class PlugzHookMixin:
    """A templated ``plugz_conn_id`` and a lazy, cached ``hook`` for one Plugz connection.

    :param plugz_conn_id: the Plugz connection (templated).
    """

    template_fields: Sequence[str] = (CONN_ID_FIELD,)
    #: Build the hook only for a connection of type ``plugz`` (a sensor's and its trigger's rule:
    #: the credentials of another type are never sent to Plugz).
    require_plugz_conn_type: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if CONN_ID_FIELD not in cls.template_fields:
            raise TypeError(
                f"{cls.__name__}.template_fields must include {CONN_ID_FIELD!r} (it is templated on "
                f"every Plugz operator): write (*PlugzHookMixin.template_fields, ...)"
            )

    def __init__(self, *, plugz_conn_id: str = DEFAULT_CONN_ID, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plugz_conn_id = plugz_conn_id

    @cached_property
    def hook(self) -> PlugzHook:
        """The hook for :attr:`plugz_conn_id`, imported and built on first use (never at DAG parse)."""
        from airflow_provider_plugz.hooks.plugz import PlugzHook

        if self.require_plugz_conn_type:
            return PlugzHook(plugz_conn_id=self.plugz_conn_id, require_conn_type=True)
        return PlugzHook(plugz_conn_id=self.plugz_conn_id)
