"""(e) The sandbox as a server: requests/s to raw clients over keep-alive, and 1,000 concurrent
keep-alive connections.

The sandbox runs in its own process (``_sandbox_server.py``); the clients are the cheapest there
are, so the server is what is measured: a blocking socket on one connection (sequential, so the
figure is 1 / round-trip), and an asyncio client on ``--connections`` connections at once (the
throughput). Then ``--concurrent`` connections are opened and held open together, and each sends
``--per-connection`` requests while all the others are open too.

``--sandbox-path FILE`` serves the ``PlugzSandbox`` of a module file instead of the installed
package, to compare with an older sandbox:

    git show <rev>:airflow_provider_plugz/testing/sandbox.py > /tmp/old_sandbox.py
    benchmarks/.venv/bin/python benchmarks/bench_sandbox.py --sandbox-path /tmp/old_sandbox.py
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import time
from pathlib import Path
from typing import Any

from _common import CLIENT_TOKEN, SandboxProcess, load_average, machine, median, raise_fd_limit, table


def request_bytes(instance_id: str, token: str, port: int) -> bytes:
    """A GET of the PIN status, as a minimal HTTP/1.1 client sends it (keep-alive)."""
    return (
        f"GET /instances/{instance_id}/token/{token}/security/two-fa-code HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{port}\r\nClient-Token: {CLIENT_TOKEN}\r\n\r\n"
    ).encode()


def content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def status_of(head: bytes) -> int:
    return int(head.split(b" ", 2)[1])


# --------------------------------------------------------------------------- one blocking socket


def sequential(port: int, request: bytes, count: int) -> float:
    """Seconds for ``count`` request/answer round trips on one kept-alive blocking socket."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buffer = b""
        start = time.perf_counter()
        for _ in range(count):
            sock.sendall(request)
            while b"\r\n\r\n" not in buffer:
                buffer += sock.recv(65536)
            head, _, buffer = buffer.partition(b"\r\n\r\n")
            length = content_length(head)
            while len(buffer) < length:
                buffer += sock.recv(65536)
            if status_of(head) != 200:
                raise RuntimeError(f"unexpected answer {head!r}")
            buffer = buffer[length:]
        return time.perf_counter() - start


# --------------------------------------------------------------------------- asyncio clients


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> int:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    await reader.readexactly(content_length(head))
    return status_of(head)


async def concurrent_throughput(port: int, request: bytes, connections: int, per_connection: int) -> float:
    """Seconds for ``connections`` clients to make ``per_connection`` sequential requests each."""
    streams = [await asyncio.open_connection("127.0.0.1", port) for _ in range(connections)]

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for _ in range(per_connection):
            if await _exchange(reader, writer, request) != 200:
                raise RuntimeError("unexpected status")

    start = time.perf_counter()
    await asyncio.gather(*(client(r, w) for r, w in streams))
    elapsed = time.perf_counter() - start
    for _, writer in streams:
        writer.close()
    await asyncio.gather(*(w.wait_closed() for _, w in streams), return_exceptions=True)
    return elapsed


async def many_open(port: int, request: bytes, connections: int, per_connection: int) -> dict[str, Any]:
    """Open ``connections`` at once, hold them all open, send ``per_connection`` requests on each."""
    all_connected = asyncio.Event()
    all_done = asyncio.Event()
    connected = done = 0
    statuses: list[int] = []
    errors: list[str] = []

    async def client() -> None:
        nonlocal connected, done
        writer = None
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            connected += 1
            if connected == connections:
                all_connected.set()
            await asyncio.wait_for(all_connected.wait(), 60)
            for _ in range(per_connection):
                statuses.append(await _exchange(reader, writer, request))
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError) as exc:
            errors.append(type(exc).__name__)
        finally:
            done += 1
            if done == connections:
                all_done.set()
            await all_done.wait()  # every connection stays open until all have finished
            if writer is not None:
                writer.close()

    start = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(client() for _ in range(connections))), 120)
    elapsed = time.perf_counter() - start
    return {
        "ok": sum(1 for s in statuses if s == 200),
        "other": sum(1 for s in statuses if s != 200),
        "errors": errors,
        "seconds": elapsed,
    }


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sandbox-path", type=Path, help="serve the PlugzSandbox of this module file")
    parser.add_argument("--label", help="what to call the sandbox in the tables (default: its path)")
    parser.add_argument(
        "--requests", type=int, default=5_000, help="requests per round (default %(default)s)"
    )
    parser.add_argument(
        "--rounds", type=int, default=5, help="rounds of each measurement (default %(default)s)"
    )
    parser.add_argument(
        "--connections", type=int, default=50, help="keep-alive connections (default %(default)s)"
    )
    parser.add_argument(
        "--concurrent", type=int, default=1_000, help="connections held open (default %(default)s)"
    )
    parser.add_argument(
        "--per-connection", type=int, default=5, help="requests on each (default %(default)s)"
    )
    args = parser.parse_args()
    raise_fd_limit()
    if args.sandbox_path is not None:
        os.environ["PLUGZ_BENCH_SANDBOX_PATH"] = str(args.sandbox_path.resolve())
    label = args.label or (str(args.sandbox_path) if args.sandbox_path else "installed package")

    with SandboxProcess() as sandbox:
        [(instance_id, token)] = sandbox.call("add_instances", prefix="bench", count=1)
        request = request_bytes(instance_id, token, sandbox.port)
        load_before = load_average()
        sequential(sandbox.port, request, 200)  # warm up
        one, many, cpu = [], [], []
        per_connection = max(1, args.requests // args.connections)
        for _ in range(args.rounds):
            cpu_before = sandbox.call("stats")["cpu_seconds"]
            one.append(args.requests / sequential(sandbox.port, request, args.requests))
            many.append(
                per_connection
                * args.connections
                / asyncio.run(concurrent_throughput(sandbox.port, request, args.connections, per_connection))
            )
            served = args.requests + per_connection * args.connections
            cpu.append((sandbox.call("stats")["cpu_seconds"] - cpu_before) / served)
        accepted_before = sandbox.call("stats")["connections_accepted"]
        held = asyncio.run(many_open(sandbox.port, request, args.concurrent, args.per_connection))
        stats = sandbox.call("stats")

    print(f"# (e) the sandbox as a server: {label}; {machine()}")
    rows = [
        ["1 connection, sequential (blocking socket)", one],
        [f"{args.connections} keep-alive connections at once (asyncio)", many],
    ]
    print(
        table(
            ["client", "median requests/s", "range"],
            [[name, f"{median(runs):,.0f}", f"{min(runs):,.0f}-{max(runs):,.0f}"] for name, runs in rows],
        )
    )
    print(f"server CPU per request (median over rounds): {median(cpu) * 1e6:.0f} us")
    expected = args.concurrent * args.per_connection
    print()
    print(
        table(
            ["held open", "answered 200", "other answers", "client errors", "accepted", "wall", "requests/s"],
            [
                [
                    f"{args.concurrent:,}",
                    f"{held['ok']:,} of {expected:,}",
                    held["other"],
                    len(held["errors"])
                    and f"{len(held['errors'])} ({', '.join(sorted(set(held['errors'])))})",
                    stats["connections_accepted"] - accepted_before,
                    f"{held['seconds']:.2f} s",
                    f"{held['ok'] / held['seconds']:,.0f}",
                ]
            ],
        )
    )
    print(
        f"{args.rounds} rounds of {args.requests:,} requests per client kind; "
        f"load average before/after: {load_before} / {load_average()}"
    )


if __name__ == "__main__":
    main()
