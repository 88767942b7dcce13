"""The Plugz sandbox in a process of its own, driven by JSON lines on stdin (one answer per line).

Run by :class:`_common.SandboxProcess`; a separate process, so that the server never competes
for the GIL with the client being measured. Stops when stdin closes.

``PLUGZ_BENCH_SANDBOX_PATH`` names a sandbox module file to serve instead of the installed
package (``bench_sandbox.py --sandbox-path``, e.g. an older version taken with ``git show``).
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import json
import os
import resource
import sys
import time
from typing import TYPE_CHECKING, Any

from _common import instance_pairs

if TYPE_CHECKING:
    from airflow_provider_plugz.testing.sandbox import PlugzSandbox


def sandbox_class() -> type[PlugzSandbox]:
    """``PlugzSandbox`` of the installed package, or of the file ``PLUGZ_BENCH_SANDBOX_PATH`` names."""
    path = os.environ.get("PLUGZ_BENCH_SANDBOX_PATH")
    if not path:
        from airflow_provider_plugz.testing.sandbox import PlugzSandbox

        return PlugzSandbox
    spec = importlib.util.spec_from_file_location("plugz_sandbox_under_test", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load a sandbox module from {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    cls: type[PlugzSandbox] = module.PlugzSandbox
    return cls


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
        "open_connections": getattr(sb, "open_connections", None),  # only in the sandbox package
        "max_in_flight": sb.max_in_flight,
        "cpu_seconds": time.process_time(),
    }


def reset_peak(sb: PlugzSandbox) -> None:
    # No public reset for the high-water mark; the loop thread only ever raises it. It lives on
    # the application object since the sandbox became a package, on the sandbox itself before.
    app = getattr(sb, "_app", None)
    if app is not None:
        app.max_in_flight = 0
    else:
        sb._max_in_flight = 0  # type: ignore[attr-defined]


OPS = {f.__name__: f for f in (add_instances, set_has_code, set_latency, stats, reset_peak)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--client-token", required=True)
    parser.add_argument("--latency", type=float, default=0.0)
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    cls = sandbox_class()
    options: dict[str, Any] = {"latency": args.latency, "record_limit": 0}
    if "max_connections" in inspect.signature(cls).parameters:
        # 1,000 triggers keep 1,000 connections open; the default cap (1,024) is too close.
        options["max_connections"] = 8192
    with cls(args.client_token, **options) as sb:
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
