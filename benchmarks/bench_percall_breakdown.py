"""(a') Where the per-call overhead of PlugzHook over a bare requests call goes.

Times, in one process: our pure steps (build the request, check the answer, parse it, start the
retry bookkeeping) without any network, then the two ways of sending the same GET over one warm
requests.Session: ``session.get`` (the floor) and what the hook does (``session.request`` with
``stream=True``, a context manager and an ``iter_content`` loop, so that bodies stop at 1 MiB).
"""

from __future__ import annotations

import argparse
import os
import timeit
from typing import TYPE_CHECKING

from _common import CLIENT_TOKEN, SandboxProcess, machine, median, table

if TYPE_CHECKING:
    from collections.abc import Callable


def per_call_us(fn: Callable[[], object], number: int, repeat: int) -> float:
    return median([t / number * 1e6 for t in timeit.repeat(fn, number=number, repeat=repeat)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args()

    with SandboxProcess() as sandbox:
        [(instance_id, token)] = sandbox.call("add_instances", prefix="breakdown", count=1)
        os.environ["AIRFLOW_CONN_PLUGZ_BENCH"] = sandbox.plugz_conn_json(instance_id, token)

        from airflow_provider_plugz._protocol import (
            PIN_STATUS,
            build_request,
            check_response,
            parse_pin_status,
        )
        from airflow_provider_plugz.hooks.plugz import PlugzHook

        hook = PlugzHook("plugz_bench")
        config = hook.config
        request = build_request(config, PIN_STATUS)
        session = hook.session
        response = session.get(request.url, headers=dict(request.headers))
        status, headers, body = response.status_code, response.headers, response.content
        payload = check_response(config, PIN_STATUS, status, headers, body)
        retry = config.retry

        def hook_style_send() -> None:
            with session.request(
                "GET",
                request.url,
                headers=dict(request.headers),
                data=None,
                timeout=(config.connect_timeout, config.read_timeout),
                allow_redirects=False,
                stream=True,
            ) as r:
                data = b""
                for chunk in r.iter_content(chunk_size=64 * 1024):
                    data += chunk

        def floor_send() -> None:
            session.get(request.url, headers={"Client-Token": CLIENT_TOKEN})

        steps: dict[str, Callable[[], object]] = {
            "build_request()": lambda: build_request(config, PIN_STATUS),
            "check_response() (JSON parse + checks)": lambda: check_response(
                config, PIN_STATUS, status, headers, body
            ),
            "parse_pin_status()": lambda: parse_pin_status(config, payload),
            "retry policy start()": lambda: retry.start(idempotent=True),
        }
        rows = [[name, f"{per_call_us(fn, 20_000, args.repeat):.1f}"] for name, fn in steps.items()]
        sends = {"session.get (floor)": floor_send, "hook-style streamed send": hook_style_send}
        sends["PlugzHook.get_pin_status() (all of it)"] = hook.get_pin_status
        timings: dict[str, list[float]] = {name: [] for name in sends}
        for fn in sends.values():
            for _ in range(50):
                fn()
        for _ in range(args.repeat):  # interleaved
            for name, fn in sends.items():
                timings[name].append(timeit.timeit(fn, number=args.calls) / args.calls * 1e6)
        rows += [[name, f"{median(t):.1f}"] for name, t in timings.items()]

    print(f"# (a') where PlugzHook's per-call time goes; {machine()}")
    print(table(["step", "us per call (median)"], rows))


if __name__ == "__main__":
    main()
