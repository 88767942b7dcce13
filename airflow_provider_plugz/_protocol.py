"""The Plugz wire protocol, free of any transport.

Three concerns live here and only here, so the sync hook (requests) and the async trigger
(httpx) share them and differ only in how bytes travel:

- :func:`build_request` turns a config, an :class:`Endpoint` and the caller's arguments into a
  :class:`PlugzRequest`;
- :func:`check_response` maps an answer (status, headers, body) to a JSON object or to the
  right :class:`~airflow_provider_plugz.exceptions.PlugzError`, classifying by body as
  well as status (the API sends some errors with HTTP 200) on what the server said, and
  showing of its text only what repeats nothing of the request
  (:func:`~airflow_provider_plugz._answer_texts.shown`);
- :func:`read_answer` does that and hands the object to the endpoint's own ``parse``, which
  turns it into a typed result.

The endpoints themselves are declared in :mod:`airflow_provider_plugz.endpoints`.

What a server said is classified and shown by :mod:`airflow_provider_plugz._answer_texts`; how
bodies are read and what goes wrong below HTTP belong to the transports
(:mod:`airflow_provider_plugz.transports.body`, :mod:`airflow_provider_plugz.transports.failures`).
"""

from __future__ import annotations

import email.utils
import json
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from airflow_provider_plugz import __version__
from airflow_provider_plugz._answer_texts import json_kind, said_words, server_texts, shown, text_of

# The declarations (what a call is, what its body and parse raise) are light, apart: endpoints.py
# declares with them without loading this module.
from airflow_provider_plugz._declarations import BadArgument, Endpoint, Malformed
from airflow_provider_plugz._redaction import Secret
from airflow_provider_plugz.exceptions import (
    PlugzAuthenticationError,
    PlugzBadRequestError,
    PlugzConfigurationError,
    PlugzError,
    PlugzInstanceNotSupportedError,
    PlugzMalformedResponseError,
    PlugzMethodNotAllowedError,
    PlugzNotFoundError,
    PlugzQueueFullError,
    PlugzRateLimitedError,
    PlugzRedirectError,
    PlugzRefusedError,
    PlugzServerError,
    PlugzSubscriptionError,
    PlugzUnsupportedMediaTypeError,
)
from airflow_provider_plugz.transports.body import ACCEPT_ENCODING

if TYPE_CHECKING:
    from airflow_provider_plugz.connection import PlugzConfig

#: What a transport hands back: status, headers, decoded body, and what was wrong with the body
#: (None when it could be read).
TransportAnswer = tuple[int, Mapping[str, str], bytes, "str | None"]

USER_AGENT = f"airflow-provider-plugz/{__version__}"


@dataclass(frozen=True)
class Answer:
    """A successful answer's JSON object, handed to an endpoint's ``parse``."""

    payload: Mapping[str, Any] = field(repr=False)
    secrets: tuple[str, ...] = field(default=(), repr=False)

    def __repr__(self) -> str:
        # A server's JSON may hold a phone, a profile name, an echoed text: only its size shows.
        return f"Answer(payload=<{len(self.payload)} fields>)"

    def text(self, key: str) -> str | None:
        """A string field as server text, shown as every server text is (:func:`_shown`): sanitised,
        bounded, redacted and phone-masked, or withheld whole when it repeats part of what was sent
        (``secrets``: the request's values and the connection's); None when absent or empty."""
        value = self.payload.get(key)
        if value in (None, "", False):
            return None
        return shown((text_of(value),), self.secrets)


@dataclass(frozen=True)
class PlugzRequest:
    """A request ready for any transport. ``url``, ``headers`` and ``body`` carry secrets: no repr.

    ``secrets`` are the values of this request beyond the connection's (e.g. the PIN being set),
    redacted from whatever the server answers.
    """

    endpoint: Endpoint[Any]
    url: str = field(repr=False)
    headers: Mapping[str, str] = field(repr=False)
    body: bytes | None = field(default=None, repr=False)
    secrets: tuple[str, ...] = field(default=(), repr=False)
    private: tuple[str, ...] = field(default=(), repr=False)

    @property
    def redacted(self) -> tuple[str, ...]:
        """Every value of this request that an answer must not repeat."""
        return (*self.secrets, *self.private)

    @property
    def method(self) -> str:
        return self.endpoint.method


def build_request(config: PlugzConfig, endpoint: Endpoint[Any], *args: Any, **kwargs: Any) -> PlugzRequest:
    """Build the URL (credentials in the path), headers and body of a call of ``endpoint``.

    :raises PlugzConfigurationError: the endpoint's ``body`` refused an argument.
    """
    # The ids hold URL-unreserved characters only (connection parsing); quoting is belt and braces.
    url = (
        f"{config.base_url}/instances/{quote(config.instance_id, safe='')}"
        f"/token/{quote(config.instance_token, safe='')}/{endpoint.path}"
    )
    headers = {
        "Client-Token": config.client_token,
        "Accept": "application/json",
        "Accept-Encoding": ACCEPT_ENCODING,
        "User-Agent": USER_AGENT,
    }
    if endpoint.body is None:
        if args or kwargs:
            raise TypeError(f"the {endpoint.action} takes no arguments")
        return PlugzRequest(endpoint=endpoint, url=url, headers=headers)
    try:
        body = endpoint.body(*args, **kwargs)
    except BadArgument as err:
        raise PlugzConfigurationError(
            f"Plugz {endpoint.action} for connection {config.conn_id!r}: {err}"
        ) from None
    headers["Content-Type"] = "application/json"
    data = json.dumps(body.json, separators=(",", ":"), default=_reveal).encode()
    return PlugzRequest(
        endpoint=endpoint, url=url, headers=headers, body=data, secrets=body.secrets, private=body.private
    )


def read_answer(config: PlugzConfig, request: PlugzRequest, answer: TransportAnswer) -> Any:
    """Check a transport's answer to ``request`` and parse it into the endpoint's typed result."""
    status, headers, body, problem = answer
    endpoint = request.endpoint
    payload = check_response(
        config, endpoint, status, headers, body, secrets=request.redacted, body_problem=problem
    )
    try:
        return endpoint.parse(Answer(payload, (*config.secrets, *request.redacted)))
    except Malformed as err:
        raise _malformed(config, endpoint, status, str(err)) from None


def _reveal(value: object) -> str:
    if isinstance(value, Secret):
        return value.reveal()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


# --- response checking ---------------------------------------------------------------------

_STATUS_CLASSES: dict[int, type[PlugzError]] = {
    401: PlugzAuthenticationError,
    403: PlugzAuthenticationError,
    404: PlugzNotFoundError,
    405: PlugzMethodNotAllowedError,
    408: PlugzServerError,
    415: PlugzUnsupportedMediaTypeError,
    429: PlugzRateLimitedError,
}

# Server texts seen from the Z-API backend (plugz-api.md, "Error bodies"), most specific first.
_TEXT_CLASSES: tuple[tuple[re.Pattern[str], type[PlugzError]], ...] = (
    (re.compile(r"subscribe", re.I), PlugzSubscriptionError),
    (re.compile(r"\bqueue\b.{0,20}\bfull\b", re.I), PlugzQueueFullError),
    (re.compile(r"instance not found", re.I), PlugzNotFoundError),
    (re.compile(r"mobile", re.I), PlugzInstanceNotSupportedError),
    (re.compile(r"client[-_ ]?token|not allowed", re.I), PlugzAuthenticationError),
    (re.compile(r"matching target resource|NOT_FOUND", re.I), PlugzNotFoundError),
)


def check_response(
    config: PlugzConfig,
    endpoint: Endpoint[Any],
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    secrets: tuple[str, ...] = (),
    body_problem: str | None = None,
) -> dict[str, Any]:
    """Return the JSON object of a successful answer, or raise the matching ``PlugzError``.

    ``headers`` must be case-insensitive (both requests and httpx give such mappings).
    Transports stop reading just past the endpoint's ``max_body`` (:data:`MAX_BODY_BYTES` unless
    it says otherwise); a longer body is refused.
    ``secrets`` are the request's values (a PIN, a phone, a message text): with the connection's
    own, a server text that repeats any part of them is withheld (:func:`_shown`);
    ``body_problem`` is a :class:`BodyReader`'s, when the body could not be decoded.
    """
    payload = None if body_problem else _json_object(body[: endpoint.max_body + 1], endpoint.array_key)
    texts = server_texts(payload)
    sent = (*config.secrets, *secrets)
    # Classified on what the server said; what people see is shaped apart (redacted or withheld).
    said = said_words(texts, sent)
    server_message = shown(texts, sent) if texts else None

    error_class: type[PlugzError] | None = None
    refused = False
    if 300 <= status < 400:
        error_class = PlugzRedirectError
    elif status >= 400:
        error_class = _classify_error_status(status, said)
    elif (
        payload is not None
        and payload.get("error") not in (None, False, "")
        # An ``error`` text in a 200 is a failure, unless the endpoint says that in this answer
        # it is state (``/status``: why the number is disconnected).
        and not endpoint.error_is_state(payload)
    ):
        error_class = _classify_text(said) or PlugzBadRequestError
    elif payload is not None and payload.get("success") is False and 200 <= status < 300:
        # The API's documented refusal ("success: false", with a ``message`` saying why), on any
        # endpoint: never a success, and not a malformed answer either.
        error_class, refused = _classify_text(said) or PlugzRefusedError, True

    if error_class is not None:
        raise _api_error(config, endpoint, error_class, status, server_message, headers, refused=refused)
    if not 200 <= status < 300:
        raise _api_error(config, endpoint, PlugzMalformedResponseError, status, server_message, headers)

    problem = body_problem or _body_problem(body, payload, headers, endpoint)
    if problem is not None:
        raise _malformed(config, endpoint, status, problem)
    assert payload is not None
    return payload


def _body_problem(
    body: bytes, payload: dict[str, Any] | None, headers: Mapping[str, str], endpoint: Endpoint[Any]
) -> str | None:
    if len(body) > endpoint.max_body:
        return f"the body is larger than {endpoint.max_body} bytes"
    if payload is None:
        return _describe_non_object(body, headers, endpoint)
    if "success" in payload and not isinstance(payload["success"], bool):
        return f"its 'success' is {json_kind(payload['success'])}, not a boolean"
    return None


def _classify_error_status(status: int, said: str | None) -> type[PlugzError]:
    if status >= 500:
        return PlugzServerError
    if status in (405, 408, 415, 429):
        return _STATUS_CLASSES[status]
    by_text = _classify_text(said)
    by_status = _STATUS_CLASSES.get(status)  # 401, 403, 404 or None
    if by_status is None:
        return by_text or PlugzBadRequestError
    # The status says "credentials" or "not found"; a more specific text still wins.
    if by_text in (PlugzSubscriptionError, PlugzInstanceNotSupportedError):
        return by_text
    return by_status


def _classify_text(said: str | None) -> type[PlugzError] | None:
    """The class the server's words (:func:`_said`) call for, if any."""
    if not said:
        return None
    for pattern, error_class in _TEXT_CLASSES:
        if pattern.search(said):
            return error_class
    return None


def _json_object(body: bytes, array_key: str | None = None) -> dict[str, Any] | None:
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if isinstance(value, list) and array_key is not None:
        return {array_key: value}
    return value if isinstance(value, dict) else None


def _describe_non_object(body: bytes, headers: Mapping[str, str], endpoint: Endpoint[Any]) -> str:
    if not body.strip():
        return "the body is empty"
    content_type = headers.get("Content-Type", "") or ""
    if "html" in content_type.lower() or body.lstrip()[:1] == b"<":
        return "it is an HTML page, not JSON"
    if _is_json(body):
        return (
            "the JSON is neither an object nor an array"
            if endpoint.array_key
            else "the JSON is not an object"
        )
    return "the body is not valid JSON"


def _is_json(body: bytes) -> bool:
    try:
        json.loads(body)
    except (ValueError, RecursionError):
        return False
    return True


def _malformed(config: PlugzConfig, endpoint: Endpoint[Any], status: int, problem: str) -> PlugzError:
    return PlugzMalformedResponseError(
        f"Plugz {endpoint.action} for connection {config.conn_id!r}: HTTP {status} answer "
        f"is malformed: {problem}. {PlugzMalformedResponseError.advice}",
        http_status=status,
    )


def _api_error(
    config: PlugzConfig,
    endpoint: Endpoint[Any],
    error_class: type[PlugzError],
    status: int,
    server_message: str | None,
    headers: Mapping[str, str],
    *,
    refused: bool = False,
) -> PlugzError:
    said = f": {server_message}" if server_message else ""
    if refused:
        said = f", success: false{said or ' (the API gave no reason)'}"
    message = (
        f"Plugz {endpoint.action} failed for connection {config.conn_id!r}: HTTP {status}{said}. "
        f"{error_class.advice}"
    )
    if error_class is PlugzRateLimitedError:
        return PlugzRateLimitedError(
            message,
            http_status=status,
            server_message=server_message,
            retry_after=parse_retry_after(headers.get("Retry-After")),
        )
    return error_class(message, http_status=status, server_message=server_message)


_DELTA_SECONDS = re.compile(r"[0-9]+")
# Longer delta-seconds are all "far too long" (and int() refuses texts over 4,300 digits).
_MAX_DELTA_DIGITS = 12


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date), or None.

    Whatever a server sends, this returns a finite number >= 0, ``inf`` (a wait too long to
    express), or None (no usable value); it never raises.
    """
    if not value or not isinstance(value, str):
        return None
    value = value.strip()
    if _DELTA_SECONDS.fullmatch(value):  # ASCII digits only: "²".isdigit() is True
        return float(value) if len(value) <= _MAX_DELTA_DIGITS else math.inf
    if len(value) > 64 or not value.isascii():  # an HTTP date is 29 ASCII characters
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
        if when.tzinfo is None:
            return None
        delay = when.timestamp() - (time.time() if now is None else now)
    except (TypeError, ValueError, IndexError, OverflowError, OSError):
        return None
    return max(0.0, delay) if math.isfinite(delay) else None
