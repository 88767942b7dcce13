"""What a server said in an answer, as two different things: the words an answer is classified
by, and the text people see.

- :func:`server_texts` takes an answer's ``error`` and ``message`` as the server wrote them;
- :func:`said_words` is what :func:`~airflow_provider_plugz._protocol.check_response` classifies
  by: sanitised, never redacted, verbatim echoes of what we sent left out;
- :func:`shown` is what messages, logs, XCom and reprs get: sanitised, redacted, phones masked -
  or withheld whole when it repeats part of what was sent
  (:func:`~airflow_provider_plugz._redaction.repeats`).
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from airflow_provider_plugz._redaction import MIN_RUN, WITHHELD, mask_phones, redact, repeats, sanitize

if TYPE_CHECKING:
    from collections.abc import Mapping


def server_texts(payload: Mapping[str, Any] | None) -> tuple[str, ...]:
    """The server's own ``error`` and ``message`` texts, as it wrote them (bounded, not sanitised)."""
    if payload is None:
        return ()
    keys = ("error", "message")
    parts = [text_of(payload[key]) for key in keys if payload.get(key) not in (None, "", False)]
    return tuple(dict.fromkeys(parts))


def said_words(texts: tuple[str, ...], sent: tuple[str, ...]) -> str | None:
    """The server's words to classify an answer by: sanitised, never redacted (a message or a secret
    holding "instance" must not turn "Instance not found" into "*** not found"), and without
    verbatim quotes of what we sent (a message "Login not allowed" echoed in a 400 is not a
    Client-Token problem): each value of :data:`MIN_RUN` or more characters is taken out where it
    appears whole, compared after the same sanitising, whitespace and "\\n" folding on both sides.
    """
    if not texts:
        return None
    ours = sorted({value for value in map(_folded, sent) if len(value) >= MIN_RUN}, key=len, reverse=True)
    words = []
    for text in map(_folded, texts):
        theirs = text
        if text.casefold() not in _DOCUMENTED_TEXTS:
            for value in ours:
                theirs = re.sub(re.escape(value), " ", theirs, flags=re.IGNORECASE)
        words.append(theirs)
    return ": ".join(words)


def shown(texts: tuple[str, ...], sent: tuple[str, ...]) -> str:
    """What people see of server texts (messages, logs, XCom, reprs): one sanitised, bounded line,
    redacted (secrets, and phone numbers: personal data, whether we sent them or not) - or
    :data:`WITHHELD` as a whole when any text repeats part of what was ``sent`` (see
    :func:`~airflow_provider_plugz._redaction.repeats`), because a repeated message text cannot
    be redacted piece by piece. A text the API documents says nothing of what was sent and is
    always shown ("Instance not found" to a message that mentions an instance); so is one whose
    only repeats are of a shape that is removed whole, wherever it is: a phone number ("phone ***
    is not on WhatsApp"), an echoed Client-Token ("Client-Token *** not allowed"), an instance
    URL's credentials."""
    foreign = [mask_phones(redact(text)) for text in texts if not _documented(text)]
    if foreign and repeats(": ".join(foreign), sent):
        return WITHHELD
    shown = (text if _documented(text) else redact(text, sent) for text in texts)
    return mask_phones(sanitize(": ".join(shown)))


# Server texts of the Z-API backend (plugz-api.md, "Error bodies") and the sandbox, as _folded()
# and casefold() leave them: constant phrases, which repeat nothing of a request even when its
# message holds the same words.
_DOCUMENTED_TEXTS = frozenset(
    text.casefold()
    for text in (
        "null not allowed",
        "your client-token is not configured",
        "Instance not found",
        "NOT_FOUND",
        "Unable to find matching target resource method",
        "To continue sending a message, you must subscribe to this instance again",
        "This feature is only available for mobile instances",
        "The message queue is full",
        "You are not connected.",
        "You need to restore the session.",
        "Unsupported Media Type",
        "Content-Type must be application/json",
    )
)
_WRITTEN_BREAKS = re.compile(r"(?:\\[nrt]|\s)+")


def _folded(text: str) -> str:
    """``text`` sanitised (unbounded), each run of whitespace and written breaks ("\\n") one space."""
    return _WRITTEN_BREAKS.sub(" ", sanitize(text, limit=len(text))).strip()


def _documented(text: str) -> bool:
    return _folded(text).casefold() in _DOCUMENTED_TEXTS


def text_of(value: Any) -> str:
    # Bounded before str(): a huge number or deep structure must not cost a conversion of it all.
    if isinstance(value, str):
        return value[:1000]
    if isinstance(value, (bool, float)) or (isinstance(value, int) and abs(value) < 10**300):
        return json.dumps(value)
    return f"(a JSON {json_kind(value)})"


def json_kind(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    return {str: "string", int: "number", float: "number", list: "array", dict: "object"}.get(
        type(value), "value"
    )
