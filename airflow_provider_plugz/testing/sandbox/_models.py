"""The sandbox's public value types: the fixture credentials and what a test reads back."""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Literal, TypeVar, get_args, overload

DEFAULT_CLIENT_TOKEN = "sandbox-client-token"  # noqa: S105 - a published fixture value
DEFAULT_INSTANCE_ID = "sandbox-instance"
DEFAULT_INSTANCE_TOKEN = "sandbox-token"  # noqa: S105 - a published fixture value

InstanceKind = Literal["mobile", "web"]
#: An instance's connection state, as ``GET .../status`` reports it. Only ``connected`` sends;
#: in the others messages wait in the instance's queue.
InstanceState = Literal["connected", "disconnected", "session-lost", "phone-offline"]
INSTANCE_STATES: tuple[InstanceState, ...] = get_args(InstanceState)

_T = TypeVar("_T")


#: Headers whose values a repr shows; any other's (``client-token``, ``authorization``...) is ``***``.
_PLAIN_HEADERS = frozenset(
    {"accept", "accept-encoding", "connection", "content-length", "content-type", "host", "user-agent"}
)


class Headers(dict[str, str]):
    """Request headers keyed by lower-cased name; lookups ignore case."""

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __repr__(self) -> str:
        # Values only of headers that cannot carry a secret (the Client-Token is one header).
        return "Headers({{{}}})".format(
            ", ".join(f"{k!r}: {v if k.lower() in _PLAIN_HEADERS else '***'!r}" for k, v in self.items())
        )

    def __contains__(self, key: object) -> bool:
        return super().__contains__(key.lower() if isinstance(key, str) else key)

    @overload
    def get(self, key: str, default: None = None, /) -> str | None: ...
    @overload
    def get(self, key: str, default: str, /) -> str: ...
    @overload
    def get(self, key: str, default: _T, /) -> str | _T: ...
    def get(self, key: str, default: object = None, /) -> object:
        return super().get(key.lower(), default)


def made_up_phone(instance_id: str) -> str:
    """The phone number an instance gets unless given one: ``5511`` and nine digits from its id.

    Stable (the same id always gives the same number); two ids may share one, which nothing in
    the sandbox minds.
    """
    digits = "".join(str(ord(ch) % 10) for ch in instance_id)[-9:].rjust(9, "0")
    return f"5511{digits}"


def listed_phone(phone: str) -> str:
    """A phone number as the control API lists it: its last 4 digits (``•••1234``)."""
    return f"•••{phone[-4:]}" if len(phone) > 4 else "•••"


@dataclasses.dataclass(frozen=True)
class SandboxInstance:
    """A snapshot of one fake instance; change it through :class:`PlugzSandbox` methods.

    ``phone`` is the number behind it (``GET .../device``), :func:`made_up_phone` of the id
    unless given; it is personal data in a real account, so reprs leave it out.
    """

    instance_id: str
    token: str = dataclasses.field(repr=False)
    has_code: bool = False
    kind: InstanceKind = "mobile"
    expired: bool = False
    state: InstanceState = "connected"
    phone: str = dataclasses.field(default="", repr=False)

    def __post_init__(self) -> None:
        if not self.phone:
            object.__setattr__(self, "phone", made_up_phone(self.instance_id))

    def public(self) -> dict[str, object]:
        """Describe the instance without its token, its phone masked (what the control API lists)."""
        return {
            "instance_id": self.instance_id,
            "has_code": self.has_code,
            "kind": self.kind,
            "expired": self.expired,
            "state": self.state,
            "phone": listed_phone(self.phone),
        }


@dataclasses.dataclass(frozen=True)
class SentText:
    """One message an instance accepted with ``POST .../send-text``, as the outbox keeps it.

    ``delivered`` is False while it waits in the queue of an instance that is not connected; it
    turns True when the instance connects. ``zaap_id`` and ``message_id`` are the ids the answer
    gave. ``phone`` (the recipient) and ``message`` are personal data: reprs leave them out.
    ``seq`` numbers the messages a sandbox accepted, from 1, never reused (not even after a
    clear): ``GET /_sandbox/messages?after=<seq>`` pages on it; a gap means messages were
    dropped. It takes no part in comparisons.
    """

    instance_id: str
    phone: str = dataclasses.field(repr=False)
    message: str = dataclasses.field(repr=False)
    zaap_id: str
    message_id: str
    delivered: bool
    seq: int = dataclasses.field(default=0, compare=False)

    def as_json(self) -> dict[str, object]:
        """Every field, for the control API (the tester's own test data, served on loopback)."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class SandboxUsage:
    """What a sandbox holds right now, counted as its bounds count it (see :class:`PlugzSandbox`).

    ``message_bytes``: the UTF-8 bytes of the outbox's fields (ids, phone, text);
    ``messages_dropped``: messages the outbox's bounds dropped, oldest first, since start or the
    last clear; ``request_bytes``: the recorded requests' targets, headers and bodies;
    ``fault_bytes``: the queued faults' bodies, content types and headers; ``instance_bytes``:
    the instances' ids, tokens and phones.
    """

    messages: int
    message_bytes: int
    messages_dropped: int
    requests: int
    request_bytes: int
    faults: int
    fault_bytes: int
    instances: int
    instance_bytes: int


@dataclasses.dataclass(frozen=True)
class RecordedRequest:
    """One API request as the sandbox received it (``path`` is the raw request target)."""

    method: str
    path: str
    headers: Headers
    body: bytes
    instance_id: str | None = None

    def __repr__(self) -> str:
        # The target holds the instance token, the body a PIN or a message text.
        path = re.sub(r"(/token/)[^/]*", r"\1***", self.path, flags=re.IGNORECASE)
        return (
            f"RecordedRequest(method={self.method!r}, path={path!r}, headers={self.headers!r}, "
            f"body=<{len(self.body)} bytes>, instance_id={self.instance_id!r})"
        )

    def json(self) -> object:
        """The body parsed as JSON."""
        return json.loads(self.body)
