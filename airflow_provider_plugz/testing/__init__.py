"""Test helpers: a local Plugz-compatible sandbox server and its pytest fixtures.

Names are resolved lazily so that importing this package (which pytest does for every user
who installs us, through the plugin entry point) starts nothing and imports no asyncio.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow_provider_plugz.testing.sandbox import (
        Fault,
        PlugzSandbox,
        RecordedRequest,
        SandboxInstance,
        SentText,
    )

__all__ = ["Fault", "PlugzSandbox", "RecordedRequest", "SandboxInstance", "SentText"]


def __getattr__(name: str) -> object:
    if name in __all__:
        from airflow_provider_plugz.testing import sandbox

        return getattr(sandbox, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
