"""Keep Plugz secrets out of Sentry: a scrubber for Airflow's ``[sentry]`` integration.

With Sentry on, sentry-sdk records every HTTP request URL as a breadcrumb (our instance token
sits in the URL path) and error events carry stack-frame locals (a PIN, an unredacted server
body). :func:`before_send` walks a whole event - exception values, frame vars, breadcrumbs,
request data, extra, contexts, tags, message, logentry - and removes the secrets this process
has read (:func:`airflow_provider_plugz._redaction.known_secrets`), instance URL credentials
and echoed Client-Tokens, one redaction pass per string:

- Airflow 2.11 (and Airflow 3 once apache/airflow#69464 is fixed):
  ``[sentry] before_send = airflow_provider_plugz.sentry.before_send``;
- ``sentry_sdk.init`` called by hand: also ``before_breadcrumb=`` :func:`before_breadcrumb`
  (Airflow's ``[sentry]`` section refuses that option, which is why :func:`before_send` scrubs
  the breadcrumbs inside the event too);
- a client that is already running - Airflow 3 (3.2 - 3.3.2 at least) hands ``[sentry]
  before_send`` to sentry-sdk as a string, which makes it drop every event
  (apache/airflow#69464): :func:`install` chains the scrubber onto it.

The walk is bounded (depth, values, characters), so a huge, deep or self-referencing event
costs at most linear time, and it never raises: a value whose scrubbing fails becomes
:data:`SCRUBBED`, never the event. Importing this module imports neither sentry-sdk nor Airflow
nor an HTTP client.
"""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow_provider_plugz import _redaction

if TYPE_CHECKING:
    from collections.abc import Callable

    Callback = Callable[[Any, Any], Any]

__all__ = [
    "SCRUBBED",
    "before_breadcrumb",
    "before_send",
    "before_send_log",
    "before_send_transaction",
    "install",
    "scrub",
]

log = logging.getLogger(__name__)

#: What replaces a value that could not be scrubbed, or that lies beyond the limits below.
SCRUBBED = "[scrubbed]"
#: Containers nested deeper than this are replaced whole (sentry-sdk's own data bags stop at 10).
MAX_DEPTH = 32
#: Values visited per event; the rest are replaced. A real event has a few thousand.
MAX_VALUES = 100_000
#: String characters redacted per event; later strings are replaced.
MAX_CHARS = 8 * 1024 * 1024

# The one redaction of one string, with every secret this process has read (a seam for tests).
_redact = _redaction.redact_known

# sentry-sdk options that take a scrubbing callback, in the order install() sets them.
_CALLBACK_OPTIONS = ("before_send", "before_send_transaction", "before_send_log", "before_breadcrumb")


def scrub(value: Any) -> Any:
    """A copy of ``value`` with Plugz secrets removed from every string in it; never raises.

    Dicts keep their keys (a key that contains a secret is redacted like any text), lists and
    tuples their order and type; numbers, booleans, None and other objects are returned as they
    are. Bytes are decoded (UTF-8, bad bytes replaced) and redacted as text.
    """
    return _Walk().value(value, 0)


def before_send(event: Any, hint: Any) -> Any:
    """Sentry's ``before_send``: the event with Plugz secrets removed from every part of it.

    An event that cannot even be read as a mapping is dropped (``None``) rather than sent as is.
    """
    scrubbed = scrub(event)
    if isinstance(event, Mapping) and not isinstance(scrubbed, Mapping):
        log.warning("Dropped a Sentry event or breadcrumb that could not be scrubbed of Plugz secrets")
        return None
    return scrubbed


def before_breadcrumb(crumb: Any, hint: Any) -> Any:
    """Sentry's ``before_breadcrumb``: the breadcrumb (URL, message, data) without Plugz secrets."""
    return before_send(crumb, hint)


#: Sentry's ``before_send_transaction``: performance traces hold request URLs as span data.
before_send_transaction = before_send
#: Sentry's ``before_send_log`` (``enable_logs``): log records sent as Sentry logs.
before_send_log = before_send

_OURS: dict[str, Callback] = {
    "before_send": before_send,
    "before_send_transaction": before_send_transaction,
    "before_send_log": before_send_log,
    "before_breadcrumb": before_breadcrumb,
}


def install(client: Any = None) -> bool:
    """Make a running Sentry client scrub Plugz secrets; ``True`` once it does. Idempotent.

    ``client`` defaults to the current one if sentry-sdk has been imported (this never imports
    it). Each of ``before_send``, ``before_send_transaction``, ``before_send_log`` and
    ``before_breadcrumb`` becomes the client's own callback, if any, followed by the scrubber.
    A callback given as a dotted-path string - what Airflow 3 (up to 3.3.2 at least) hands over
    from ``[sentry] before_send``, which makes sentry-sdk drop every event - is imported first.
    Never raises (it is safe to call from a task): a client it cannot change gives ``False``.
    """
    try:
        if client is None:
            client = _current_client()
        options = getattr(client, "options", None)
        if not isinstance(options, dict) or not _is_active(client):
            return False
        for name in _CALLBACK_OPTIONS:
            options[name] = _chain(name, options.get(name))
    except Exception:
        log.warning("Could not add the Plugz scrubber to the Sentry client", exc_info=True)
        return False
    return True


# --------------------------------------------------------------------------- the walk


class _Walk:
    """One event's walk: the budget it has left, spent as values and characters are visited."""

    __slots__ = ("chars", "values")

    def __init__(self) -> None:
        self.values = MAX_VALUES
        self.chars = MAX_CHARS

    def value(self, value: Any, depth: int) -> Any:
        try:
            self.values -= 1
            if isinstance(value, str):
                return self.text(value)
            if value is None or isinstance(value, (bool, int, float)):
                return value
            if isinstance(value, (bytes, bytearray)):
                return self.text(bytes(value).decode("utf-8", errors="replace"))
            if isinstance(value, (Mapping, list, tuple)):
                if depth >= MAX_DEPTH or self.values < 0:
                    return SCRUBBED
                if isinstance(value, Mapping):
                    return self.mapping(value, depth + 1)
                items = [self.value(item, depth + 1) for item in value]
                return items if isinstance(value, list) else tuple(items)
        except Exception:  # a scrubber that raises loses the whole event: lose this value only
            return SCRUBBED
        return value

    def mapping(self, value: Mapping[Any, Any], depth: int) -> dict[Any, Any]:
        scrubbed: dict[Any, Any] = {}
        for key, item in value.items():
            if isinstance(key, str):
                self.values -= 1
                new_key = self.text(key)  # before the value: it spends the budget the key needs
            else:
                new_key = key
            scrubbed[new_key] = self.value(item, depth)
        return scrubbed

    def text(self, text: str) -> str:
        self.chars -= len(text)
        if self.values < 0 or self.chars < 0:
            return SCRUBBED
        return _redact(text)


# --------------------------------------------------------------------------- install()


def _current_client() -> Any:
    sentry_sdk = sys.modules.get("sentry_sdk")
    if sentry_sdk is None:
        return None
    get_client = getattr(sentry_sdk, "get_client", None)
    if get_client is not None:  # sentry-sdk 2
        return get_client()
    return sentry_sdk.Hub.current.client  # sentry-sdk 1


def _is_active(client: Any) -> bool:
    # sentry-sdk 2 answers "no client" with a NonRecordingClient, whose is_active() is False.
    is_active = getattr(client, "is_active", None)
    return bool(is_active()) if callable(is_active) else client is not None


def _chain(name: str, current: Any) -> Callback:
    """``current`` (a callable, a dotted path, or None) followed by our scrubber for ``name``."""
    ours = _OURS[name]
    if isinstance(current, str):
        current = _import(name, current)
    if current is None or current is ours or getattr(current, "_plugz_scrubs", False):
        return current or ours
    theirs: Callback = current

    def chained(obj: Any, hint: Any) -> Any:
        result = theirs(obj, hint)
        return None if result is None else ours(result, hint)

    chained._plugz_scrubs = True  # type: ignore[attr-defined]
    return chained


def _import(name: str, path: str) -> Callback | None:
    """Import ``module.attribute``; None (with a warning) if it is not there or not callable."""
    module_name, _, attribute = path.strip().rpartition(".")
    try:
        found = getattr(importlib.import_module(module_name), attribute)
    except Exception:  # whatever importing someone's module raises
        found = None
    if not callable(found):
        log.warning(
            "Sentry option %s=%r is not an importable callable; the Plugz scrubber runs alone", name, path
        )
        return None
    return found  # type: ignore[no-any-return]
