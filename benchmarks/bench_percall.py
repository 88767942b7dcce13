"""(a) Per-call cost: PlugzHook.get_pin_status() vs a bare warm requests.Session().get (the floor)
vs the HTTP provider's HttpHook.run, sequential calls against the sandbox in another process.

The contenders take turns (the order rotates every round) so that drift hits them alike; each
figure is the median over rounds of (time of a batch of calls / calls).
"""

from __future__ import annotations

import argparse
import os
import time
from typing import TYPE_CHECKING

from _common import CLIENT_TOKEN, SandboxProcess, load_average, machine, median, pin_endpoint, table

if TYPE_CHECKING:
    from collections.abc import Callable


def build_contenders(sandbox: SandboxProcess) -> dict[str, Callable[[], object]]:
    [(instance_id, token)] = sandbox.call("add_instances", prefix="percall", count=1)
    os.environ["AIRFLOW_CONN_PLUGZ_BENCH"] = sandbox.plugz_conn_json(instance_id, token)
    os.environ["AIRFLOW_CONN_HTTP_BENCH"] = sandbox.http_conn_json()
    url = sandbox.pin_url(instance_id, token)
    headers = {"Client-Token": CLIENT_TOKEN}

    import requests
    from airflow.providers.http.hooks.http import HttpHook

    from airflow_provider_plugz.hooks.plugz import PlugzHook

    # The same Session with the one setting our hook changes: no proxy/.netrc look-ups from the
    # environment on every request. The stricter floor, and the one the goal is held to.
    bare = requests.Session()
    bare.trust_env = False
    default = requests.Session()
    hook = PlugzHook("plugz_bench")
    http_hook = HttpHook(method="GET", http_conn_id="http_bench")
    endpoint = pin_endpoint(instance_id, token)
    assert hook.get_pin_status().has_code is False
    return {
        "requests.Session().get, trust_env=False (floor)": lambda: bare.get(url, headers=headers),
        "requests.Session().get, defaults": lambda: default.get(url, headers=headers),
        "PlugzHook.get_pin_status()": hook.get_pin_status,
        "HttpHook.run() (providers-http)": lambda: http_hook.run(endpoint, headers=headers),
    }


def measure(contenders: dict[str, Callable[[], object]], rounds: int, calls: int) -> dict[str, list[float]]:
    for fn in contenders.values():  # warm: connections open, connection parsed, code paths hot
        for _ in range(50):
            fn()
    per_call: dict[str, list[float]] = {name: [] for name in contenders}
    names = list(contenders)
    for round_ in range(rounds):
        for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
            fn = contenders[name]
            start = time.perf_counter()
            for _ in range(calls):
                fn()
            per_call[name].append((time.perf_counter() - start) / calls)
    return per_call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=300, help="calls per batch (default %(default)s)")
    parser.add_argument("--rounds", type=int, default=9, help="batches per contender (default %(default)s)")
    parser.add_argument("--profile", action="store_true", help="then profile our hook with pyinstrument")
    args = parser.parse_args()

    with SandboxProcess() as sandbox:
        contenders = build_contenders(sandbox)
        load_before = load_average()
        per_call = measure(contenders, args.rounds, args.calls)
        stats = sandbox.call("stats")
        if args.profile:
            from pyinstrument import Profiler

            profiler = Profiler(interval=0.0001)
            with profiler:
                for _ in range(args.calls * 5):
                    contenders["PlugzHook.get_pin_status()"]()
            print(profiler.output_text(unicode=False, color=False, show_all=True))

    floor = per_call[next(iter(per_call))]
    rows = []
    for name, runs in per_call.items():
        ratios = [r / f for r, f in zip(runs, floor, strict=True)]
        rows.append(
            [
                name,
                f"{median(runs) * 1e6:.0f}",
                f"{min(runs) * 1e6:.0f}-{max(runs) * 1e6:.0f}",
                f"{median(runs) / median(floor):.2f}x",
                f"{median(ratios):.2f}x",
            ]
        )
    print(f"# (a) per-call cost, {args.rounds} rounds x {args.calls} sequential calls; {machine()}")
    headers = ["contender", "median us/call", "range", "vs floor (medians)", "vs floor (median of per-round)"]
    print(table(headers, rows))
    print(
        f"sandbox (own process): {stats['requests']} requests over {stats['connections_accepted']} TCP "
        f"connections; load average before/after: {load_before} / {load_average()}"
    )


if __name__ == "__main__":
    main()
