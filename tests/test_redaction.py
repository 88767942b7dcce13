"""Sanitising and redacting texts we did not write: every shape a secret may come back in."""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_provider_plugz._redaction import (
    MAX_TEXT,
    MIN_RUN,
    Secret,
    known_secrets,
    mask_phones,
    redact,
    redact_known,
    remember,
    sanitize,
)

TOKEN = "T0KEN5ECRET0000000000000000001"
ODD = "ab+c/d=e f%g&h"  # a Client-Token may hold characters that percent-encoding changes
PIN = "482913"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("plain text", "plain text", id="plain"),
        pytest.param("a\nb\r\nc\td", "a b  c d", id="line-breaks-become-spaces"),
        pytest.param("\x1b[31mred\x1b[0m", "?[31mred?[0m", id="ansi-escapes"),
        pytest.param("nul\x00byte", "nul?byte", id="nul"),
        pytest.param("lone \ud800 surrogate", "lone ? surrogate", id="lone-surrogate"),
        pytest.param("zero\u200bwidth", "zero?width", id="zero-width"),
        pytest.param("bidi \u202eevil", "bidi ?evil", id="bidi-override"),
        pytest.param("line\u2028sep", "line sep", id="unicode-line-separator"),
        pytest.param("inscrição não", "inscrição não", id="printable-unicode-kept"),
        pytest.param("x" * (MAX_TEXT + 1), "x" * MAX_TEXT + "...", id="bounded"),
    ],
)
def test_sanitize(text: str, expected: str) -> None:
    cleaned = sanitize(text)
    assert cleaned == expected
    assert cleaned.isprintable()
    cleaned.encode("utf-8")  # no lone surrogate left to break print() or a log handler


@pytest.mark.parametrize(
    ("text", "secrets", "expected"),
    [
        pytest.param(f"got {TOKEN}!", (TOKEN,), "got ***!", id="exact"),
        pytest.param(f"got {TOKEN.lower()}!", (TOKEN,), "got ***!", id="lower-cased"),
        pytest.param(f"got {TOKEN[:MIN_RUN]}!", (TOKEN,), "got ***!", id="cut-to-8"),
        pytest.param(
            f"got {TOKEN[: MIN_RUN - 1]}!", (TOKEN,), f"got {TOKEN[: MIN_RUN - 1]}!", id="7-is-too-short"
        ),
        pytest.param(f"got {TOKEN[5:20]}...", (TOKEN,), "got ***...", id="middle-run"),
        pytest.param(f"{TOKEN[:12]} {TOKEN[12:]}", (TOKEN,), "*** ***", id="split"),
        pytest.param(f"got {quote(ODD, safe='')}", (ODD,), "got ***", id="percent-encoded"),
        pytest.param(f"got {quote(ODD, safe='').lower()}", (ODD,), "got ***", id="percent-encoded-lower"),
        pytest.param(f"code {PIN} refused", (PIN,), "code *** refused", id="short-secret-whole"),
        pytest.param("code 4829 refused", (PIN,), "code 4829 refused", id="short-secret-part-kept"),
        pytest.param("a b c", ("a",), "a b c", id="one-letter-never-redacted"),
        pytest.param(
            "/instances/abc/token/xyz/security/two-fa-code",
            (),
            "/instances/***/token/***/security/two-fa-code",
            id="url-credentials",
        ),
        pytest.param("Client-Token zz9 not allowed", (), "Client-Token *** not allowed", id="echoed-token"),
        pytest.param(f"{TOKEN}{PIN}", (TOKEN, PIN), "***", id="adjacent-secrets-merge"),
    ],
)
def test_redact(text: str, secrets: tuple[str, ...], expected: str) -> None:
    assert redact(text, secrets) == expected


ASCII_SECRET = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=MIN_RUN, max_size=40)


@st.composite
def echoed(draw: st.DrawFn) -> tuple[str, str]:
    """A secret and a text in which some run of >= MIN_RUN of its characters is echoed, shaped."""
    secret = draw(ASCII_SECRET)
    start = draw(st.integers(0, len(secret) - MIN_RUN))
    end = draw(st.integers(start + MIN_RUN, len(secret)))
    run = secret[start:end]
    shape = draw(st.sampled_from(["as-is", "lower", "upper", "swapcase", "quoted"]))
    shaped = {
        "as-is": run,
        "lower": run.lower(),
        "upper": run.upper(),
        "swapcase": run.swapcase(),
        "quoted": quote(secret, safe="")[start : start + len(run)]
        if quote(secret, safe="") == secret
        else run,
    }[shape]
    text = draw(st.text(max_size=30)) + shaped + draw(st.text(max_size=30))
    return secret, text


@given(echoed())
def test_no_run_of_a_secret_survives(case: tuple[str, str]) -> None:
    secret, text = case
    cleaned = redact(sanitize(text, limit=1000), (secret,)).lower()
    lowered = secret.lower()
    for start in range(len(lowered) - MIN_RUN + 1):
        assert lowered[start : start + MIN_RUN] not in cleaned


def test_known_secrets_are_redacted_anywhere() -> None:
    remember("KN0WN5ECRET0000001", None, "", "ab")
    assert "KN0WN5ECRET0000001" in known_secrets()
    assert "ab" not in known_secrets()
    assert redact_known("x kn0wn5ecret0000001 y") == "x *** y"


def test_secret_hides_its_value_from_reprs() -> None:
    secret = Secret(PIN)
    assert secret.reveal() == PIN
    assert PIN not in repr(secret)
    assert PIN not in str(secret)
    assert PIN not in repr({"code": secret})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("phone 5511987654321 is not on WhatsApp", "phone *** is not on WhatsApp", id="digits"),
        pytest.param("to +55 (11) 98765-4321.", "to ***.", id="formatted"),
        pytest.param("to +55 11 9 8765 4321!", "to ***!", id="spaced"),
        pytest.param("group 120363019502650977-group full", "group ***-group full", id="group-id"),
        pytest.param("a 5511987654321,5511912345678 b", "a ***,*** b", id="two"),
        pytest.param("HTTP 503 after 1234567 ms", "HTTP 503 after 1234567 ms", id="seven-digits-kept"),
        pytest.param("v2.24.10 on 2026-12-02", "v2.24.10 on 2026-12-02", id="versions-and-dates-kept"),
        pytest.param("id ABC12345678XYZ", "id ABC***XYZ", id="inside-a-word"),
        pytest.param("203.0.113.9 not allowed", "203.0.113.9 not allowed", id="ipv4-kept"),
        pytest.param("+33 1.23.45.67.89", "***", id="dotted-phone"),
        pytest.param("call 1.23.45.67.89 now", "call *** now", id="dotted-phone-not-an-ip"),
        pytest.param("from 203.0.113.9.", "from 203.0.113.9.", id="ipv4-at-the-end-of-a-sentence"),
        pytest.param("", "", id="empty"),
    ],
)
def test_mask_phones(text: str, expected: str) -> None:
    assert mask_phones(text) == expected


@given(st.text(alphabet="0123456789 ()-.+x", max_size=300))
def test_mask_phones_leaves_no_eight_digits_together(text: str) -> None:
    assert re.search("[0-9]{8}", mask_phones(text)) is None
