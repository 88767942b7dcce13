"""Keeping secrets out of texts we did not write: the one place for sanitising and redacting.

A server (or a proxy, or whoever controls its DNS) may echo our secrets back in any shape: in a
JSON error text, lower-cased, percent-encoded, cut short, split by a line break. So:

- :func:`sanitize` makes a foreign text one bounded line of printable characters (no forged log
  lines, no ANSI escapes, no NUL, no lone surrogates that break ``print``);
- :func:`redact` then removes every given secret wherever any run of :data:`MIN_RUN` or more of
  its characters appears (case-insensitively, also in its percent-encoded form), shorter secrets
  (a six-digit PIN) only where they stand as a whole token - never inside a longer number or
  word ("20261207", "202612-A", "1.202612") - instance URL credentials and echoed Client-Tokens;
- :func:`mask_phones` hides anything that reads as a phone number (personal data: a server may
  echo the recipient of a message, or the number behind an instance, which we never sent);
- :func:`repeats` tells whether a server text repeats any part of what we sent (a message text,
  a phone number, a secret), compared in a form no re-wrapping, re-casing or escaping changes:
  such a text is withheld whole (:data:`WITHHELD`), because redacting pieces of it cannot work
  (short lines, runs split by line breaks);
- :func:`remember` / :func:`known_secrets` keep the secrets this process has read, for the places
  that see text without knowing which connection it belongs to (HTTP client log records, Sentry
  events).

Secrets are ASCII (connection parsing refuses anything else), so case-folding is ASCII-only and
never changes a text's length.
"""

from __future__ import annotations

import functools
import re
import threading
import unicodedata
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
#: A line of what we sent with fewer letters and digits than this is not looked for in a server's
#: text (a one-letter line would withhold every text with that letter as a word).
MIN_LINE = 2
#: A word of what we sent with this many letters and digits or more is looked for alone too.
MIN_WORD = 4
#: What a server text that repeats part of what we sent becomes, wherever it would be shown.
WITHHELD = "(the server's text is withheld: it repeats part of what was sent)"

# How a text may write a line break or another character without it: "\n", "\u000a", "%0A",
# "<br>", "&#10;" (a server may quote what we sent JSON-encoded, URL-encoded or as HTML).
_ESCAPED = re.compile(
    r"\\(?:u[0-9a-f]{4}|x[0-9a-f]{2}|[nrtfvab0])|%[0-9a-f]{2}|<br\s*/?>|&#?[a-z0-9]{2,8};", re.IGNORECASE
)
_NOT_ALNUM = re.compile(r"[\W_]+")
# Where a text breaks lines, written or escaped ("<br>" too): what we sent is also looked for line
# by line, so that a short line repeated alone is found.
_LINE_SPLIT = re.compile(r"[\r\n\v\f\x85\u2028\u2029]|\\[nr]|<br\s*/?>", re.IGNORECASE)
# A short secret glued to a word or number before it ("x202612", "A-202612", "1.202612") or after
# it ("20261207", "202612-A", "202612_x", "202612.5") is part of something else; an escape
# before it ("\n202612", "%22202612") is not.
_GLUED_BEFORE = re.compile(r"\w[-.]?\Z")
_ESCAPE_BEFORE = re.compile(r"(?:%[0-9a-f]{2}|\\(?:[nrtfvab0]|x[0-9a-f]{2}|u[0-9a-f]{4}))\Z")
_GLUED_AFTER = re.compile(r"[-.]?\w")
_WORD = re.compile(r"\w")

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
# The API echoes a wrong Client-Token ("Client-Token abc not allowed"); URLs carry the token.
_ECHOED_TOKEN = re.compile(r"(client[-_ ]?token[\s:=]{1,3})(\S+)(\s+not allowed)", re.IGNORECASE)
_URL_CREDENTIALS = re.compile(r"(/instances/)[^/\s]+(/token/)[^/\s]+", re.IGNORECASE)
_LINE_BREAKS = frozenset("\r\n\t\v\f\x85\u2028\u2029")
# A phone number as a server may write it: 8 or more digits, after "+", "%2B" or nothing ("00" is
# digits), split by up to 3 of the separators people and encoders put in numbers - spaces, "()",
# dashes, ".", "/", "_", "+", their percent-encodings, and the "?" that sanitize() puts for a
# zero-width or bidi character - glued to letters or not ("id5511987654321", "5511987654321@c.us",
# "120363019502650977-group"). Matched on the text's ASCII shadow (see _shadow), so digits of any
# script (fullwidth, Arabic-Indic, superscript) and exotic spaces or dashes count too. Dates,
# times and IPv4 addresses (allow-list advice needs them) are matched first, as "kept", so that no
# number is read from inside them; a run that merely goes on into one is still a number.
_PHONE_SEPARATOR = r"(?:[\s().\-/_?+]|%(?:2[089BDEF]|3F|5F|C2%A0))"
_DAY_OR_MONTH = r"(?:0?[1-9]|[12][0-9]|3[01])"
_DATE = (
    rf"(?:[0-9]{{4}}[-/._]{_DAY_OR_MONTH}[-/._]{_DAY_OR_MONTH}"  # 2026-12-07
    rf"|{_DAY_OR_MONTH}[-/._]{_DAY_OR_MONTH}[-/._][0-9]{{4}})"  # 07/12/2026, 12/07/2026
)
_TIME = r"[0-9]{1,2}(?::[0-9]{2}){1,2}(?:[.,][0-9]+)?"  # 20:44, 20:44:20.123456
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = rf"{_OCTET}(?:\.{_OCTET}){{3}}(?!\.?[0-9])"
_PHONE_LIKE = re.compile(
    rf"(?<![0-9])(?P<kept>(?:{_DATE}|{_TIME})(?![0-9])|{_IPV4})"
    rf"|(?:\+|%2B)?(?<![0-9])[0-9](?:{_PHONE_SEPARATOR}{{0,3}}[0-9]){{7,}}",
    re.IGNORECASE,
)
# Characters whose ASCII shadow NFKC does not give: more dots and the minus sign.
_SHADOWS = {"\u00b7": ".", "\u2022": ".", "\u2219": ".", "\u2212": "-"}


def sanitize(text: str, limit: int = MAX_TEXT) -> str:
    """One line of at most ``limit`` printable characters; anything else becomes ``?`` (breaks: a space)."""
    cut = len(text) > limit
    text = text[:limit]
    if not text.isprintable():
        text = "".join(ch if ch.isprintable() else " " if ch in _LINE_BREAKS else "?" for ch in text)
    return text + "..." if cut else text


def mask_phones(text: str) -> str:
    """Replace every phone-like run of 8 or more digits in ``text`` with ``***``, whatever its
    digits' script and separators (see ``_PHONE_LIKE``); dates and IPv4 addresses stay."""
    shadow = text if text.isascii() and text.isprintable() else "".join(map(_shadow, text))
    parts: list[str] = []
    position = 0
    for match in _PHONE_LIKE.finditer(shadow):  # the shadow has the text's length: same spans
        if match.group("kept") is not None:
            continue
        parts += (text[position : match.start()], REDACTED)
        position = match.end()
    if not parts:
        return text
    parts.append(text[position:])
    return "".join(parts)


@functools.lru_cache(maxsize=4096)
def _shadow(char: str) -> str:
    """One ASCII character standing for ``char`` where a phone number is looked for: a digit of
    any script its value, an invisible or unprintable character ``?`` (as sanitize() writes it), a
    dash ``-``, a fullwidth or compatibility form its ASCII one; anything else itself."""
    if char in _SHADOWS:
        return _SHADOWS[char]
    if char.isdigit():
        value = unicodedata.digit(char, None)
        if value is not None:
            return str(value)
    if not char.isprintable():
        return "?"
    if unicodedata.category(char) == "Pd":
        return "-"
    folded = unicodedata.normalize("NFKC", char)
    return folded if len(folded) == 1 and folded.isascii() else char


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


def repeats(text: str, sent: Iterable[str]) -> bool:
    """Whether ``text`` (a server's) repeats any part of the ``sent`` values (a message text, a
    phone number, secrets), whatever the server did to line breaks, spaces, case, accents,
    punctuation or escapes ("\\n", "%0A", "<br>").

    Both sides are compared as their letters and digits (:func:`_words`). A part is any run of
    :data:`MIN_RUN` of them, across words and lines (so "Joao S.\\nHIV+" and "joao s hiv" are the
    same), or a whole line of a sent value with :data:`MIN_LINE` or more of them, or one of its
    words with :data:`MIN_WORD` or more ("Joao" of "Joao S."), where it is not part of a longer
    word or number: "HIV+" alone or "hiv2", a PIN in "PIN 202612" or "code202612", but not "HIV"
    in "HIVE" nor "202612" in "20261207". A one-letter line is not looked for: it would match
    every text that has that letter as a word. Withholding too much costs a server's wording
    (the error's class and advice do not depend on it); too little, a patient's name.
    """
    runs: set[str] = set()
    lines: set[str] = set()
    for value in sent:
        if not value:
            continue
        compact = _words(value).replace(" ", "")
        runs.update(compact[i : i + MIN_RUN] for i in range(len(compact) - MIN_RUN + 1))
        for line in _LINE_SPLIT.split(value):
            words = _words(line)
            if MIN_LINE <= len(words.replace(" ", "")) < MIN_RUN:
                lines.add(words)
            # A name or a word of a diagnosis taken alone from a longer line ("Joao" of "Joao S.").
            lines.update(word for word in words.split() if MIN_WORD <= len(word) < MIN_RUN)
    if not runs and not lines:
        return False
    words = _words(text)
    compact = words.replace(" ", "")
    if any(compact[i : i + MIN_RUN] in runs for i in range(len(compact) - MIN_RUN + 1)):
        return True
    return bool(lines) and re.search("|".join(map(_standing_alone, lines)), words) is not None


def _standing_alone(words: str) -> str:
    """A pattern for ``words`` (of :func:`_words`) where no letter goes on a letter at either end,
    nor a digit on a digit."""
    before = r"(?<!\d)" if words[0].isdigit() else r"(?<![^\W\d_])"
    after = r"(?!\d)" if words[-1].isdigit() else r"(?![^\W\d_])"
    return before + re.escape(words) + after


def _words(text: str) -> str:
    """``text``'s letters and digits, lower-cased and without accents, as words one space apart:
    what is left of a text after any re-wrapping, re-spacing, re-casing or escaping."""
    text = unicodedata.normalize("NFKD", _ESCAPED.sub(" ", text))
    # Accents go, and so do invisible characters (zero-width, bidi): "HI\u200bV" is "hiv".
    text = "".join(
        ch for ch in text if not unicodedata.combining(ch) and unicodedata.category(ch) != "Cf"
    ).casefold()
    return " ".join(word for word in _NOT_ALNUM.split(text) if word)


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
                if _stands_alone(folded, start, start + len(secret), hidden):
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


def _stands_alone(text: str, start: int, end: int, hidden: bytearray) -> bool:
    """Whether ``text[start:end]`` (a short secret) is a whole token there, not part of a longer
    number or word (see :data:`_GLUED_BEFORE`); a neighbour already redacted is no glue."""

    def shown(first: int, last: int) -> str:
        return "".join(" " if hidden[i] else text[i] for i in range(max(0, first), min(last, len(text))))

    if _WORD.match(text, start):
        before = shown(start - 6, start)
        if _GLUED_BEFORE.search(before) and not _ESCAPE_BEFORE.search(before):
            return False
    return not (_WORD.match(text, end - 1) and _GLUED_AFTER.match(shown(end, end + 2)))


_KNOWN = _Index()


# --- texts we send: a WhatsApp message leaves Airflow for a phone ---------------------------------

#: What a text to send becomes, whole, when Airflow's secrets masker failed to check it.
UNCHECKED = "*** (text withheld: it could not be checked for secrets; see the task log)"
# A path separator as texts quote URLs: plain, JSON-escaped, percent-encoded once or twice.
_SEP = r"(?:/|\\/|%(?:25)?2[fF])"
# An encoded separator, query, fragment, space or quote: where a path segment or a value ends.
_ENCODED_STOP = r"%(?:25)?(?:2[fF]|3[fF]|23|26|20|22|27|5[cC])"
_SEGMENT = rf"(?:(?!{_ENCODED_STOP})[^\s/\\?#&\"'<>()\[\]{{}},;|])+"
# /instances/<id>/token/<token> in any of those forms, with or without scheme and host.
_ANY_URL_CREDENTIALS = re.compile(rf"(instances{_SEP}){_SEGMENT}({_SEP}token{_SEP}){_SEGMENT}", re.IGNORECASE)
# A query-string value whose key names a secret (?token=, &client_token=, %3Fpin%3D, ...).
_QUERY_SECRET = re.compile(
    r"((?:[?&;]|%(?:25)?(?:3[fF]|26))"
    r"[\w.-]*(?:token|secret|passw|pwd|pin|key|auth|code|signature|credential)[\w.-]*"
    r"(?:=|%(?:25)?3[dD]))"
    r"(?:(?!%(?:25)?(?:26|23|20|22|27))[^\s&#;\"'<>\\])+",
    re.IGNORECASE,
)
# A URL's user info (https://user:password@host).
_URL_USERINFO = re.compile(r"(://)[^\s/@?#\"'<>]+@")
# A Client-Token header or field quoted with its value ("Client-Token: x", "'client_token': 'x'");
# in a query string (?client_token=x#top) _QUERY_SECRET takes it, up to the "#".
_CLIENT_TOKEN_FIELD = re.compile(
    r"(?<![?&;])(client[-_ ]?token[\"']?\s*[:=]\s*[\"']?)[^\s\"',;)\]}]+", re.IGNORECASE
)


def redact_outgoing(text: str) -> str:
    """``text`` made safe to send out of Airflow (a WhatsApp alert or message), just before it goes.

    Each of these becomes ``***``, and nothing else changes (line breaks, WhatsApp formatting
    and phone numbers are the sender's to choose):

    - every secret registered with Airflow's secrets masker: what Airflow's own logs hide
      (connection passwords and sensitive extras it has read, ``mask_secret`` values);
    - every secret this process has read (:func:`redact_known`: Plugz tokens, PINs);
    - instance URL credentials in any form: ``/instances/<id>/token/<token>`` with or without
      scheme and host, JSON-escaped or percent-encoded (once or twice), query-string values
      whose key names a secret (``?token=``, ``&client_token=``, ``pin``, ``key``, ...) and a
      URL's user info;
    - the value of a quoted ``Client-Token`` header or field.

    A text that was not empty never becomes empty or blank. If Airflow's masker fails, the whole
    text is replaced by :data:`UNCHECKED` (a text nobody checked never leaves). A replaced value
    shorter than 3 characters makes the text longer: cut it to its limit after this, not before.
    """
    from airflow_provider_plugz._compat import redact_registered  # Airflow's masker: imported now

    try:
        text = redact_registered(text)
    except ValueError:
        return UNCHECKED
    text = redact_known(text)
    text = _ANY_URL_CREDENTIALS.sub(rf"\g<1>{REDACTED}\g<2>{REDACTED}", text)
    text = _QUERY_SECRET.sub(rf"\g<1>{REDACTED}", text)
    text = _URL_USERINFO.sub(rf"\g<1>{REDACTED}@", text)
    return _CLIENT_TOKEN_FIELD.sub(rf"\g<1>{REDACTED}", text)
