"""The sandbox's state: the fake account's instances, queued faults, latency, recorded requests,
and the outbox of messages sent.

One lock guards it all: the test thread changes it while the server's event loop thread reads it.

Everything here is bounded in bytes as well as in count, so a sandbox left running cannot grow
without end: the request record and the outbox drop their oldest entries (the outbox counts what
it dropped), while instances and queued faults, which a test relies on, are refused with
:class:`SandboxFullError` once full. Sizes are counted as stored: texts as UTF-8 bytes (the
outbox keeps a message's phone and text encoded, so an emoji costs its 4 bytes and no more).
"""

from __future__ import annotations

import bisect
import dataclasses
import itertools
import threading
import time
import uuid
from collections import deque
from typing import NamedTuple

from airflow_provider_plugz.testing.sandbox._faults import Fault, check_seconds
from airflow_provider_plugz.testing.sandbox._http import header_bytes
from airflow_provider_plugz.testing.sandbox._models import (
    INSTANCE_STATES,
    InstanceKind,
    InstanceState,
    RecordedRequest,
    SandboxInstance,
    SandboxUsage,
    SentText,
)

DEFAULT_RECORD_LIMIT = 10_000
DEFAULT_RECORD_BYTES = 16 * 1024 * 1024
#: The most messages the outbox keeps by default (the oldest go first).
DEFAULT_OUTBOX_LIMIT = 10_000
#: The most bytes of messages the outbox keeps by default (the oldest go first).
DEFAULT_OUTBOX_BYTES = 16 * 1024 * 1024
#: The most messages Plugz queues for an instance that is not connected; it refuses more.
QUEUE_LIMIT = 1_000
#: The most instances a sandbox holds; adding more raises :class:`SandboxFullError`.
MAX_INSTANCES = 10_000
#: The longest instance id or token, in UTF-8 bytes (real ones are 32 and 24 characters).
MAX_CREDENTIAL_BYTES = 1024
#: The most faults queued at once, and the most bytes (bodies, headers) they hold together.
MAX_FAULTS = 10_000
MAX_FAULT_BYTES = 64 * 1024 * 1024


class QueueFullError(Exception):
    """The sending instance is not connected and already has :data:`QUEUE_LIMIT` messages queued."""


class SandboxFullError(Exception):
    """The sandbox holds as many instances (or queued faults) as it may: remove some first."""


@dataclasses.dataclass
class _PendingFault:
    fault: Fault
    remaining: int
    instance_id: str | None
    size: int


@dataclasses.dataclass(slots=True)
class _Stored:
    """One outbox entry as kept: phone and text as UTF-8 bytes (a str holding one emoji would take
    4 bytes per character), ``size`` the bytes its fields hold."""

    seq: int
    instance_id: str
    phone: bytes = dataclasses.field(repr=False)  # personal data: reprs leave it out
    message: bytes = dataclasses.field(repr=False)
    zaap_id: str
    message_id: str
    delivered: bool
    size: int
    created: int = 0  # when it was sent, in epoch milliseconds (Plugz's ``Created``)

    def sent(self) -> SentText:
        return SentText(
            self.instance_id,
            self.phone.decode("utf-8", errors="surrogatepass"),
            self.message.decode("utf-8", errors="surrogatepass"),
            self.zaap_id,
            self.message_id,
            self.delivered,
            seq=self.seq,
        )


class MessagePage(NamedTuple):
    """A page of the outbox: ``messages`` oldest first; ``kept`` and ``dropped`` count the whole
    outbox; ``more`` says whether messages follow the last one of the page."""

    messages: list[SentText]
    kept: int
    dropped: int
    more: bool


def _fault_size(fault: Fault) -> int:
    """Bytes a queued fault holds: its body, content type and header lines."""
    return (
        len(fault.body)
        + len(header_bytes(fault.content_type))
        + sum(len(header_bytes(name)) + len(header_bytes(value)) for name, value in fault.headers)
    )


def _utf8_size(text: str) -> int:
    return len(text.encode("utf-8", errors="surrogatepass"))


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
        outbox_bytes: int = DEFAULT_OUTBOX_BYTES,
    ) -> None:
        self.client_token = client_token
        self.lock = threading.Lock()
        self.record_limit = _check_count("record_limit", record_limit)
        self.record_bytes = _check_count("record_bytes", record_bytes)
        self._latency = check_seconds("latency", latency)
        self._instances: dict[str, SandboxInstance] = {}
        self._faults: list[_PendingFault] = []
        self._fault_bytes = 0
        self._recorded: deque[tuple[RecordedRequest, int]] = deque()
        self._recorded_bytes = 0
        self._request_count = 0
        self.outbox_limit = _check_count("outbox_limit", outbox_limit)
        self.outbox_bytes = _check_count("outbox_bytes", outbox_bytes)
        self._outbox: deque[_Stored] = deque()
        self._outbox_bytes = 0
        self._dropped = 0
        self._sent = 0  # messages accepted since construction: the last one's seq
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
        for name, value in (("instance_id", instance_id), ("token", token)):
            if not isinstance(value, str) or not value:
                raise ValueError(f"{name} must be a non-empty string")
            if _utf8_size(value) > MAX_CREDENTIAL_BYTES:
                raise ValueError(f"{name} must be at most {MAX_CREDENTIAL_BYTES} bytes (UTF-8)")
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
            if instance_id not in self._instances and len(self._instances) >= MAX_INSTANCES:
                raise SandboxFullError(
                    f"the sandbox holds at most {MAX_INSTANCES} instances; remove some (or reset it) first"
                )
            self._store(instance)
        return instance

    def remove_instance(self, instance_id: str) -> None:
        """Forget an instance and its queue: the messages it held back are dropped (never sent);
        the outbox keeps what it sent."""
        with self.lock:
            del self._instances[instance_id]
            if self._queued.pop(instance_id, None):
                kept = [s for s in self._outbox if s.instance_id != instance_id or s.delivered]
                self._outbox_bytes = sum(stored.size for stored in kept)
                self._outbox.clear()
                self._outbox.extend(kept)

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
            for stored in self._outbox:
                if stored.instance_id == instance.instance_id:
                    stored.delivered = True

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
            self._sent += 1
            phone_bytes = phone.encode("utf-8", errors="surrogatepass")
            message_bytes = message.encode("utf-8", errors="surrogatepass")
            zaap_id = uuid.uuid4().hex.upper()
            message_id = "3EB0" + uuid.uuid4().hex[:16].upper()
            size = (
                _utf8_size(instance_id)
                + len(phone_bytes)
                + len(message_bytes)
                + len(zaap_id)
                + len(message_id)
            )
            stored = _Stored(
                self._sent,
                instance_id,
                phone_bytes,
                message_bytes,
                zaap_id,
                message_id,
                delivered,
                size,
                created=int(time.time() * 1000),
            )
            self._outbox.append(stored)
            self._outbox_bytes += size
            while self._outbox and (
                len(self._outbox) > self.outbox_limit or self._outbox_bytes > self.outbox_bytes
            ):
                self._forget(self._outbox.popleft())
                self._dropped += 1
        return stored.sent()

    def _forget(self, stored: _Stored) -> None:
        # Caller holds self.lock and has taken ``stored`` out of the outbox: a queued message
        # leaves its instance's queue with it.
        self._outbox_bytes -= stored.size
        if not stored.delivered and self._queued.get(stored.instance_id):
            self._queued[stored.instance_id] -= 1

    def queue(self, instance_id: str) -> list[dict[str, object]]:
        """What ``GET .../queue`` lists for ``instance_id``: its messages not delivered yet, oldest
        first, in Plugz's layout (at most :data:`QUEUE_LIMIT`: an instance queues no more)."""
        with self.lock:
            return [
                {
                    "_id": stored.zaap_id.lower(),
                    "DelayMessage": 1,
                    "Message": stored.message.decode("utf-8", errors="surrogatepass"),
                    "IsTrial": False,
                    "InstanceId": instance_id,
                    "Phone": stored.phone.decode("utf-8", errors="surrogatepass"),
                    "ZaapId": stored.zaap_id,
                    "DelayTyping": 0,
                    "MessageId": stored.message_id,
                    "Created": stored.created,
                }
                for stored in self._outbox
                if stored.instance_id == instance_id and not stored.delivered
            ]

    @property
    def messages(self) -> list[SentText]:
        with self.lock:
            return [stored.sent() for stored in self._outbox]

    def message_page(self, after: int, limit: int, max_bytes: int) -> MessagePage:
        """Up to ``limit`` messages whose ``seq`` is greater than ``after``, oldest first, stopping
        before their stored bytes pass ``max_bytes`` (the first is always included)."""
        with self.lock:
            start = bisect.bisect_right(self._outbox, after, key=lambda stored: stored.seq)
            page: list[SentText] = []
            total = 0
            for stored in itertools.islice(self._outbox, start, None):
                if len(page) >= limit or (page and total + stored.size > max_bytes):
                    break
                page.append(stored.sent())
                total += stored.size
            more = start + len(page) < len(self._outbox)
            return MessagePage(page, len(self._outbox), self._dropped, more)

    @property
    def messages_dropped(self) -> int:
        """Messages the outbox's bounds dropped (oldest first) since start or the last clear."""
        with self.lock:
            return self._dropped

    def clear_messages(self) -> None:
        """Empty the outbox and every instance's queue (and zero the count of dropped messages)."""
        with self.lock:
            self._clear_outbox()

    def _clear_outbox(self) -> None:
        # Caller holds self.lock. Sequence numbers go on: a reader's cursor stays meaningful.
        self._outbox.clear()
        self._outbox_bytes = 0
        self._dropped = 0
        self._queued.clear()

    # ---------------------------------------------------------------- faults

    def inject(self, fault: Fault, times: int, instance_id: str | None) -> None:
        if not isinstance(fault, Fault):
            raise TypeError(f"expected a Fault, got {type(fault).__name__}")
        if isinstance(times, bool) or not isinstance(times, int) or times < 1:
            raise ValueError(f"times must be an int >= 1, got {times!r}")
        size = _fault_size(fault)
        with self.lock:
            if len(self._faults) >= MAX_FAULTS or self._fault_bytes + size > MAX_FAULT_BYTES:
                raise SandboxFullError(
                    f"the sandbox queues at most {MAX_FAULTS} faults holding {MAX_FAULT_BYTES} bytes "
                    "together; clear the queued faults first"
                )
            self._faults.append(_PendingFault(fault, times, instance_id, size))
            self._fault_bytes += size

    def clear_faults(self) -> None:
        with self.lock:
            self._faults.clear()
            self._fault_bytes = 0

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
                    self._fault_bytes -= pending.size
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

    @property
    def usage(self) -> SandboxUsage:
        with self.lock:
            return SandboxUsage(
                messages=len(self._outbox),
                message_bytes=self._outbox_bytes,
                messages_dropped=self._dropped,
                requests=len(self._recorded),
                request_bytes=self._recorded_bytes,
                faults=len(self._faults),
                fault_bytes=self._fault_bytes,
                instances=len(self._instances),
                instance_bytes=sum(
                    _utf8_size(i.instance_id) + _utf8_size(i.token) + len(i.phone)
                    for i in self._instances.values()
                ),
            )

    def reset(self) -> None:
        with self.lock:
            self._instances.clear()
            self._faults.clear()
            self._fault_bytes = 0
            self._recorded.clear()
            self._recorded_bytes = 0
            self._request_count = 0
            self._clear_outbox()
