"""Shared by the benchmark scripts: the sandbox in its own process, connections, medians, tables,
the event-loop lag monitor, and the protocol with a benchmark's child process."""

from __future__ import annotations

import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CLIENT_TOKEN = "bench-client-token-0001"


class SandboxProcess:
    """``_sandbox_server.py`` in a child process (its own GIL), driven over its stdin/stdout."""

    def __init__(self, *, latency: float = 0.0, client_token: str = CLIENT_TOKEN) -> None:
        self.latency = latency
        self.client_token = client_token
        self.base_url = ""
        self._proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> SandboxProcess:
        self._proc = subprocess.Popen(
            [
                sys.executable,
                str(HERE / "_sandbox_server.py"),
                *("--client-token", self.client_token),
                *("--latency", str(self.latency)),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        assert self._proc.stdout is not None
        self.base_url = json.loads(self._proc.stdout.readline())["base_url"]
        return self

    def __exit__(self, *exc: object) -> None:
        proc = self._proc
        if proc is None:
            return
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    @property
    def port(self) -> int:
        return int(self.base_url.rsplit(":", 1)[1])

    def call(self, op: str, **kwargs: Any) -> Any:
        proc = self._proc
        assert proc is not None
        assert proc.stdin is not None
        assert proc.stdout is not None
        proc.stdin.write(json.dumps({"op": op, **kwargs}) + "\n")
        proc.stdin.flush()
        answer = json.loads(proc.stdout.readline())
        if not answer["ok"]:
            raise RuntimeError(f"sandbox {op}: {answer['error']}")
        return answer["result"]

    def pin_url(self, instance_id: str, token: str) -> str:
        return f"{self.base_url}/{pin_endpoint(instance_id, token)}"

    def plugz_conn_json(self, instance_id: str, token: str) -> str:
        return json.dumps(
            {
                "conn_type": "plugz",
                "host": self.base_url,
                "login": instance_id,
                "password": token,
                "extra": {"client_token": self.client_token},
            }
        )

    def http_conn_json(self) -> str:
        return json.dumps({"conn_type": "http", "host": "127.0.0.1", "port": self.port, "schema": "http"})


def instance_pairs(prefix: str, count: int) -> list[tuple[str, str]]:
    """The (instance id, token) pairs the sandbox server creates for ``add_instances``."""
    return [(f"{prefix}{n:05d}", f"tok{prefix}{n:05d}") for n in range(count)]


def pin_endpoint(instance_id: str, token: str) -> str:
    return f"instances/{instance_id}/token/{token}/security/two-fa-code"


def set_plugz_connections(sandbox: SandboxProcess, pairs: list[list[str]], prefix: str) -> list[str]:
    """One ``AIRFLOW_CONN_<PREFIX>_<n>`` per instance; returns the connection ids."""
    conn_ids = []
    for n, (instance_id, token) in enumerate(pairs):
        conn_id = f"{prefix}_{n}"
        os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = sandbox.plugz_conn_json(instance_id, token)
        conn_ids.append(conn_id)
    return conn_ids


def median(values: list[float]) -> float:
    return statistics.median(values)


def table(headers: list[str], rows: list[list[Any]]) -> str:
    """A GitHub-flavoured Markdown table, so results paste straight into the README."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |"
    rule = "| " + " | ".join("-" * w for w in widths) + " |"
    body = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |" for row in cells]
    return "\n".join([line, rule, *body])


def machine() -> str:
    from importlib.metadata import PackageNotFoundError, version

    def v(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "-"

    return (
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, apache-airflow {v('apache-airflow')}, "
        f"apache-airflow-providers-http {v('apache-airflow-providers-http')}, httpx {v('httpx')}, "
        f"requests {v('requests')}, aiohttp {v('aiohttp')}"
    )


def raise_fd_limit() -> None:
    import resource

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def load_average() -> str:
    """The 1-minute load average: on 2 cores, anything near 2 means the figures are contended."""
    return f"{os.getloadavg()[0]:.2f}"


class MaskerClock:
    """Time spent in Airflow's ``SecretsMasker.add_mask`` (instrumentation only).

    Airflow masks every connection's password when it reads the connection, and ``add_mask``
    recompiles one regex of *all* secrets known to the process whenever a new one arrives:
    reading n connections costs O(n^2). This clock shows how much of a run that is.
    """

    def __init__(self) -> None:
        import time

        from airflow.sdk._shared.secrets_masker.secrets_masker import SecretsMasker

        self.seconds = 0.0
        original = SecretsMasker.add_mask
        clock = self

        def add_mask(masker: Any, secret: Any, name: str | None = None) -> None:
            start = time.process_time()
            try:
                original(masker, secret, name)
            finally:
                clock.seconds += time.process_time() - start

        SecretsMasker.add_mask = add_mask  # type: ignore[method-assign]


class LagMonitor:
    """How late an event loop runs its callbacks: a coroutine that sleeps ``interval`` again and
    again and records by how much each wake-up overshoots.

    Anything that blocks the loop (a regex compile, a first import, loading CA certificates, a
    synchronous connection read) delays every coroutine on it by as much: a request in flight
    then reads its answer late, a trigger polls late. The largest overshoot is the worst stall
    any of them saw; p99 shows whether stalls are rare or the norm. Costs ~100 wake-ups a
    second, a few ms of CPU per second.
    """

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        #: (wall time of the wake-up, overshoot in seconds), in order.
        self.samples: list[tuple[float, float]] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> LagMonitor:
        """Start on the running loop (call from a coroutine); :meth:`stop` ends it."""
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(self.interval)
            # The loop may wake a timer up to its clock resolution early: no negative lag.
            self.samples.append((time.time(), max(0.0, loop.time() - before - self.interval)))

    def summary(self, since: float | None = None) -> dict[str, float]:
        """``max_ms``, ``p99_ms`` and ``samples`` of the wake-ups at or after ``since`` (wall time)."""
        lags = [lag for at, lag in self.samples if since is None or at >= since]
        return lag_summary(lags)


def lag_summary(lags: list[float]) -> dict[str, float]:
    if not lags:
        return {"max_ms": 0.0, "p99_ms": 0.0, "samples": 0}
    p99 = statistics.quantiles(lags, n=100, method="inclusive")[98] if len(lags) > 1 else lags[0]
    return {"max_ms": max(lags) * 1000, "p99_ms": p99 * 1000, "samples": len(lags)}


def median_lag(summaries: list[dict[str, float]]) -> dict[str, float]:
    """The median max and the median p99 over runs (each run's own summary)."""
    return {key: median([s[key] for s in summaries]) for key in ("max_ms", "p99_ms", "samples")}


def lag_text(summary: dict[str, float]) -> str:
    """``max / p99`` in ms, for a table cell."""
    return f"{summary['max_ms']:.0f} / {summary['p99_ms']:.1f}"


def drive_child(
    command: list[str], env: dict[str, str], sandbox: SandboxProcess, flip: Callable[[], float], *, cwd: Path
) -> dict[str, Any]:
    """Run a benchmark's child process and answer its protocol on stdin/stdout: ``REQUESTS?`` ->
    the sandbox's request count, ``FLIP`` -> ``flip()`` (it flips the state, returns when, as a
    Unix time); ``RESULT <json>`` is the measurement returned. Its stderr is shown only with
    ``BENCH_DEBUG`` set."""
    proc = subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=None if os.environ.get("BENCH_DEBUG") else subprocess.DEVNULL,
        text=True,
        env=env,
        cwd=cwd,
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    result: dict[str, Any] = {}
    for line in proc.stdout:
        if line.startswith("REQUESTS?"):
            proc.stdin.write(f"{sandbox.call('stats')['requests']}\n")
            proc.stdin.flush()
        elif line.startswith("FLIP"):
            proc.stdin.write(f"{flip()}\n")
            proc.stdin.flush()
        elif line.startswith("RESULT "):
            result = json.loads(line[len("RESULT ") :])
    proc.wait(60)
    if not result:
        raise RuntimeError(f"`{' '.join(command[1:4])}` failed (exit {proc.returncode})")
    return result
