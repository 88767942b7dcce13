"""Fan-out: one async check per Plugz connection id, a bounded number at a time, within a deadline.

:func:`check_fleet` is what ``PlugzPinAuditOperator`` runs, and what any task that asks many
Plugz numbers the same question can run: it takes the per-connection check as a parameter
(an async callable ``PlugzHook -> result``, e.g. ``lambda hook: hook.aget_pin_status()``) and
returns a :class:`FleetRun` that says, for each connection id, what the check returned, what it
raised, or why it did not finish (cancelled in flight at the deadline, or never started).
A check may ask several questions of its number (the audit's ``check_status`` asks for the PIN,
then the status): awaited one after the other on the hook it is given, they go over the
worker's one HTTP connection, so the bounds below hold for requests as well as for numbers.

How it runs, and why:

- ``max_concurrency`` workers, each taking the next connection id when it is free, so there are
  never more than ``max_concurrency`` checks (and HTTP connections) at a time, and one hook
  alive per worker however long the list.
- A worker's hooks share one httpx client (``connections_per_client`` workers per client), so
  its HTTP connection is kept alive from one number to the next on the same host. One small
  pool per worker, not one big shared pool: httpcore re-scans its whole pool on every request,
  quadratically when connections sit idle (``benchmarks/README.md``, (c)).
- Everything slow to load or build happens before the first worker starts, while nothing is in
  flight: httpx and the transport modules httpcore would import on its first request
  (:func:`~airflow_provider_plugz.hooks.plugz.preload_async_transport`), the TLS context and
  the clients. On the event loop they would stall every request in flight.
- At the deadline the checks still running are cancelled, every client is closed and the
  finished results are kept. :func:`run_in_new_loop` runs it from synchronous code (a task's
  ``execute``) without waiting, at the end, for threads a cancelled check left behind.

Every hook is built with ``require_conn_type=True``: connection ids often come from users (a
run's configuration), and a connection of another type (``http``, ``postgres``) must be refused
before its credentials are sent anywhere.

:func:`chunked` splits a long list of ids into balanced chunks, for fleets too large for one
task: each chunk becomes one mapped task instance (Airflow's dynamic task mapping), each with
its own fan-out.

This module was ``airflow_provider_plugz.hooks.fleet`` (it is not a hook), which re-exports it.
Unlike the rest of :mod:`airflow_provider_plugz.audit`, importing it loads the hook module: it is
imported only when a task runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from airflow_provider_plugz.hooks import plugz

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping

    import httpx

    from airflow_provider_plugz.hooks.plugz import PlugzHook

__all__ = ["FleetRun", "check_fleet", "chunked", "run_in_new_loop"]

_R = TypeVar("_R")
_R_co = TypeVar("_R_co", covariant=True)
_T = TypeVar("_T")


@dataclass(frozen=True)
class FleetRun(Generic[_R_co]):
    """What :func:`check_fleet` got, per connection id; every id is in exactly one of the four.

    :param conn_ids: the ids checked, in the order given, duplicates dropped.
    :param max_concurrency: the bound the checks ran under.
    :param values: what the check returned, per id.
    :param errors: what the check raised (an ``Exception``), per id: an undefined connection,
        a ``PlugzError``, or a bug in the check. Keep their texts out of logs and XComs unless
        they are ``PlugzError`` instances, which are redacted at the source.
    :param cancelled: ids whose check was still running at the deadline (and was cancelled).
    :param never_started: ids no worker reached before the deadline.
    """

    conn_ids: tuple[str, ...]
    max_concurrency: int
    values: Mapping[str, _R_co] = field(default_factory=dict)
    errors: Mapping[str, Exception] = field(default_factory=dict)
    cancelled: tuple[str, ...] = ()
    never_started: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # Read-only views: a FleetRun is a value, shared by whoever reports on it.
        object.__setattr__(self, "values", MappingProxyType(dict(self.values)))
        object.__setattr__(self, "errors", MappingProxyType(dict(self.errors)))

    @property
    def timed_out(self) -> tuple[str, ...]:
        """The ids not finished by the deadline (cancelled or never started), in the given order."""
        unfinished = {*self.cancelled, *self.never_started}
        return tuple(conn_id for conn_id in self.conn_ids if conn_id in unfinished)

    @property
    def deadline_reached(self) -> bool:
        return bool(self.cancelled or self.never_started)


async def check_fleet(
    conn_ids: Iterable[str],
    check: Callable[[PlugzHook], Awaitable[_R]],
    *,
    deadline: float,
    max_concurrency: int,
    connections_per_client: int = 1,
) -> FleetRun[_R]:
    """Run ``check(hook)`` once per connection id, at most ``max_concurrency`` at a time.

    :param conn_ids: Plugz connection ids; each is checked once (first occurrence kept).
    :param check: the per-connection check, given a ``PlugzHook`` of that id (sharing its
        worker's httpx client); whatever it returns goes into :attr:`FleetRun.values`, an
        ``Exception`` it raises into :attr:`FleetRun.errors`. The hook is closed afterwards.
        Calls it awaits one after the other reuse the worker's HTTP connection; a check that
        wants the answer of one call kept when a later one fails catches that failure itself.
    :param deadline: when to stop, as a :func:`time.monotonic` value: the checks still running
        then are cancelled, those not started are not started.
    :param max_concurrency: the most checks, and HTTP connections, at a time.
    :param connections_per_client: workers (HTTP connections) per httpx client.
    :raises ValueError: ``max_concurrency`` or ``connections_per_client`` is not an integer >= 1.
    """
    for name, value in (
        ("max_concurrency", max_concurrency),
        ("connections_per_client", connections_per_client),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    ids = tuple(dict.fromkeys(conn_ids))
    values: dict[str, _R] = {}
    errors: dict[str, Exception] = {}
    begun: set[str] = set()
    workers = min(max_concurrency, len(ids))
    if workers:
        # While nothing is in flight: the hook module's imports, httpx, httpcore's transport
        # modules, the TLS context and the clients (looked up on the module, so tests can wrap them).
        plugz.preload_async_transport()
        size = connections_per_client
        clients: list[httpx.AsyncClient] = []
        tasks: list[asyncio.Future[None]] = []
        todo = iter(ids)  # shared by the workers: each takes the next id when it is free

        async def worker(client: httpx.AsyncClient) -> None:
            for conn_id in todo:
                if time.monotonic() >= deadline:  # the wait below may learn it a little late
                    return
                begun.add(conn_id)
                hook = plugz.PlugzHook(conn_id, async_client=client, require_conn_type=True)
                try:
                    values[conn_id] = await check(hook)
                except Exception as err:  # one failing number never hides the others
                    errors[conn_id] = err
                finally:
                    with contextlib.suppress(Exception):  # only a hook-owned client; the result is in
                        await hook.aclose()

        try:
            for n in range(0, workers, size):
                clients.append(plugz.new_async_client(max_connections=min(size, workers - n)))
            tasks.extend(asyncio.ensure_future(worker(clients[n // size])) for n in range(workers))
            done, _ = await asyncio.wait(tasks, timeout=max(0.0, deadline - time.monotonic()))
            for task in done:
                task.result()  # a bug in the fan-out itself is raised, not hidden as a timeout
        finally:
            for task in tasks:  # still running at the deadline, or the caller was interrupted
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for client in clients:
                with contextlib.suppress(Exception):  # one failing close must not skip the others
                    await client.aclose()
    return FleetRun(
        conn_ids=ids,
        values={conn_id: values[conn_id] for conn_id in ids if conn_id in values},
        errors={conn_id: errors[conn_id] for conn_id in ids if conn_id in errors},
        cancelled=tuple(c for c in ids if c in begun and c not in values and c not in errors),
        never_started=tuple(c for c in ids if c not in begun),
        max_concurrency=max_concurrency,
    )


def chunked(conn_ids: Iterable[str], chunk_size: int, *, max_chunks: int | None = None) -> list[list[str]]:
    """``conn_ids`` (duplicates dropped, first occurrence kept, order kept) in the fewest
    contiguous chunks of at most ``chunk_size`` ids, their sizes differing by one at most.

    Balanced, not ``chunk_size`` then a remainder: 1,001 ids at 500 are chunks of 334, 334 and
    333, so no chunk task runs much longer than the others. With ``max_chunks`` (Airflow's
    ``[core] max_map_length`` for mapped tasks) there are never more chunks than that: the
    chunks then grow past ``chunk_size``, still balanced. No ids, no chunks.

    :raises ValueError: ``chunk_size`` or ``max_chunks`` is not an integer >= 1.
    """
    for name, value in (("chunk_size", chunk_size), ("max_chunks", max_chunks)):
        if value is None and name == "max_chunks":
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    ids = list(dict.fromkeys(conn_ids))
    if not ids:
        return []
    count = math.ceil(len(ids) / chunk_size)
    if max_chunks is not None:
        count = min(count, max_chunks)
    size, longer = divmod(len(ids), count)  # the first `longer` chunks hold one id more
    chunks: list[list[str]] = []
    start = 0
    for index in range(count):
        end = start + size + (1 if index < longer else 0)
        chunks.append(ids[start:end])
        start = end
    return chunks


def run_in_new_loop(coroutine: Coroutine[Any, Any, _T]) -> _T:
    """``asyncio.run``, but without waiting at the end for threads of cancelled checks.

    ``asyncio.run`` joins the loop's thread pool before returning: a connection read still
    running there (a secrets backend that hangs, say) would hold the caller back past the
    deadline, until Airflow kills the task. Those threads end on their own; nobody waits for them.
    """
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)  # as asyncio.run does
    try:
        return loop.run_until_complete(coroutine)
    finally:
        try:
            # Interrupted (a signal, Airflow stopping the task): let every task run its cleanup.
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()  # shuts its thread pool down without waiting
