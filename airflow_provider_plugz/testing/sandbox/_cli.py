"""The command line: ``python -m airflow_provider_plugz.testing.sandbox`` serves a sandbox until stopped."""

from __future__ import annotations

import argparse
import re
import shlex
import signal
import sys
import threading
from typing import TYPE_CHECKING, NamedTuple

from airflow_provider_plugz.testing.sandbox._faults import Fault, json_object, queued_fault_from_json
from airflow_provider_plugz.testing.sandbox._http import loopback_host
from airflow_provider_plugz.testing.sandbox._models import (
    DEFAULT_CLIENT_TOKEN,
    DEFAULT_INSTANCE_ID,
    DEFAULT_INSTANCE_TOKEN,
    INSTANCE_STATES,
    InstanceKind,
    InstanceState,
    listed_phone,
)
from airflow_provider_plugz.testing.sandbox._server import PlugzSandbox
from airflow_provider_plugz.testing.sandbox._state import check_phone
from airflow_provider_plugz.testing.sandbox._wire import DEFAULT_IDLE_TIMEOUT

if TYPE_CHECKING:
    from types import FrameType


_SPEC = "ID:TOKEN[:pin][:web][:expired][:STATE][:phone=DIGITS]"


class InstanceSpec(NamedTuple):
    """One ``--instance``: :meth:`PlugzSandbox.add_instance`'s arguments."""

    instance_id: str
    token: str
    has_code: bool = False
    kind: InstanceKind = "mobile"
    expired: bool = False
    state: InstanceState = "connected"
    phone: str | None = None

    def __repr__(self) -> str:
        # The token is a credential, the phone personal data: hidden, and the last 4 digits.
        phone = None if self.phone is None else listed_phone(re.sub(r"[^0-9]", "", self.phone))
        return (
            f"InstanceSpec(instance_id={self.instance_id!r}, token='***', has_code={self.has_code!r}, "
            f"kind={self.kind!r}, expired={self.expired!r}, state={self.state!r}, phone={phone!r})"
        )


def _instance_spec(spec: str) -> InstanceSpec:
    """Parse ``ID:TOKEN[:pin][:web][:expired][:STATE][:phone=DIGITS]`` (STATE: connected,
    disconnected, session-lost or phone-offline) into add_instance arguments."""
    parts = spec.split(":")
    if len(parts) < 2 or not parts[0] or not parts[1]:
        raise argparse.ArgumentTypeError(f"expected {_SPEC}, got {spec!r}")
    flags = {part for part in parts[2:] if not part.startswith("phone=")}
    phones = [part.removeprefix("phone=") for part in parts[2:] if part.startswith("phone=")]
    unknown = flags - {"pin", "web", "mobile", "expired", *INSTANCE_STATES}
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown instance flag(s) {sorted(unknown)} in {spec!r}")
    states = [state for state in INSTANCE_STATES if state in flags]
    if len(states) > 1 or len(phones) > 1:
        raise argparse.ArgumentTypeError(f"give at most one state and one phone= in {spec!r}")
    try:
        phone = check_phone(phones[0]) if phones else None
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{exc} (in {spec!r})") from None
    kind: InstanceKind = "web" if "web" in flags else "mobile"
    state: InstanceState = states[0] if states else "connected"
    return InstanceSpec(parts[0], parts[1], "pin" in flags, kind, "expired" in flags, state, phone)


def _fault_spec(text: str) -> tuple[Fault, int, str | None]:
    """Parse a ``--fault`` JSON object (the control API's form) into inject arguments."""
    payload = json_object(text.encode("utf-8"))
    if payload is None:
        raise argparse.ArgumentTypeError(f'expected a JSON object such as {{"kind": "drop"}}, got {text!r}')
    try:
        return queued_fault_from_json(payload)
    except (ValueError, TypeError) as exc:
        raise argparse.ArgumentTypeError(f"{exc} (in {text!r})") from None


def _conn_env_name(instance_id: str, first: bool) -> str:
    if first:
        return "AIRFLOW_CONN_PLUGZ_DEFAULT"
    return (
        "AIRFLOW_CONN_PLUGZ_"
        + "".join(c if c.isascii() and c.isalnum() else "_" for c in instance_id).upper()
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_plugz.testing.sandbox",
        description="Serve a local, Plugz-compatible fake API for tests and demos.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default: %(default)s)")
    parser.add_argument("--port", type=int, default=0, help="port to bind; 0 lets the OS choose (default)")
    parser.add_argument(
        "--client-token",
        default=DEFAULT_CLIENT_TOKEN,
        help="Client-Token the account requires; empty for none (default: %(default)s)",
    )
    parser.add_argument(
        "--instance",
        action="append",
        type=_instance_spec,
        metavar=_SPEC,
        help="an instance to serve; STATE is connected (default), disconnected, session-lost or "
        f"phone-offline; repeatable (default: {DEFAULT_INSTANCE_ID}:{DEFAULT_INSTANCE_TOKEN})",
    )
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every API answer")
    parser.add_argument(
        "--fault",
        action="append",
        type=_fault_spec,
        default=[],
        metavar="JSON",
        help="a fault to queue, as POST /_sandbox/faults takes it, e.g. "
        '\'{"kind": "drip", "interval": 0.5, "times": 3}\' or \'{"kind": "status", "status": 503}\'; '
        "repeatable, played in order",
    )
    parser.add_argument(
        "--idle-timeout",
        type=float,
        default=DEFAULT_IDLE_TIMEOUT,
        metavar="SECONDS",
        help="close a connection that sends no complete request for this long (default: %(default)g)",
    )
    parser.add_argument(
        "--max-connections",
        type=int,
        metavar="N",
        help="connections served at once, more get a 503 "
        "(default: 1024, or half the open-file limit if lower)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Serve a sandbox until SIGINT/SIGTERM, printing shell lines that point Airflow at it."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        host = loopback_host(args.host)
    except ValueError as exc:
        parser.error(str(exc))
    if not 0 <= args.latency < float("inf"):
        parser.error("--latency must be >= 0")
    if not 0 < args.idle_timeout < float("inf"):
        parser.error("--idle-timeout must be a number of seconds > 0")
    if args.max_connections is not None and args.max_connections < 1:
        parser.error("--max-connections must be >= 1")
    specs: list[InstanceSpec] = args.instance or [InstanceSpec(DEFAULT_INSTANCE_ID, DEFAULT_INSTANCE_TOKEN)]

    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    sandbox = PlugzSandbox(
        args.client_token or None,
        latency=args.latency,
        host=host,
        port=args.port,
        idle_timeout=args.idle_timeout,
        max_connections=args.max_connections,
    )
    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            sandbox.start()
        except OSError as exc:
            reason = exc.strerror or exc
            sys.stderr.write(f"Plugz sandbox cannot listen on {host} port {args.port}: {reason}\n")
            return 1
        with sandbox:
            for spec in specs:
                sandbox.add_instance(
                    spec.instance_id,
                    spec.token,
                    has_code=spec.has_code,
                    kind=spec.kind,
                    expired=spec.expired,
                    state=spec.state,
                    phone=spec.phone,
                )
            for fault, times, fault_instance in args.fault:
                sandbox.inject(fault, times=times, instance_id=fault_instance)
            out = sys.stdout
            out.write(f"# Plugz sandbox listening on {sandbox.base_url} (Ctrl-C to stop)\n")
            out.write(f"export PLUGZ_SANDBOX_URL={sandbox.base_url}\n")
            for index, spec in enumerate(specs):
                env = _conn_env_name(spec.instance_id, index == 0)
                out.write(f"export {env}={shlex.quote(sandbox.connection_json(spec.instance_id))}\n")
            for fault, times, fault_instance in args.fault:
                scope = f" on {fault_instance}" if fault_instance is not None else ""
                out.write(f"# queued a {fault.kind} fault for the next {times} call(s){scope}\n")
            out.flush()
            # A timeout keeps Ctrl-C responsive where signals do not interrupt waits (Windows).
            while not stop.wait(0.5):
                pass
    finally:
        for sig, handler in previous.items():
            if handler is not None:
                signal.signal(sig, handler)
    sys.stderr.write("Plugz sandbox stopped.\n")
    return 0
