"""(f) Watchers: 1,000 PlugzSecurityEventTriggers on 1,000 instances in one event loop, side by
side with 1,000 PlugzPinStatusTriggers (the deferred sensor's trigger) on 1,000 other instances.

Contenders, each in a fresh child process (as in a triggerer: one event loop, no threads of
ours), the sandbox in another:

- ``PlugzPinStatusTrigger``: waits for the PIN (one request per poll) and ends at the flip;
- ``PlugzSecurityEventTrigger(watch="pin")``: the same request per poll, plus the baseline and
  the change rule; it fires ``pin_set`` at the flip and goes on watching (the child then
  cancels it, as a triggerer does when the asset's watcher goes away);
- ``PlugzSecurityEventTrigger()`` (PIN and connection: two requests per poll).

All watchers are of different instances, so no two share a poll (shared streams need the same
connection; here every watcher runs its own ``run()``). After ``--polls-before-flip`` rounds of
steady state (which must fire nothing) the driver sets every PIN and the child records when the
last event came. Figures as in (d): CPU per trigger per poll round while steady, peak RSS growth
per trigger, time from the flip to the last event, event-loop lag.

Run by hand: ``.venv/bin/python benchmarks/bench_event_triggers.py`` (no HTTP provider needed).
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
    raise_fd_limit,
    table,
)

NAMES = {
    "pin": "PlugzPinStatusTrigger (waits for the PIN)",
    "events-pin": 'PlugzSecurityEventTrigger(watch="pin")',
    "events-both": "PlugzSecurityEventTrigger() (PIN + connection)",
}
REQUESTS_PER_POLL = {"pin": 1, "events-pin": 1, "events-both": 2}


def rss_kib() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def build(contender: str, n: int, poll_interval: float) -> Any:
    from airflow_provider_plugz.triggers.events import PlugzSecurityEventTrigger
    from airflow_provider_plugz.triggers.plugz import PlugzPinStatusTrigger

    if contender == "pin":
        return PlugzPinStatusTrigger(f"trig_{n}", expected=True, poll_interval=poll_interval)
    watch = "pin" if contender == "events-pin" else ("pin", "connection")
    return PlugzSecurityEventTrigger(f"trig_{n}", watch=watch, poll_interval=poll_interval)


async def child_run(args: argparse.Namespace) -> dict[str, Any]:
    triggers = [build(args.contender, n, args.poll_interval) for n in range(args.triggers)]
    done: list[float] = []
    events: list[Any] = []

    async def drive(trigger: Any) -> None:
        async for event in trigger.run():
            done.append(time.time())
            events.append(event.payload)
            return  # the first event is the one measured; an event trigger would go on

    async def sandbox_requests() -> int:
        """How many requests the sandbox has served (the driver asks it)."""
        print("REQUESTS?", flush=True)
        return int(await asyncio.to_thread(sys.stdin.readline))

    before = await sandbox_requests()
    cpu_start, rss_start, started = time.process_time(), rss_kib(), time.time()
    monitor = LagMonitor().start()
    tasks = [asyncio.create_task(drive(t)) for t in triggers]
    # A watcher's first answer is its baseline: flipping before every watcher has one would
    # make the flip its baseline. Wait for the first round (its connection reads included).
    first_round = args.triggers * REQUESTS_PER_POLL[args.contender]
    while await sandbox_requests() - before < first_round:
        await asyncio.sleep(0.1)
    first_round_seconds = time.time() - started
    await asyncio.sleep(args.poll_interval)
    cpu_steady, steady_from = time.process_time(), time.time()
    await asyncio.sleep(args.poll_interval * args.polls_before_flip)
    cpu_steady = time.process_time() - cpu_steady
    premature = len(done)
    print("FLIP", flush=True)
    flipped_at = float(sys.stdin.readline())
    try:
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=args.poll_interval * 5 + 60)
    except TimeoutError:
        print(f"timed out: {len(done)} of {len(tasks)} fired, {premature} before the flip", file=sys.stderr)
        raise
    monitor.stop()
    if args.contender == "pin":
        ok = sum(1 for e in events if e == {"status": "success", "has_code": True})
    else:
        ok = sum(1 for e in events if e.get("status") == "change" and e.get("change") == "pin_set")
    return {
        "lag": monitor.summary(),
        "steady_lag": monitor.summary(since=steady_from),
        "premature": premature,
        "first_round_seconds": first_round_seconds,
        "all_done_after_flip": max(done) - flipped_at,
        "events_ok": ok,
        "cpu_total": time.process_time() - cpu_start,
        "cpu_per_trigger_per_poll_ms": cpu_steady / args.polls_before_flip / args.triggers * 1000,
        "peak_rss_growth_kib_per_trigger": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_start)
        / args.triggers,
    }


def child(args: argparse.Namespace) -> None:
    raise_fd_limit()
    # Load what every contender needs before the baseline, so none pays for another's imports.
    import httpx  # noqa: F401

    from airflow_provider_plugz.hooks.plugz import PlugzHook, preload_async_transport
    from airflow_provider_plugz.triggers.events import PlugzSecurityEventTrigger  # noqa: F401
    from airflow_provider_plugz.triggers.plugz import PlugzPinStatusTrigger  # noqa: F401

    del PlugzHook
    preload_async_transport()
    masker = MaskerClock()
    result = asyncio.run(child_run(args))
    result["masker_cpu"] = masker.seconds
    print("RESULT " + json.dumps(result), flush=True)


def run_contender(
    sandbox: SandboxProcess, args: argparse.Namespace, contender: str, round_: int
) -> dict[str, Any]:
    prefix = f"{contender[0]}{contender[-1]}{round_}x"
    env = dict(os.environ)
    sandbox.call("add_instances", prefix=prefix, count=args.triggers, has_code=False)
    for n, (instance_id, token) in enumerate(instance_pairs(prefix, args.triggers)):
        env[f"AIRFLOW_CONN_TRIG_{n}"] = sandbox.plugz_conn_json(instance_id, token)
    command = [sys.executable, str(HERE / "bench_event_triggers.py"), "--child", contender]
    command += ["--triggers", str(args.triggers), "--poll-interval", str(args.poll_interval)]
    command += ["--polls-before-flip", str(args.polls_before_flip)]

    def flip() -> float:
        return float(sandbox.call("set_has_code", prefix=prefix, count=args.triggers, has_code=True))

    return drive_child(command, env, sandbox, flip, cwd=ROOT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--triggers", type=int, default=1000)
    parser.add_argument("--poll-interval", type=float, default=2.0)
    parser.add_argument("--polls-before-flip", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3, help="runs per contender, order rotating")
    parser.add_argument(
        "--contenders", default=",".join(NAMES), help="comma-separated subset of: %(default)s"
    )
    parser.add_argument("--child", choices=list(NAMES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.contender = args.child
        child(args)
        return

    chosen = [name for name in NAMES if name in args.contenders.split(",")]
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in chosen}
    load_before = load_average()
    with SandboxProcess() as sandbox:
        for round_ in range(args.rounds):
            order = chosen[round_ % len(chosen) :] + chosen[: round_ % len(chosen)]
            for contender in order:
                results[contender].append(run_contender(sandbox, args, contender, round_))
        stats = sandbox.call("stats")

    rows = []
    first = results[chosen[0]]
    base = median([float(r["cpu_per_trigger_per_poll_ms"]) for r in first])
    for contender, runs in results.items():
        assert all(r["events_ok"] == args.triggers and r["premature"] == 0 for r in runs), runs

        def m(key: str, runs: list[dict[str, Any]] = runs) -> float:
            return median([float(r[key]) for r in runs])

        def lag(key: str, runs: list[dict[str, Any]] = runs) -> str:
            return lag_text(median_lag([r[key] for r in runs]))

        cpu = m("cpu_per_trigger_per_poll_ms")
        rows.append(
            [
                NAMES[contender],
                str(REQUESTS_PER_POLL[contender]),
                f"{cpu:.2f}",
                f"{cpu / base:.2f}x",
                f"{m('peak_rss_growth_kib_per_trigger'):.1f}",
                f"{m('all_done_after_flip'):.2f}",
                f"{m('first_round_seconds'):.1f}",
                f"{m('cpu_total'):.2f}",
                lag("steady_lag"),
            ]
        )
    print(
        f"# (f) {args.triggers} triggers on {args.triggers} instances in one event loop, poll interval "
        f"{args.poll_interval:g} s, flip after {args.polls_before_flip} steady rounds; median of "
        f"{args.rounds} runs each; {machine()}"
    )
    print(
        table(
            [
                "contender",
                "requests per poll",
                "CPU per trigger per poll (ms)",
                f"vs {NAMES[chosen[0]].split(' ')[0]}",
                "peak RSS growth per trigger (KiB)",
                "last event after flip (s)",
                "first round, all baselines (s)",
                "CPU, whole run (s)",
                "loop lag max / p99, steady (ms)",
            ],
            rows,
        )
    )
    print(f"sandbox: {stats['requests']} requests, {stats['connections_accepted']} TCP connections accepted")
    print(f"load average before/after: {load_before} / {load_average()}")


if __name__ == "__main__":
    main()
