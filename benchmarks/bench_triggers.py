"""(d) The triggerer: 1,000 PlugzPinStatusTriggers in one event loop, polling the sandbox until
the PINs get set, side by side with 1,000 HttpSensorTriggers (apache-airflow-providers-http)
polling the same URLs at the same interval.

Each contender runs in a fresh child process (as in a triggerer, one event loop, no threads of
ours), the sandbox in another. After about ``--polls-before-flip`` poll rounds the driver flips
the state and the child records when the last trigger fired. HttpSensorTrigger can only wait for
"not 404", so for it the instances appear at the flip (404 "Instance not found" until then);
for ours they exist without a PIN and get one at the flip. Same URL, same interval, one small
JSON answer per poll either way.

Figures: time from the flip to the last event (vs the poll interval), CPU seconds of the child
(all of it, and per trigger per poll round while waiting), the peak RSS growth per trigger, and
the event-loop lag: a monitor coroutine in the same loop sleeps 10 ms again and again and
records how late it wakes (``_common.LagMonitor``), max / p99 in ms over the whole run (the
first poll round reads every connection) and over the steady state after it. In a real
triggerer every other trigger on the loop is stalled by as much.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import time
from typing import Any

from _common import (
    CLIENT_TOKEN,
    HERE,
    ROOT,
    LagMonitor,
    MaskerClock,
    SandboxProcess,
    drive_child,
    instance_pairs,
    lag_text,
    load_average,
    machine,
    median,
    median_lag,
    pin_endpoint,
    raise_fd_limit,
    table,
)


def rss_kib() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


async def child_run(args: argparse.Namespace) -> dict[str, Any]:
    from airflow.providers.http.triggers.http import HttpSensorTrigger

    from airflow_provider_plugz.triggers.plugz import PlugzPinStatusTrigger

    pairs = instance_pairs(args.prefix, args.triggers)
    triggers: list[Any] = []
    for n, (instance_id, token) in enumerate(pairs):
        if args.contender == "plugz":
            triggers.append(
                PlugzPinStatusTrigger(f"trig_{n}", expected=True, poll_interval=args.poll_interval)
            )
        else:
            triggers.append(
                HttpSensorTrigger(
                    endpoint=pin_endpoint(instance_id, token),
                    http_conn_id="http_bench",
                    headers={"Client-Token": CLIENT_TOKEN},
                    poke_interval=args.poll_interval,
                )
            )
    done: list[float] = []
    events: list[Any] = []

    async def drive(trigger: Any) -> None:
        async for event in trigger.run():
            done.append(time.time())
            events.append(event.payload)
            return

    async def sandbox_requests() -> int:
        """How many requests the sandbox has served (the driver asks it)."""
        print("REQUESTS?", flush=True)
        return int(await asyncio.to_thread(sys.stdin.readline))

    before = await sandbox_requests()
    cpu_start, rss_start, started = time.process_time(), rss_kib(), time.time()
    monitor = LagMonitor().start()
    tasks = [asyncio.create_task(drive(t)) for t in triggers]
    # The steady state starts after every trigger has polled once (ours read their connections
    # then, and Airflow's masker registers their secrets: ~20 s for 1,000), and one more interval.
    while await sandbox_requests() - before < args.triggers:
        await asyncio.sleep(0.1)
    first_round_seconds = time.time() - started
    await asyncio.sleep(args.poll_interval)
    cpu_steady, steady_from = time.process_time(), time.time()
    await asyncio.sleep(args.poll_interval * args.polls_before_flip)
    cpu_steady = time.process_time() - cpu_steady
    premature = len(done)
    print("FLIP", flush=True)  # the driver flips the sandbox and answers with the time it finished
    flipped_at = float(sys.stdin.readline())
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=args.poll_interval * 5 + 60)
    monitor.stop()
    return {
        "lag": monitor.summary(),
        "steady_lag": monitor.summary(since=steady_from),
        "premature": premature,
        "first_round_seconds": first_round_seconds,
        "all_done_after_flip": max(done) - flipped_at,
        "events_ok": sum(
            1 for e in events if e is True or (isinstance(e, dict) and e.get("status") == "success")
        ),
        "cpu_total": time.process_time() - cpu_start,
        "cpu_per_trigger_per_poll_ms": cpu_steady / args.polls_before_flip / args.triggers * 1000,
        "peak_rss_growth_kib_per_trigger": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_start)
        / args.triggers,
    }


def child(args: argparse.Namespace) -> None:
    raise_fd_limit()
    # Load everything both contenders need before the baseline, so neither pays for the other.
    import aiohttp  # noqa: F401
    import httpx  # noqa: F401
    from airflow.providers.http.hooks.http import HttpAsyncHook  # noqa: F401
    from airflow.providers.http.triggers.http import HttpSensorTrigger  # noqa: F401

    from airflow_provider_plugz.hooks.plugz import PlugzHook  # noqa: F401
    from airflow_provider_plugz.triggers.plugz import PlugzPinStatusTrigger  # noqa: F401

    masker = MaskerClock()
    result = asyncio.run(child_run(args))
    result["masker_cpu"] = masker.seconds
    print("RESULT " + json.dumps(result), flush=True)


def run_contender(
    sandbox: SandboxProcess, args: argparse.Namespace, contender: str, round_: int
) -> dict[str, Any]:
    prefix = f"{contender[0]}{round_}x"
    env = dict(os.environ)
    pairs = instance_pairs(prefix, args.triggers)
    if contender == "plugz":
        sandbox.call("add_instances", prefix=prefix, count=args.triggers, has_code=False)
        for n, (instance_id, token) in enumerate(pairs):
            env[f"AIRFLOW_CONN_TRIG_{n}"] = sandbox.plugz_conn_json(instance_id, token)
    env["AIRFLOW_CONN_HTTP_BENCH"] = sandbox.http_conn_json()
    command = [sys.executable, str(HERE / "bench_triggers.py"), "--child", contender, "--prefix", prefix]
    command += ["--triggers", str(args.triggers), "--poll-interval", str(args.poll_interval)]
    command += ["--polls-before-flip", str(args.polls_before_flip)]

    def flip() -> float:
        if contender == "plugz":
            return float(sandbox.call("set_has_code", prefix=prefix, count=args.triggers, has_code=True))
        sandbox.call("add_instances", prefix=prefix, count=args.triggers, has_code=True)
        return time.time()

    return drive_child(command, env, sandbox, flip, cwd=ROOT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--triggers", type=int, default=1000)
    parser.add_argument("--poll-interval", type=float, default=2.0)
    parser.add_argument("--polls-before-flip", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="runs per contender, alternating")
    parser.add_argument("--child", choices=["plugz", "http"], help=argparse.SUPPRESS)
    parser.add_argument("--prefix", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.contender = args.child
        child(args)
        return

    names = {
        "plugz": "PlugzPinStatusTrigger (httpx)",
        "http": "HttpSensorTrigger (providers-http, aiohttp)",
    }
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    load_before = load_average()
    with SandboxProcess() as sandbox:
        for round_ in range(args.rounds):
            order = list(names)[round_ % 2 :] + list(names)[: round_ % 2]
            for contender in order:
                results[contender].append(run_contender(sandbox, args, contender, round_))
        stats = sandbox.call("stats")

    rows = []
    for contender, runs in results.items():
        assert all(r["events_ok"] == args.triggers and r["premature"] == 0 for r in runs), runs

        def m(key: str, runs: list[dict[str, Any]] = runs) -> float:
            return median([float(r[key]) for r in runs])

        def lag(key: str, runs: list[dict[str, Any]] = runs) -> str:
            return lag_text(median_lag([r[key] for r in runs]))

        rows.append(
            [
                names[contender],
                f"{m('all_done_after_flip'):.2f}",
                f"{m('all_done_after_flip') / args.poll_interval:.2f}",
                f"{m('first_round_seconds'):.1f}",
                f"{m('cpu_total'):.2f}",
                f"{m('cpu_per_trigger_per_poll_ms'):.2f}",
                f"{m('peak_rss_growth_kib_per_trigger'):.1f}",
                f"{m('masker_cpu'):.2f}",
                lag("lag"),
                lag("steady_lag"),
            ]
        )
    print(
        f"# (d) {args.triggers} triggers in one event loop, poll interval {args.poll_interval:g} s, "
        f"flip after the first round + {args.polls_before_flip + 1} rounds; "
        f"median of {args.rounds} runs each; {machine()}"
    )
    print(
        table(
            [
                "contender",
                "last event after flip (s)",
                "in poll intervals",
                "first poll round (s)",
                "CPU, whole run (s)",
                "CPU per trigger per poll (ms)",
                "peak RSS growth per trigger (KiB)",
                "of the CPU: Airflow's secrets masker (s)",
                "loop lag max / p99, whole run (ms)",
                "loop lag max / p99, steady (ms)",
            ],
            rows,
        )
    )
    print(f"sandbox: {stats['requests']} requests, {stats['connections_accepted']} TCP connections accepted")
    print(f"load average before/after: {load_before} / {load_average()}")


if __name__ == "__main__":
    main()
