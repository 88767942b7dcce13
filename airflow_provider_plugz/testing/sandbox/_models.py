"""The sandbox's public value types: the fixture credentials and what a test reads back."""

from __future__ import annotations

import dataclasses
import json
from typing import Literal, TypeVar, overload

DEFAULT_CLIENT_TOKEN = "sandbox-client-token"  # noqa: S105 - a published fixture value
DEFAULT_INSTANCE_ID = "sandbox-instance"
DEFAULT_INSTANCE_TOKEN = "sandbox-token"  # noqa: S105 - a published fixture value

InstanceKind = Literal["mobile", "web"]

_T = TypeVar("_T")


class Headers(dict[str, str]):
    """Request headers keyed by lower-cased name; lookups ignore case."""

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

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


@dataclasses.dataclass(frozen=True)
class SandboxInstance:
    """A snapshot of one fake instance; change it through :class:`PlugzSandbox` methods."""

    instance_id: str
    token: str = dataclasses.field(repr=False)
    has_code: bool = False
    kind: InstanceKind = "mobile"
    expired: bool = False

    def public(self) -> dict[str, object]:
        """Describe the instance without its token (what the control API lists)."""
        return {
            "instance_id": self.instance_id,
            "has_code": self.has_code,
            "kind": self.kind,
            "expired": self.expired,
        }


@dataclasses.dataclass(frozen=True)
class RecordedRequest:
    """One API request as the sandbox received it (``path`` is the raw request target)."""

    method: str
    path: str
    headers: Headers
    body: bytes
    instance_id: str | None = None

    def json(self) -> object:
        """The body parsed as JSON."""
        return json.loads(self.body)
