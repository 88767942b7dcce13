"""Raw-HTTP helpers for the sandbox's own tests (tests/testing/): they talk to the sandbox the way a
hostile or minimal client would, bytes on a socket, so what is asserted is exactly what goes over the
wire. The fixtures that start the sandbox they talk to (``sb``, ``http``) are in
tests/testing/conftest.py.
"""

from __future__ import annotations

import asyncio
import socket
import time
from typing import TYPE_CHECKING
from urllib.parse import quote

import pytest

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import BinaryIO

    from airflow_provider_plugz.testing import PlugzSandbox

CT = "sandbox-client-token"
AUTH = {"Client-Token": CT}
NOT_FOUND = {"error": "NOT_FOUND", "message": "Unable to find matching target resource method"}
PIN_PATH = "/instances/inst-1/token/tok-1/security/two-fa-code"
NO_PIN = b'{"success":true,"hasCode":false}'
JSON_CT = "application/json; charset=utf-8"
WRITE = {"Content-Type": "application/json"}  # what the control API needs on every write


def pin_url(sb: PlugzSandbox, instance: str = "inst-1", token: str = "tok-1", endpoint: str = "") -> str:
    endpoint = endpoint or "security/two-fa-code"
    return f"{sb.base_url}/instances/{quote(instance, safe='')}/token/{quote(token, safe='')}/{endpoint}"


def raw_request(
    path: str,
    *,
    method: str = "GET",
    extra: str = "",
    version: str = "HTTP/1.1",
    host: str = "127.0.0.1",
    client_token: str = CT,
) -> bytes:
    """A request head as bytes (with the sandbox's Client-Token); ``extra`` header lines end in CRLF."""
    return (
        f"{method} {path} {version}\r\nHost: {host}\r\nClient-Token: {client_token}\r\n{extra}\r\n".encode()
    )


def read_response(stream: BinaryIO, *, head_only: bool = False) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (lower-cased names) and body of one answer read from ``stream``."""
    status_line = stream.readline()
    if not status_line:
        raise EOFError("connection closed")
    headers: dict[str, str] = {}
    while (line := stream.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    status = int(status_line.split()[1])
    if head_only:
        return status, headers, b""
    return status, headers, stream.read(int(headers.get("content-length", "0")))


def send_texts(
    sb: PlugzSandbox, count: int, instance: str = "inst-1", token: str = "tok-1", client_token: str = CT
) -> list[int]:
    """POST ``count`` send-text requests pipelined on one connection (fast); their statuses."""
    body = b'{"phone": "5511999999999", "message": "alert"}'
    extra = f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    path = f"/instances/{instance}/token/{token}/send-text"
    request = raw_request(path, method="POST", extra=extra, client_token=client_token) + body
    statuses: list[int] = []
    with socket.create_connection((sb.host, sb.port), timeout=10) as sock, sock.makefile("rb") as stream:
        while len(statuses) < count:
            batch = min(100, count - len(statuses))  # our reads keep pace: neither side's buffer fills
            sock.sendall(request * batch)
            statuses += [read_response(stream)[0] for _ in range(batch)]
    return statuses


def exchange_until_close(sb: PlugzSandbox, data: bytes, timeout: float = 5) -> bytes:
    """Send ``data`` and read until the server closes the connection."""
    with socket.create_connection((sb.host, sb.port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def read_raw_answer(sock: socket.socket) -> bytes:
    """The bytes of one whole answer (head, then its Content-Length of body), as they trickle in."""
    data = b""
    while True:
        head, blank, body = data.partition(b"\r\n\r\n")
        if blank:
            fields = dict(line.lower().split(b": ", 1) for line in head.split(b"\r\n")[1:])
            if len(body) >= int(fields.get(b"content-length", b"0")):
                return data
        chunk = sock.recv(65536)
        if not chunk:
            raise EOFError(f"connection closed after {data!r}")
        data += chunk


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    """Poll the sandbox's state until ``condition`` holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.005)


async def concurrent_gets(sb: PlugzSandbox, clients: int, rounds: int) -> list[int]:
    """Open ``clients`` connections at once; each sends ``rounds`` keep-alive GETs. The statuses."""
    request = raw_request(PIN_PATH)

    async def client() -> list[int]:
        reader, writer = await asyncio.open_connection(sb.host, sb.port)
        statuses = []
        try:
            for _ in range(rounds):
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
                await reader.readexactly(length)
                statuses.append(int(head.split()[1]))
        finally:
            writer.close()
            await writer.wait_closed()
        return statuses

    results = await asyncio.wait_for(asyncio.gather(*(client() for _ in range(clients))), 30)
    return [status for statuses in results for status in statuses]
