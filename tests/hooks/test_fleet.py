"""The fan-out (``airflow_provider_plugz.hooks.fleet``): bounded workers over shared httpx clients
(also for checks that make two calls), the deadline (cancelled in flight vs never started),
errors kept per number, cancellation, the transport preloaded before any check, and the loop
runner that does not wait for stray threads.

Against the sandbox where HTTP matters (connections, concurrency); with fake checks, which never
touch the hook they are given, where only the scheduling matters."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_plugz._compat import AIRFLOW_V3
from airflow_provider_plugz.exceptions import PlugzNotFoundError
from airflow_provider_plugz.hooks import plugz
from airflow_provider_plugz.hooks.fleet import FleetRun, check_fleet, run_in_new_loop

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    import httpx

    from airflow_provider_plugz.hooks.plugz import PinStatus, PlugzHook
    from airflow_provider_plugz.testing import PlugzSandbox

NUMBERS = 12
IDS = [f"conn_{c}" for c in "abcdef"]


def soon(seconds: float = 0.3) -> float:
    """A deadline ``seconds`` from now, as check_fleet takes it."""
    return time.monotonic() + seconds


@pytest.fixture
def numbers(sandbox: PlugzSandbox, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """``NUMBERS`` healthy sandbox instances with a PIN, one ``AIRFLOW_CONN_NUMBER_<n>`` each."""
    conn_ids = []
    for n in range(NUMBERS):
        instance = f"NUMBER{n:03d}INSTANCE0000000000"
        sandbox.add_instance(instance, f"NUMBER{n:03d}T0KEN5ECRET00000000", has_code=True)
        monkeypatch.setenv(f"AIRFLOW_CONN_NUMBER_{n}", sandbox.connection_json(instance))
        conn_ids.append(f"number_{n}")
    return conn_ids


@pytest.fixture
def clients(monkeypatch: pytest.MonkeyPatch) -> list[httpx.AsyncClient]:
    """Every httpx client the fan-out builds, to check how many and that each one gets closed."""
    built: list[httpx.AsyncClient] = []
    real = plugz.new_async_client

    def new_async_client(*args: Any, **kwargs: Any) -> httpx.AsyncClient:
        built.append(real(*args, **kwargs))
        return built[-1]

    monkeypatch.setattr(plugz, "new_async_client", new_async_client)
    return built


async def pin_status(hook: PlugzHook) -> PinStatus:
    return await hook.aget_pin_status()


def run(conn_ids: list[str], check: Callable[[PlugzHook], Awaitable[Any]], **kwargs: Any) -> FleetRun[Any]:
    kwargs.setdefault("deadline", soon(60))
    kwargs.setdefault("max_concurrency", 32)
    return run_in_new_loop(check_fleet(conn_ids, check, **kwargs))


# --- against the sandbox -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("max_concurrency", "connections_per_client", "expected_clients"),
    [
        pytest.param(1, 1, 1, id="one-worker-one-connection"),
        pytest.param(4, 1, 4, id="a-client-per-worker"),
        pytest.param(5, 2, 3, id="two-workers-per-client"),
    ],
)
def test_checks_every_number_within_the_bound_over_kept_alive_connections(
    sandbox: PlugzSandbox,
    numbers: list[str],
    clients: list[httpx.AsyncClient],
    max_concurrency: int,
    connections_per_client: int,
    expected_clients: int,
) -> None:
    sandbox.latency = 0.02  # so that checks overlap in the sandbox
    result = run(
        numbers, pin_status, max_concurrency=max_concurrency, connections_per_client=connections_per_client
    )

    assert {c: s.has_code for c, s in result.values.items()} == dict.fromkeys(numbers, True)
    assert (result.errors, result.timed_out) == ({}, ())
    assert sandbox.request_count == NUMBERS
    if max_concurrency == 1:
        assert sandbox.max_in_flight == 1
    else:
        assert 1 < sandbox.max_in_flight <= max_concurrency
    # Each worker keeps its HTTP connection from one number to the next.
    assert sandbox.connections_accepted <= max_concurrency
    assert len(clients) == expected_clients
    assert all(client.is_closed for client in clients)


@pytest.mark.parametrize("max_concurrency", [pytest.param(1, id="1"), pytest.param(4, id="4")])
def test_a_check_asking_twice_does_so_one_request_at_a_time_on_its_workers_connection(
    sandbox: PlugzSandbox, numbers: list[str], clients: list[httpx.AsyncClient], max_concurrency: int
) -> None:
    """Two calls awaited one after the other (as the audit's ``check_status`` makes): twice the
    requests, the same bound on requests in flight and on connections."""
    sandbox.latency = 0.02  # so that checks overlap in the sandbox

    async def pin_then_status(hook: PlugzHook) -> tuple[bool, bool]:
        pin = await hook.aget_pin_status()
        status = await hook.aget_instance_status()
        return pin.has_code, status.connected

    result = run(numbers, pin_then_status, max_concurrency=max_concurrency)

    assert result.values == dict.fromkeys(numbers, (True, True))
    assert sandbox.request_count == 2 * NUMBERS
    assert sandbox.max_in_flight == max_concurrency
    assert sandbox.connections_accepted <= max_concurrency
    for n in range(NUMBERS):
        asked = [
            r.path.rsplit("/", 1)[-1] for r in sandbox.requests if r.instance_id.startswith(f"NUMBER{n:03d}")
        ]
        assert asked == ["two-fa-code", "status"]
    assert len(clients) == max_concurrency
    assert all(client.is_closed for client in clients)


@pytest.mark.skipif(not AIRFLOW_V3, reason="Airflow 2 tasks read connections in-process")
def test_works_over_a_real_supervisor_channel(numbers: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """In a worker, connection look-ups and secret masking go to the supervisor over one socket.

    Concurrent look-ups there must not collide: a synchronous ``mask_secret`` while another
    coroutine's asynchronous request holds the channel raises ``DeadlockImminentError``
    (a BaseException, which would end the whole fan-out). Fakes the supervisor's end of it.
    """
    import msgspec
    from airflow.sdk.execution_time import task_runner
    from airflow.sdk.execution_time.comms import CommsDecoder, _RequestFrame, _ResponseFrame

    ours, theirs = socket.socketpair()
    seen: list[str] = []

    def supervisor() -> None:
        decoder = msgspec.msgpack.Decoder(_RequestFrame)
        with theirs:
            while head := theirs.recv(4, socket.MSG_WAITALL):
                request = decoder.decode(theirs.recv(int.from_bytes(head, "big"), socket.MSG_WAITALL))
                seen.append(str((request.body or {}).get("type")))
                theirs.sendall(_ResponseFrame(id=request.id).as_bytes())

    thread = threading.Thread(target=supervisor, daemon=True)
    thread.start()
    monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", CommsDecoder(socket=ours), raising=False)
    try:
        result = run(numbers, pin_status, max_concurrency=8)
    finally:
        ours.close()
        thread.join(5)
    assert {c: s.has_code for c, s in result.values.items()} == dict.fromkeys(numbers, True)
    assert "MaskSecret" in seen


def test_a_non_plugz_connection_is_refused_before_any_request(
    sandbox: PlugzSandbox, numbers: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every hook is built with ``require_conn_type=True``: ids often come from users."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_POSING", sandbox.connection_json("NUMBER000INSTANCE0000000000", conn_type="http")
    )
    result = run(["posing", numbers[1]], pin_status)

    assert type(result.errors["posing"]).__name__ == "PlugzConfigurationError"
    assert list(result.values) == [numbers[1]]
    assert [r.instance_id for r in sandbox.requests] == ["NUMBER001INSTANCE0000000000"]


# --- scheduling, with fake checks ----------------------------------------------------------------


def waits_forever_for(slow: set[str]) -> Callable[[PlugzHook], Awaitable[str]]:
    """A check that answers the conn id in upper case at once, except for ``slow`` ids."""

    async def check(hook: PlugzHook) -> str:
        if hook.plugz_conn_id in slow:
            await asyncio.Event().wait()  # until cancelled
        return hook.plugz_conn_id.upper()

    return check


@pytest.mark.parametrize(
    ("max_concurrency", "cancelled", "never_started"),
    [
        # Every check starts at once: the slow ones are cancelled in flight, the rest are kept.
        pytest.param(6, ("conn_a", "conn_b"), (), id="slow-ones-cancelled-the-rest-kept"),
        # Two workers, both stuck on the slow numbers listed first: nobody else gets a turn.
        pytest.param(2, ("conn_a", "conn_b"), tuple(IDS[2:]), id="stuck-workers-the-rest-never-started"),
    ],
)
def test_the_deadline_cancels_checks_in_flight_and_starts_no_new_ones(
    clients: list[httpx.AsyncClient],
    max_concurrency: int,
    cancelled: tuple[str, ...],
    never_started: tuple[str, ...],
) -> None:
    started = time.monotonic()
    result = run(
        IDS, waits_forever_for({"conn_a", "conn_b"}), deadline=soon(), max_concurrency=max_concurrency
    )

    assert 0.3 <= time.monotonic() - started < 5
    assert (result.cancelled, result.never_started) == (cancelled, never_started)
    assert result.timed_out == (*cancelled, *never_started)
    assert result.deadline_reached
    assert result.values == {c: c.upper() for c in IDS if c not in result.timed_out}
    assert result.max_concurrency == max_concurrency
    assert clients
    assert all(client.is_closed for client in clients)


def test_a_deadline_already_past_starts_nothing(clients: list[httpx.AsyncClient]) -> None:
    calls: list[str] = []

    async def check(hook: PlugzHook) -> None:
        calls.append(hook.plugz_conn_id)

    result = run(IDS, check, deadline=time.monotonic() - 1)
    assert (calls, result.never_started, result.values) == ([], tuple(IDS), {})
    assert all(client.is_closed for client in clients)


def test_what_a_check_raises_is_kept_per_number_and_hides_no_other() -> None:
    raised = {"conn_b": PlugzNotFoundError("unknown instance"), "conn_d": RuntimeError("a bug in the check")}

    async def check(hook: PlugzHook) -> str:
        if hook.plugz_conn_id in raised:
            raise raised[hook.plugz_conn_id]
        return "ok"

    result = run(IDS, check, max_concurrency=2)
    assert dict(result.errors) == raised  # the very exceptions, in the order given
    assert list(result.errors) == ["conn_b", "conn_d"]
    assert result.values == {c: "ok" for c in IDS if c not in raised}
    assert not result.deadline_reached


def test_each_check_gets_its_own_type_checked_hook_and_each_hook_is_closed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    closed: list[str] = []
    hooks: list[PlugzHook] = []

    async def aclose(self: PlugzHook) -> None:
        closed.append(self.plugz_conn_id)

    monkeypatch.setattr(plugz.PlugzHook, "aclose", aclose)

    async def check(hook: PlugzHook) -> None:
        hooks.append(hook)
        if hook.plugz_conn_id == "conn_c":
            raise PlugzNotFoundError("unknown instance")

    run(["conn_b", "conn_a", "conn_b", "conn_c"], check, max_concurrency=1)
    assert [h.plugz_conn_id for h in hooks] == ["conn_b", "conn_a", "conn_c"]  # duplicates dropped
    assert all(h.require_conn_type for h in hooks)
    assert closed == ["conn_b", "conn_a", "conn_c"]  # the failing one too


def test_slow_things_are_loaded_and_built_before_the_first_check(monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[str] = []
    real_preload, real_client = plugz.preload_async_transport, plugz.new_async_client

    def preload() -> None:
        events.append("preload")
        real_preload()

    def new_async_client(*args: Any, **kwargs: Any) -> httpx.AsyncClient:
        events.append("client")
        return real_client(*args, **kwargs)

    monkeypatch.setattr(plugz, "preload_async_transport", preload)
    monkeypatch.setattr(plugz, "new_async_client", new_async_client)

    async def check(hook: PlugzHook) -> None:
        events.append("check")

    run(IDS, check, max_concurrency=3)
    assert events == ["preload", "client", "client", "client", *["check"] * len(IDS)]


def test_no_numbers_no_clients(clients: list[httpx.AsyncClient]) -> None:
    result = run([], waits_forever_for(set()))
    assert result == FleetRun(conn_ids=(), max_concurrency=32)
    assert clients == []


def test_a_bug_in_the_fan_out_itself_is_raised_and_the_clients_still_closed(
    monkeypatch: pytest.MonkeyPatch, clients: list[httpx.AsyncClient]
) -> None:
    def broken_hook(*args: Any, **kwargs: Any) -> PlugzHook:
        raise TypeError("cannot build a hook")

    monkeypatch.setattr(plugz, "PlugzHook", broken_hook)
    with pytest.raises(TypeError, match="cannot build a hook"):
        run(IDS, waits_forever_for(set()), max_concurrency=2)
    assert len(clients) == 2
    assert all(client.is_closed for client in clients)


def test_cancelling_the_fan_out_cancels_every_check_and_closes_every_client(
    clients: list[httpx.AsyncClient],
) -> None:
    """The task stopped from outside (Airflow killing it, a signal): nothing is left running."""
    started: list[str] = []
    cancelled: list[str] = []

    async def main() -> None:
        all_started = asyncio.Event()

        async def check(hook: PlugzHook) -> None:
            started.append(hook.plugz_conn_id)
            if len(started) == 3:
                all_started.set()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancelled.append(hook.plugz_conn_id)
                raise

        task = asyncio.ensure_future(check_fleet(IDS, check, deadline=soon(60), max_concurrency=3))
        await asyncio.wait_for(all_started.wait(), 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run_in_new_loop(main())
    assert sorted(cancelled) == sorted(started) == IDS[:3]
    assert all(client.is_closed for client in clients)


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"max_concurrency": 0}, id="zero-workers"),
        pytest.param({"max_concurrency": True}, id="bool-workers"),
        pytest.param({"max_concurrency": 2.0}, id="float-workers"),
        pytest.param({"connections_per_client": 0}, id="zero-per-client"),
        pytest.param({"connections_per_client": "1"}, id="text-per-client"),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"(max_concurrency|connections_per_client) must be an integer >= 1"):
        run(IDS, waits_forever_for(set()), **kwargs)


def test_a_fleet_run_is_a_read_only_value() -> None:
    result: FleetRun[str] = FleetRun(
        conn_ids=("a", "b", "c"), max_concurrency=1, values={"b": "x"}, never_started=("c",), cancelled=("a",)
    )
    assert result.timed_out == ("a", "c")  # in the order given, whichever way they did not finish
    with pytest.raises(TypeError):
        result.values["c"] = "y"  # type: ignore[index]


# --- run_in_new_loop -----------------------------------------------------------------------------


def test_run_in_new_loop_does_not_wait_for_threads_of_cancelled_checks() -> None:
    """A connection read stuck in a worker thread (a hanging secrets backend, say) must not hold
    the caller past the deadline, as ``asyncio.run`` would by joining the thread pool."""
    release = threading.Event()

    async def check(hook: PlugzHook) -> None:
        await asyncio.to_thread(release.wait, 30)

    started = time.monotonic()
    try:
        result = run(IDS[:2], check, deadline=soon())
        elapsed = time.monotonic() - started
    finally:
        release.set()
    assert elapsed < 5
    assert result.cancelled == tuple(IDS[:2])


def test_run_in_new_loop_returns_the_result_and_lets_leftover_tasks_clean_up() -> None:
    cleaned: list[bool] = []

    async def leftover() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cleaned.append(True)

    tasks: list[asyncio.Future[None]] = []

    async def main() -> str:
        tasks.append(asyncio.ensure_future(leftover()))
        await asyncio.sleep(0)  # let it start
        return "done"

    assert run_in_new_loop(main()) == "done"
    assert cleaned == [True]
    assert tasks[0].cancelled()


# --------------------------------------------------------------------------- chunked (large fleets)


@pytest.mark.parametrize(
    ("count", "chunk_size", "max_chunks", "sizes"),
    [
        pytest.param(0, 5, None, [], id="no-ids-no-chunks"),
        pytest.param(3, 5, None, [3], id="up-to-chunk-size-is-one-chunk"),
        pytest.param(5, 5, None, [5], id="exactly-chunk-size"),
        pytest.param(6, 5, None, [3, 3], id="one-more-is-two-balanced-chunks"),
        pytest.param(1001, 500, None, [334, 334, 333], id="balanced-not-a-remainder"),
        pytest.param(10, 1, None, [1] * 10, id="chunks-of-one"),
        pytest.param(10, 2, 3, [4, 3, 3], id="max-chunks-grows-the-chunks"),
        pytest.param(10, 2, 5, [2] * 5, id="max-chunks-not-reached"),
        pytest.param(10, 2, 1, [10], id="max-chunks-one"),
    ],
)
def test_chunked_splits_in_order_into_the_fewest_balanced_chunks(
    count: int, chunk_size: int, max_chunks: int | None, sizes: list[int]
) -> None:
    from airflow_provider_plugz.hooks.fleet import chunked

    ids = [f"plugz_{n}" for n in range(count)]
    chunks = chunked(ids, chunk_size, max_chunks=max_chunks)
    assert [len(chunk) for chunk in chunks] == sizes
    assert [conn_id for chunk in chunks for conn_id in chunk] == ids  # every id once, in order


def test_chunked_drops_duplicates_before_splitting() -> None:
    from airflow_provider_plugz.hooks.fleet import chunked

    assert chunked(["a", "b", "a", "c", "b", "d"], 2) == [["a", "b"], ["c", "d"]]


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"chunk_size": 0}, id="chunk-size-zero"),
        pytest.param({"chunk_size": True}, id="chunk-size-bool"),
        pytest.param({"chunk_size": 2.5}, id="chunk-size-float"),
        pytest.param({"chunk_size": 2, "max_chunks": 0}, id="max-chunks-zero"),
        pytest.param({"chunk_size": 2, "max_chunks": "3"}, id="max-chunks-str"),
    ],
)
def test_chunked_refuses_bad_sizes(kwargs: dict[str, Any]) -> None:
    from airflow_provider_plugz.hooks.fleet import chunked

    with pytest.raises(ValueError, match="must be an integer >= 1"):
        chunked(["a", "b"], **kwargs)
