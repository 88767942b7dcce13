"""(c) Fleet audit: PlugzPinAuditOperator over 1,000 instances, the sandbox adding 50 ms to every
answer, max_concurrency=50; wall time vs the ideal 1000 x 50 ms / 50 = 1.0 s.

Each run is a fresh interpreter, as a worker runs a task: its first audit ("cold") pays what a
real task pays, including Airflow's secrets masker learning 1,000 new passwords; a second audit
in the same process ("warm": connections' secrets already known) shows the cost of our own code.
For contrast, one PlugzHook per instance called one after the other (what a loop of
PlugzPinStatusOperator-like calls costs), on 100 instances, extrapolated to the whole fleet.
The sandbox runs in its own process; its high-water mark of calls in flight, its CPU use and the
throughput a bare httpx client gets from it at 0 latency show whether it is the bottleneck.

Event-loop lag: while the checks are in flight, a monitor coroutine on the audit's own loop
sleeps 10 ms again and again and records how late it wakes (``_common.LagMonitor``). Its max is
the longest the loop was blocked (a connection read, Airflow's secrets masker, a first import):
every request in flight was stalled by as much. Reported per audit as max / p99 in ms.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

from _common import (
    CLIENT_TOKEN,
    HERE,
    ROOT,
    LagMonitor,
    MaskerClock,
    SandboxProcess,
    lag_text,
    load_average,
    machine,
    median,
    median_lag,
    set_plugz_connections,
    table,
)

if TYPE_CHECKING:
    from collections.abc import Iterator


class FakeTaskInstance:
    def __init__(self) -> None:
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


@contextlib.contextmanager
def lag_monitored(monitors: list[LagMonitor]) -> Iterator[None]:
    """While inside, every fan-out (``audit.fanout.check_fleet``) carries a LagMonitor on its loop.

    The operator looks ``check_fleet`` up on the module when it runs, so wrapping it there puts
    the monitor on the audit's own event loop. The monitor starts with the fan-out, so its first
    wake-up comes after the transport is preloaded, the clients built and the workers started:
    it sees only what runs while requests are in flight.
    """
    from airflow_provider_plugz.audit import fanout

    real = fanout.check_fleet

    async def monitored(*args: Any, **kwargs: Any) -> Any:
        monitor = LagMonitor().start()
        monitors.append(monitor)
        try:
            return await real(*args, **kwargs)
        finally:
            monitor.stop()

    fanout.check_fleet = monitored
    try:
        yield
    finally:
        fanout.check_fleet = real


def audit(conn_ids: list[str], max_concurrency: int, masker: MaskerClock) -> dict[str, Any]:
    from airflow_provider_plugz.operators.audit import PlugzPinAuditOperator

    monitors: list[LagMonitor] = []
    operator = PlugzPinAuditOperator(
        task_id="audit", plugz_conn_ids=conn_ids, max_concurrency=max_concurrency
    )
    masker_before, cpu, start = masker.seconds, time.process_time(), time.perf_counter()
    with lag_monitored(monitors):
        report = operator.execute({"ti": FakeTaskInstance()})
    wall = time.perf_counter() - start
    assert report["total"] == len(conn_ids), report["total"]
    assert report["errors"] == 0, report["errors"]
    [monitor] = monitors
    return {
        "wall": wall,
        "cpu": time.process_time() - cpu,
        "masker": masker.seconds - masker_before,
        "lag": monitor.summary(),
    }


def child(args: argparse.Namespace) -> None:
    """One worker-like process: a cold audit, then a warm one; JSON on the last line."""
    import airflow.sdk  # noqa: F401 - loaded before the clock starts, as in a worker

    masker = MaskerClock()
    conn_ids = json.loads(os.environ["BENCH_CONN_IDS"])
    cold = audit(conn_ids, args.max_concurrency, masker)
    warm = audit(conn_ids, args.max_concurrency, masker)
    print("RESULT " + json.dumps({"cold": cold, "warm": warm}), flush=True)


def run_child(conn_ids: list[str], max_concurrency: int) -> dict[str, Any]:
    env = dict(os.environ, BENCH_CONN_IDS=json.dumps(conn_ids))
    command = [
        sys.executable,
        str(HERE / "bench_fleet_audit.py"),
        "--child",
        "--max-concurrency",
        str(max_concurrency),
    ]
    out = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, check=True)
    [line] = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
    return json.loads(line[len("RESULT ") :])  # type: ignore[no-any-return]


def sequential(conn_ids: list[str]) -> float:
    from airflow_provider_plugz.hooks.plugz import PlugzHook

    start = time.perf_counter()
    for conn_id in conn_ids:
        hook = PlugzHook(conn_id)
        hook.get_pin_status()
        hook.close()
    return time.perf_counter() - start


async def raw_throughput(urls: list[str], concurrency: int) -> float:
    """Requests per second the sandbox serves to a minimal client (no latency).

    ``concurrency`` keep-alive connections, each sending its next GET as soon as the previous
    answer is in; plain asyncio streams, so the client does next to no work per request and
    the figure is the sandbox's capacity, not an HTTP library's.
    """
    from urllib.parse import urlsplit

    first = urlsplit(urls[0])
    todo = iter(urls)

    async def connection() -> int:
        reader, writer = await asyncio.open_connection(first.hostname, first.port)
        done = 0
        for url in todo:
            path = urlsplit(url).path
            request = f"GET {path} HTTP/1.1\r\nHost: {first.netloc}\r\nClient-Token: {CLIENT_TOKEN}\r\n\r\n"
            writer.write(request.encode())
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 "), head[:40]
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            done += 1
        writer.close()
        return done

    start = time.perf_counter()
    served = sum(await asyncio.gather(*(connection() for _ in range(concurrency))))
    return served / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--max-concurrency", type=int, default=50)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--sequential-instances", type=int, default=100)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    ideal = args.instances * args.latency / args.max_concurrency

    with SandboxProcess(latency=args.latency) as sandbox:
        pairs = sandbox.call("add_instances", prefix="fleet", count=args.instances)
        conn_ids = set_plugz_connections(sandbox, pairs, "fleet")
        load_before = load_average()
        rows, runs = [], []
        for run in range(1, args.runs + 1):
            sandbox.call("reset_peak")
            before = sandbox.call("stats")
            result = run_child(conn_ids, args.max_concurrency)
            after = sandbox.call("stats")
            runs.append(result)
            cold, warm = result["cold"], result["warm"]
            rows.append(
                [
                    run,
                    f"{cold['wall']:.2f} ({cold['wall'] / ideal:.2f}x)",
                    f"{cold['cpu']:.2f}",
                    f"{cold['masker']:.2f}",
                    lag_text(cold["lag"]),
                    f"{warm['wall']:.2f} ({warm['wall'] / ideal:.2f}x)",
                    f"{warm['cpu']:.2f}",
                    lag_text(warm["lag"]),
                    after["max_in_flight"],
                    after["connections_accepted"] - before["connections_accepted"],
                    f"{(after['cpu_seconds'] - before['cpu_seconds']) / (cold['wall'] + warm['wall']):.0%}",
                ]
            )

        seq = sequential(conn_ids[: args.sequential_instances])
        sandbox.call("set_latency", seconds=0.0)
        urls = [sandbox.pin_url(i, t) for i, t in pairs] * 3
        raw = median([asyncio.run(raw_throughput(urls, args.max_concurrency)) for _ in range(3)])

    print(
        f"# (c) fleet audit of {args.instances} instances, {args.latency * 1000:.0f} ms latency, "
        f"max_concurrency={args.max_concurrency}; ideal {ideal:.2f} s; {machine()}"
    )
    print(
        table(
            [
                "run",
                "cold wall (s)",
                "cold CPU (s)",
                "of which masker (s)",
                "cold loop lag max / p99 (ms)",
                "warm wall (s)",
                "warm CPU (s)",
                "warm loop lag max / p99 (ms)",
                "sandbox max in flight",
                "TCP connections (2 audits)",
                "sandbox CPU use",
            ],
            rows,
        )
    )
    cold_walls = [r["cold"]["wall"] for r in runs]
    warm_walls = [r["warm"]["wall"] for r in runs]
    print(
        f"median wall: cold {median(cold_walls):.2f} s = {median(cold_walls) / ideal:.2f}x, "
        f"warm {median(warm_walls):.2f} s = {median(warm_walls) / ideal:.2f}x the ideal {ideal:.2f} s"
    )

    cold_lag = lag_text(median_lag([r["cold"]["lag"] for r in runs]))
    warm_lag = lag_text(median_lag([r["warm"]["lag"] for r in runs]))
    print(
        f"median event-loop lag while the checks are in flight, max / p99: cold {cold_lag} ms, "
        f"warm {warm_lag} ms"
    )
    per_call = seq / args.sequential_instances
    print(
        f"sequential, one PlugzHook per instance: {args.sequential_instances} instances in {seq:.2f} s "
        f"({per_call * 1000:.1f} ms each) -> {args.instances} instances ~ {per_call * args.instances:.0f} s "
        f"(extrapolated), {per_call * args.instances / median(cold_walls):.0f}x the cold audit"
    )
    print(
        f"sandbox capacity: a minimal asyncio client on {args.max_concurrency} keep-alive connections "
        f"at 0 latency gets {raw:.0f} requests/s from it (the audit needs {args.instances / ideal:.0f}/s)"
    )
    print(f"load average before/after: {load_before} / {load_average()}")


if __name__ == "__main__":
    main()
