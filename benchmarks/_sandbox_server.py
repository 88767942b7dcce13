"""The Plugz sandbox in a process of its own, driven by JSON lines on stdin (one answer per line).

Run by :class:`_common.SandboxProcess`; a separate process, so that the server never competes
for the GIL with the client being measured. Stops when stdin closes.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from typing import Any

from _common import instance_pairs

from airflow_provider_plugz.testing.sandbox import PlugzSandbox


def add_instances(sb: PlugzSandbox, prefix: str, count: int, has_code: bool = False) -> list[tuple[str, str]]:
    pairs = instance_pairs(prefix, count)
    for instance_id, token in pairs:
        sb.add_instance(instance_id, token, has_code=has_code)
    return pairs


def set_has_code(sb: PlugzSandbox, prefix: str, count: int, has_code: bool) -> float:
    for instance_id, _ in instance_pairs(prefix, count):
        sb.set_has_code(instance_id, has_code)
    return time.time()


def set_latency(sb: PlugzSandbox, seconds: float) -> None:
    sb.latency = seconds


def stats(sb: PlugzSandbox) -> dict[str, Any]:
    return {
        "requests": sb.request_count,
        "connections_accepted": sb.connections_accepted,
        "max_in_flight": sb.max_in_flight,
        "cpu_seconds": time.process_time(),
    }


def reset_peak(sb: PlugzSandbox) -> None:
    # No public reset for the high-water mark; the loop thread only ever raises it.
    sb._max_in_flight = 0


OPS = {f.__name__: f for f in (add_instances, set_has_code, set_latency, stats, reset_peak)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--client-token", required=True)
    parser.add_argument("--latency", type=float, default=0.0)
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with PlugzSandbox(args.client_token, latency=args.latency, record_limit=0) as sb:
        print(json.dumps({"base_url": sb.base_url}), flush=True)
        for line in sys.stdin:
            request = json.loads(line)
            op = OPS[request.pop("op")]
            try:
                answer = {"ok": True, "result": op(sb, **request)}
            except Exception as exc:
                answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
