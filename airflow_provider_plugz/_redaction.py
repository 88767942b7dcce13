"""Keeping secrets out of texts we did not write: the one place for sanitising and redacting.

A server (or a proxy, or whoever controls its DNS) may echo our secrets back in any shape: in a
JSON error text, lower-cased, percent-encoded, cut short, split by a line break. So:

- :func:`sanitize` makes a foreign text one bounded line of printable characters (no forged log
  lines, no ANSI escapes, no NUL, no lone surrogates that break ``print``);
- :func:`redact` then removes every given secret wherever any run of :data:`MIN_RUN` or more of
  its characters appears (case-insensitively, also in its percent-encoded form), shorter secrets
  where they appear whole, instance URL credentials and echoed Client-Tokens;
- :func:`mask_phones` hides anything that reads as a phone number (personal data: a server may
  echo the recipient of a message, or the number behind an instance, which we never sent);
- :func:`remember` / :func:`known_secrets` keep the secrets this process has read, for the places
  that see text without knowing which connection it belongs to (HTTP client log records, Sentry
  events).

Secrets are ASCII (connection parsing refuses anything else), so case-folding is ASCII-only and
never changes a text's length.
"""

from __future__ import annotations

import re
import threading
from typing import TYPE_CHECKING
from urllib.parse import quote

if TYPE_CHECKING:
    from collections.abc import Iterable

REDACTED = "***"
#: A run of this many characters of a secret is redacted wherever it appears.
MIN_RUN = 8
#: Shorter values are too common to redact as free text (a one-letter id would eat every such letter).
MIN_SECRET = 4
#: The longest foreign text kept in a message.
MAX_TEXT = 300

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
# The API echoes a wrong Client-Token ("Client-Token abc not allowed"); URLs carry the token.
_ECHOED_TOKEN = re.compile(r"(client[-_ ]?token[\s:=]{1,3})(\S+)(\s+not allowed)", re.IGNORECASE)
_URL_CREDENTIALS = re.compile(r"(/instances/)[^/\s]+(/token/)[^/\s]+", re.IGNORECASE)
_LINE_BREAKS = frozenset("\r\n\t\v\f\x85\u2028\u2029")
# 8 or more digits, optionally after a "+" and split by the separators people write numbers with
# ("+55 (11) 98765-4321", "5511987654321", "120363019502650977-group").
_PHONE_LIKE = re.compile(
    r"\+?(?<![0-9])"
    r"(?![0-9]{4}-[0-9]{2}-[0-9]{2}(?![0-9]))"  # not a date
    r"(?![0-9]{1,3}(?:\.[0-9]{1,3}){3}(?!\.?[0-9]))"  # nor an IPv4 address (allow-list advice needs it)
    r"[0-9](?:[ ().-]{0,2}[0-9]){7,}"
)


def sanitize(text: str, limit: int = MAX_TEXT) -> str:
    """One line of at most ``limit`` printable characters; anything else becomes ``?`` (breaks: a space)."""
    cut = len(text) > limit
    text = text[:limit]
    if not text.isprintable():
        text = "".join(ch if ch.isprintable() else " " if ch in _LINE_BREAKS else "?" for ch in text)
    return text + "..." if cut else text


def mask_phones(text: str) -> str:
    """Replace every phone-like run of 8 or more digits in ``text`` with ``***``."""
    return _PHONE_LIKE.sub(REDACTED, text)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Remove ``secrets`` (see the module docstring), instance URL credentials and echoed tokens."""
    index = _Index()
    index.add(secrets)
    return index.redact(text)


def redact_known(text: str) -> str:
    """:func:`redact` with every secret this process has read (:func:`remember`)."""
    return _KNOWN.redact(text)


def remember(*values: str | None) -> None:
    """Register secrets for :func:`redact_known` and :func:`known_secrets` (short ones are ignored)."""
    _KNOWN.add(value for value in values if value)


def known_secrets() -> tuple[str, ...]:
    """Every secret registered with :func:`remember` so far, in order."""
    return _KNOWN.secrets()


class Secret:
    """A secret kept out of reprs, so a debugger, a traceback's locals or Sentry shows ``***``."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({REDACTED!r})"

    __str__ = __repr__


class _Index:
    """Secrets indexed by their runs of :data:`MIN_RUN` characters, so that redacting costs one pass
    over the text whatever the number of secrets."""

    def __init__(self) -> None:
        self._secrets: dict[str, None] = {}
        self._runs: set[str] = set()
        self._short: dict[str, None] = {}
        self._lock = threading.Lock()

    def add(self, secrets: Iterable[str]) -> None:
        with self._lock:
            for secret in secrets:
                if len(secret) < MIN_SECRET or secret in self._secrets:
                    continue
                self._secrets[secret] = None
                for form in {secret, quote(secret, safe="")}:
                    folded = form.translate(_ASCII_LOWER)
                    if len(folded) < MIN_RUN:
                        self._short[folded] = None
                    else:
                        self._runs.update(folded[i : i + MIN_RUN] for i in range(len(folded) - MIN_RUN + 1))

    def secrets(self) -> tuple[str, ...]:
        with self._lock:
            return tuple(self._secrets)

    def redact(self, text: str) -> str:
        text = _URL_CREDENTIALS.sub(rf"\1{REDACTED}\2{REDACTED}", text)
        if self._secrets:
            text = self._redact_secrets(text)
        return _ECHOED_TOKEN.sub(rf"\1{REDACTED}\3", text)

    def _redact_secrets(self, text: str) -> str:
        folded = text.translate(_ASCII_LOWER)
        hidden = bytearray(len(text))
        runs, short = self._runs, tuple(self._short)
        if runs:
            for start in range(len(folded) - MIN_RUN + 1):
                if folded[start : start + MIN_RUN] in runs:
                    hidden[start : start + MIN_RUN] = b"\x01" * MIN_RUN
        for secret in short:
            start = folded.find(secret)
            while start != -1:
                hidden[start : start + len(secret)] = b"\x01" * len(secret)
                start = folded.find(secret, start + 1)
        if not any(hidden):
            return text
        parts: list[str] = []
        position = 0
        for match in re.finditer(rb"\x01+", bytes(hidden)):
            parts.append(text[position : match.start()])
            parts.append(REDACTED)
            position = match.end()
        parts.append(text[position:])
        return "".join(parts)


_KNOWN = _Index()
