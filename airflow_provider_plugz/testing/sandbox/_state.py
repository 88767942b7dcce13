"""The sandbox's state: the fake account's instances, queued faults, latency, recorded requests,
and the outbox of messages sent.

One lock guards it all: the test thread changes it while the server's event loop thread reads it.
"""

from __future__ import annotations

import dataclasses
import threading
import uuid
from collections import deque

from airflow_provider_plugz.testing.sandbox._faults import Fault, check_seconds
from airflow_provider_plugz.testing.sandbox._models import (
    INSTANCE_STATES,
    InstanceKind,
    InstanceState,
    RecordedRequest,
    SandboxInstance,
    SentText,
)

DEFAULT_RECORD_LIMIT = 10_000
DEFAULT_RECORD_BYTES = 16 * 1024 * 1024
#: The most messages the outbox keeps by default (the oldest go first).
DEFAULT_OUTBOX_LIMIT = 10_000
#: The most messages Plugz queues for an instance that is not connected; it refuses more.
QUEUE_LIMIT = 1_000


class QueueFullError(Exception):
    """The sending instance is not connected and already has :data:`QUEUE_LIMIT` messages queued."""


@dataclasses.dataclass
class _PendingFault:
    fault: Fault
    remaining: int
    instance_id: str | None


def _record_size(request: RecordedRequest) -> int:
    """Bytes a record holds: target, header names and values, body (what the budget counts)."""
    return len(request.path) + len(request.body) + sum(len(k) + len(v) for k, v in request.headers.items())


def check_state(state: object) -> InstanceState:
    """``state`` if it is one of :data:`INSTANCE_STATES`, else ValueError."""
    for known in INSTANCE_STATES:
        if state == known and isinstance(state, str):
            return known
    raise ValueError(f"state must be one of {', '.join(INSTANCE_STATES)}; got {state!r}")


def check_phone(phone: object) -> str:
    """``phone`` if it is a phone number as Plugz writes it (8 to 15 ASCII digits), else ValueError."""
    if not isinstance(phone, str) or not 8 <= len(phone) <= 15 or not phone.isascii() or not phone.isdigit():
        raise ValueError(
            "phone must be 8 to 15 digits, country and area code included, no '+' or spaces "
            "(e.g. 5511999999999)"
        )
    return phone


def _check_count(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be an int >= 0, got {value!r}")
    return value


class SandboxState:
    """Instances, faults and recordings of one sandbox (every method takes the lock)."""

    def __init__(
        self,
        client_token: str | None,
        *,
        latency: float = 0.0,
        record_limit: int = DEFAULT_RECORD_LIMIT,
        record_bytes: int = DEFAULT_RECORD_BYTES,
        outbox_limit: int = DEFAULT_OUTBOX_LIMIT,
    ) -> None:
        self.client_token = client_token
        self.lock = threading.Lock()
        self.record_limit = _check_count("record_limit", record_limit)
        self.record_bytes = _check_count("record_bytes", record_bytes)
        self._latency = check_seconds("latency", latency)
        self._instances: dict[str, SandboxInstance] = {}
        self._faults: list[_PendingFault] = []
        self._recorded: deque[tuple[RecordedRequest, int]] = deque()
        self._recorded_bytes = 0
        self._request_count = 0
        self.outbox_limit = _check_count("outbox_limit", outbox_limit)
        self._outbox: deque[SentText] = deque(maxlen=self.outbox_limit)
        self._queued: dict[str, int] = {}

    # ---------------------------------------------------------------- instances

    @property
    def latency(self) -> float:
        return self._latency

    @latency.setter
    def latency(self, seconds: float) -> None:
        self._latency = check_seconds("latency", seconds)

    def add_instance(
        self,
        instance_id: str,
        token: str,
        *,
        has_code: bool,
        kind: InstanceKind,
        expired: bool,
        state: InstanceState = "connected",
        phone: str | None = None,
    ) -> SandboxInstance:
        if not isinstance(instance_id, str) or not instance_id:
            raise ValueError("instance_id must be a non-empty string")
        if not isinstance(token, str) or not token:
            raise ValueError("token must be a non-empty string")
        if kind not in ("mobile", "web"):
            raise ValueError(f"kind must be 'mobile' or 'web', got {kind!r}")
        instance = SandboxInstance(
            instance_id,
            token,
            bool(has_code),
            kind,
            bool(expired),
            check_state(state),
            "" if phone is None else check_phone(phone),
        )
        with self.lock:
            self._store(instance)
        return instance

    def remove_instance(self, instance_id: str) -> None:
        """Forget an instance and its queue (the outbox keeps what it sent)."""
        with self.lock:
            del self._instances[instance_id]
            self._queued.pop(instance_id, None)

    def update(
        self,
        instance_id: str,
        *,
        has_code: bool | None = None,
        expired: bool | None = None,
        state: InstanceState | None = None,
    ) -> SandboxInstance:
        """Set an instance's PIN, expiry flag and/or state (KeyError if unknown)."""
        if state is not None:
            state = check_state(state)
        with self.lock:
            instance = self._instances[instance_id]
            instance = dataclasses.replace(
                instance,
                has_code=instance.has_code if has_code is None else has_code,
                expired=instance.expired if expired is None else expired,
                state=instance.state if state is None else state,
            )
            self._store(instance)
        return instance

    def _store(self, instance: SandboxInstance) -> None:
        # Caller holds self.lock. A connected instance sends what its queue held.
        self._instances[instance.instance_id] = instance
        if instance.state == "connected" and self._queued.pop(instance.instance_id, 0):
            self._outbox = deque(
                (
                    dataclasses.replace(sent, delivered=True)
                    if sent.instance_id == instance.instance_id and not sent.delivered
                    else sent
                    for sent in self._outbox
                ),
                maxlen=self.outbox_limit,
            )

    def instance(self, instance_id: str) -> SandboxInstance:
        with self.lock:
            return self._instances[instance_id]

    def find(self, instance_id: str) -> SandboxInstance | None:
        with self.lock:
            return self._instances.get(instance_id)

    @property
    def instances(self) -> list[SandboxInstance]:
        with self.lock:
            return list(self._instances.values())

    # ---------------------------------------------------------------- messages

    def send_text(self, instance_id: str, phone: str, message: str) -> SentText:
        """Put a message in the outbox: delivered if the instance is connected, else queued.

        KeyError if the instance is gone; :class:`QueueFullError` if its queue is full.
        """
        with self.lock:
            instance = self._instances[instance_id]
            delivered = instance.state == "connected"
            if not delivered:
                queued = self._queued.get(instance_id, 0)
                if queued >= QUEUE_LIMIT:
                    raise QueueFullError(instance_id)
                self._queued[instance_id] = queued + 1
            sent = SentText(
                instance_id,
                phone,
                message,
                zaap_id=uuid.uuid4().hex.upper(),
                message_id="3EB0" + uuid.uuid4().hex[:16].upper(),
                delivered=delivered,
            )
            self._outbox.append(sent)
        return sent

    @property
    def messages(self) -> list[SentText]:
        with self.lock:
            return list(self._outbox)

    def clear_messages(self) -> None:
        """Empty the outbox and every instance's queue."""
        with self.lock:
            self._outbox.clear()
            self._queued.clear()

    # ---------------------------------------------------------------- faults

    def inject(self, fault: Fault, times: int, instance_id: str | None) -> None:
        if not isinstance(fault, Fault):
            raise TypeError(f"expected a Fault, got {type(fault).__name__}")
        if isinstance(times, bool) or not isinstance(times, int) or times < 1:
            raise ValueError(f"times must be an int >= 1, got {times!r}")
        with self.lock:
            self._faults.append(_PendingFault(fault, times, instance_id))

    def clear_faults(self) -> None:
        with self.lock:
            self._faults.clear()

    @property
    def pending_faults(self) -> list[tuple[Fault, int, str | None]]:
        with self.lock:
            return [(p.fault, p.remaining, p.instance_id) for p in self._faults]

    # ---------------------------------------------------------------- requests

    def receive(self, request: RecordedRequest) -> tuple[Fault | None, float]:
        """Count and record an API request; take the oldest fault that applies to it.

        Returns that fault (or None) and the latency to wait before answering. The record keeps
        the last ``record_limit`` requests, and drops the oldest while the bytes they hold
        together exceed ``record_bytes`` (a request larger than the whole budget is counted, not
        kept).
        """
        with self.lock:
            self._request_count += 1
            if self.record_limit:
                size = _record_size(request)
                self._recorded.append((request, size))
                self._recorded_bytes += size
                while len(self._recorded) > self.record_limit or self._recorded_bytes > self.record_bytes:
                    self._recorded_bytes -= self._recorded.popleft()[1]
            return self._take_fault(request.instance_id), self._latency

    def _take_fault(self, instance_id: str | None) -> Fault | None:
        # Caller holds self.lock.
        for index, pending in enumerate(self._faults):
            if pending.instance_id is None or pending.instance_id == instance_id:
                pending.remaining -= 1
                if pending.remaining <= 0:
                    del self._faults[index]
                return pending.fault
        return None

    @property
    def requests(self) -> list[RecordedRequest]:
        with self.lock:
            return [request for request, _ in self._recorded]

    @property
    def request_count(self) -> int:
        with self.lock:
            return self._request_count

    def reset(self) -> None:
        with self.lock:
            self._instances.clear()
            self._faults.clear()
            self._recorded.clear()
            self._recorded_bytes = 0
            self._request_count = 0
            self._outbox.clear()
            self._queued.clear()
