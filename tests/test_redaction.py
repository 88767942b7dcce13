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
    repeats,
    sanitize,
)
from tests.conftest import ARABIC_INDIC, DEVANAGARI, PERSIAN, fullwidth, written_in

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


# --- issue 22, point 2: a server text that repeats what we sent is found, however it is written ---

ALERT = "*ALERTA*\nPaciente:\nJoao S.\nHIV+\nLeito 12"
PHONE = "5511987654321"
ALERT_PHONE = PHONE


@pytest.mark.parametrize(
    ("text", "sent", "expected"),
    [
        pytest.param(
            "Invalid message: *ALERTA* Paciente: Joao S. HIV+ Leito 12", (ALERT,), True, id="whole-echo"
        ),
        pytest.param(
            "Invalid message: *** *** Joao S. HIV+ ***", (ALERT,), True, id="what-the-old-redaction-left"
        ),
        pytest.param("HIV+", (ALERT,), True, id="a-4-character-line-alone"),
        pytest.param("word 'hiv' refused", (ALERT,), True, id="a-line-re-cased-without-its-plus"),
        pytest.param("Joao S.", (ALERT,), True, id="a-7-character-line"),
        pytest.param("bed: leito 12!", (ALERT,), True, id="a-line-in-a-sentence"),
        pytest.param("JOAO S. HIV", (ALERT,), True, id="a-run-across-a-break"),
        pytest.param(r"Paciente:\nJoao S.\nHIV+", (ALERT,), True, id="breaks-written-as-backslash-n"),
        pytest.param(r"Paciente:\u000aJoao", (ALERT,), True, id="breaks-written-as-unicode-escapes"),
        pytest.param("Paciente%3A%0AJoao", (ALERT,), True, id="percent-encoded"),
        pytest.param("Joao S.<br/>HIV+", (ALERT,), True, id="html-breaks"),
        pytest.param("João S.", (ALERT,), True, id="accents-added"),
        pytest.param("H\u200bI\u200bV+", (ALERT,), True, id="zero-width-characters-inside"),
        pytest.param("P a c i e n t e", (ALERT,), True, id="spaced-out"),
        pytest.param("recipient +55 (11) 98765-4321 unknown", (ALERT_PHONE,), True, id="phone-formatted"),
        pytest.param("Idade: 42 fora do limite", ("Idade:\n42",), True, id="a-2-character-line-as-a-word"),
        pytest.param(f"got {TOKEN[:7]}\n{TOKEN[7:14]}", (TOKEN,), True, id="a-secret-split-by-a-break"),
        pytest.param(f"PIN {PIN} refused", (PIN,), True, id="a-pin-whole"),
        pytest.param(f"invalid code{PIN}", (PIN,), True, id="a-pin-glued-to-a-word"),
        pytest.param("bad word: hiv2", (ALERT,), True, id="a-line-glued-to-a-number"),
        pytest.param("invalid name Joao", (ALERT,), True, id="a-name-taken-alone-from-a-line"),
        pytest.param("LEITO: bad value", (ALERT,), True, id="a-word-of-a-line-re-cased"),
        pytest.param("Joaozinho unknown", (ALERT,), False, id="a-word-inside-a-longer-word"),
        # Texts that repeat nothing we sent stay as useful as ever.
        pytest.param("HIVE not allowed", (ALERT,), False, id="a-short-line-inside-a-word"),
        pytest.param("12 errors in the body", (ALERT,), False, id="a-word-of-a-line-is-not-the-line"),
        pytest.param("The message queue is full", (ALERT, ALERT_PHONE), False, id="unrelated"),
        pytest.param("age 420", ("Idade:\n42",), False, id="a-2-character-line-inside-a-number"),
        pytest.param("a b c", ("a\nb\nc",), False, id="one-character-lines-are-not-looked-for"),
        pytest.param(f"build {PIN}07", (PIN,), False, id="a-pin-inside-a-longer-number"),
        pytest.param("anything", (), False, id="nothing-sent"),
        pytest.param("anything", ("", "-"), False, id="nothing-to-compare"),
    ],
)
def test_repeats(text: str, sent: tuple[str, ...], expected: bool) -> None:
    assert repeats(text, sent) is expected


ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
SENT_TEXT = st.text(st.sampled_from(ALNUM + " \n:*+-.,!"), max_size=60)


@st.composite
def quoted(draw: st.DrawFn) -> tuple[str, str]:
    """A text we sent and a server text quoting a part of it with 8 or more letters and digits
    (across lines and punctuation), re-written as servers do (breaks as spaces or "\\n",
    re-cased, whitespace squeezed)."""
    pieces = draw(
        st.lists(
            st.tuples(st.sampled_from(ALNUM), st.sampled_from(["", "", " ", "\n", ": ", "*\n"])),
            min_size=MIN_RUN,
            max_size=30,
        )
    )
    part = "".join(char + gap for char, gap in pieces)
    sent = draw(SENT_TEXT) + part + draw(SENT_TEXT)
    shape = draw(st.sampled_from(["as-is", "spaces", "escaped", "upper", "squeezed"]))
    shaped = {
        "as-is": part,
        "spaces": part.replace("\n", " "),
        "escaped": part.replace("\n", "\\n"),
        "upper": part.upper(),
        "squeezed": " ".join(part.split()),
    }[shape]
    return sent, draw(st.text(max_size=20)) + " " + shaped + " " + draw(st.text(max_size=20))


@given(quoted())
def test_any_quoted_run_of_what_was_sent_is_found(case: tuple[str, str]) -> None:
    sent, text = case
    assert repeats(text, (sent,))


# --- issue 22, point 5: a short secret (a PIN) is removed only as a whole token ------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("build 20261207 order 202612-A", "build 20261207 order 202612-A", id="the-issue's-line"),
        pytest.param("v1.202612 and 202612.5", "v1.202612 and 202612.5", id="glued-by-a-dot"),
        pytest.param("x202612 202612_x A-202612", "x202612 202612_x A-202612", id="glued-to-words"),
        pytest.param("120261234", "120261234", id="inside-a-longer-number"),
        pytest.param("PIN 202612.", "PIN ***.", id="at-the-end-of-a-sentence"),
        pytest.param("-202612 (202612)", "-*** (***)", id="signs-and-brackets-are-no-glue"),
        pytest.param('{"code":"202612"}', '{"code":"***"}', id="json-body"),
        pytest.param("'202612'", "'***'", id="a-repr-as-sentry-records-a-local"),
        pytest.param("202612", "***", id="a-value-that-equals-it"),
        pytest.param("?code=202612&x=1", "?code=***&x=1", id="query-string"),
        pytest.param("code:\\n202612", "code:\\n***", id="after-a-written-break"),
        pytest.param("%22202612%22", "%22***%22", id="percent-encoded-quotes"),
        pytest.param(f"{TOKEN}202612", "***", id="glued-to-another-secret"),
        pytest.param(f"{TOKEN}-202612", "***-***", id="dashed-to-another-secret"),
    ],
)
def test_a_short_secret_is_redacted_only_as_a_whole_token(text: str, expected: str) -> None:
    assert redact(text, (TOKEN, "202612")) == expected


def test_a_remembered_pin_leaves_ordinary_numbers_alone() -> None:
    """What the log filter of the HTTP clients and the Sentry scrubber use (redact_known)."""
    remember("202612")
    assert redact_known("build 20261207 order 202612-A") == "build 20261207 order 202612-A"
    assert redact_known("sent code 202612 to the API") == "sent code *** to the API"


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
        # Digits of any script.
        pytest.param(f"n. {fullwidth(PHONE)}.", "n. ***.", id="fullwidth-digits"),
        pytest.param(f"n. {fullwidth('+55 (11) 98765-4321')}", "n. ***", id="fullwidth-plus-parens-dash"),
        pytest.param(f"n. {written_in(ARABIC_INDIC, PHONE)}", "n. ***", id="arabic-indic"),
        pytest.param(f"n. {written_in(PERSIAN, PHONE)}", "n. ***", id="persian"),
        pytest.param(f"n. {written_in(DEVANAGARI, PHONE)}", "n. ***", id="devanagari"),
        pytest.param(f"n. {written_in('^', PHONE)}", "n. ***", id="superscript"),
        pytest.param(
            f"n. 55{written_in(ARABIC_INDIC, '11')}98765{fullwidth('43')}21", "n. ***", id="mixed-scripts"
        ),
        # Separators sanitize() leaves, or puts.
        pytest.param("+55\u00a011\u00a098765\u20114321", "***", id="nbsp-and-non-breaking-hyphen"),
        pytest.param("+55\u202f11\u2009987\u200a65 4321", "***", id="narrow-and-thin-spaces"),
        pytest.param("+55\u300011\u300098765-4321", "***", id="ideographic-space"),
        pytest.param("55 11 98765\u20134321, 55 11 98765\u22124321", "***, ***", id="en-dash-and-minus"),
        pytest.param("55/11/98765/4321", "***", id="slashes"),
        pytest.param("55_11_98765_4321", "***", id="underscores"),
        pytest.param("55\u00b711\u00b798765\u00b74321", "***", id="middle-dots"),
        pytest.param("55 11 98765 - 4321", "***", id="spaced-dash"),
        pytest.param("55+11+98765+4321", "***", id="form-encoded-spaces"),
        pytest.param("5511?98765?4321", "***", id="sanitized-zero-width"),
        pytest.param(sanitize("5511\u200b98765\u200c4321"), "***", id="zero-width-through-sanitize"),
        pytest.param("5511\u200e98765\u202e4321", "***", id="bidi-marks-raw"),
        pytest.param("5511\n98765\t4321", "***", id="line-break-raw"),
        # Glued to letters, ids, encodings; written with "00".
        pytest.param("id5511987654321x", "id***x", id="glued-to-letters"),
        pytest.param("5511987654321@c.us", "***@c.us", id="whatsapp-id"),
        pytest.param("120363019502650977-1612345678@g.us", "***@g.us", id="group-whatsapp-id"),
        pytest.param("wa.me/5511987654321?text=oi", "wa.me/***?text=oi", id="wa-me-link"),
        pytest.param("?phone=%2B5511987654321&x=1", "?phone=***&x=1", id="percent-encoded-plus"),
        pytest.param("to=%2B55%2011%2098765-4321", "to=***", id="percent-encoded-spaces"),
        pytest.param("to=%2b55%20%2811%29%2098765%2D4321", "to=***", id="percent-encoded-parens-lower"),
        pytest.param("call 0055 11 98765 4321", "call ***", id="leading-00"),
        pytest.param("tel:+5511987654321", "tel:***", id="tel-uri"),
        pytest.param("11.987.654.321", "***", id="dotted-not-an-ip"),
        # What stays: dates, times, IPv4 addresses, short numbers - and a number after them.
        pytest.param("expires 07/12/2026 20:44", "expires 07/12/2026 20:44", id="date-slashes-and-time"),
        pytest.param(
            "on 2026/12/07, 12/25/2026, 07.12.2026", "on 2026/12/07, 12/25/2026, 07.12.2026", id="dates"
        ),
        pytest.param(
            "at 2026-12-07T20:44:20.123456+00:00", "at 2026-12-07T20:44:20.123456+00:00", id="iso-time"
        ),
        pytest.param("report_2026_12_07", "report_2026_12_07", id="date-underscores"),
        pytest.param(
            "from 10.0.0.1/16 and 203.0.113.9:443", "from 10.0.0.1/16 and 203.0.113.9:443", id="ipv4"
        ),
        pytest.param("1,234,567,890 bytes in 1234567 ms", "1,234,567,890 bytes in 1234567 ms", id="counts"),
        pytest.param("v2.24.10.16 of 2026-12-07", "v2.24.10.16 of 2026-12-07", id="version"),
        pytest.param("07/12/2026 +5511987654321", "07/12/2026 ***", id="number-after-a-date"),
        pytest.param("10.0.0.1 5511987654321", "10.0.0.1 ***", id="number-after-an-ip"),
        pytest.param("+55 11 2026-12-07", "***", id="number-running-into-a-date"),
    ],
)
def test_mask_phones(text: str, expected: str) -> None:
    assert mask_phones(text) == expected


@given(st.text(alphabet="0123456789 ()-.+x", max_size=300))
def test_mask_phones_leaves_no_eight_digits_together(text: str) -> None:
    assert re.search("[0-9]{8}", mask_phones(text)) is None


# --- redact_outgoing: the last step before a text leaves Airflow for a phone --------------------

OUT_TOKEN = "0UTG01NGT0KEN5ECRET00000000042"  # known through our remember() only
MASKED_ONLY = "AIRF10WMA5KED5ECRET0000000042"  # known to Airflow's secrets masker only
MASKED_PIN = "735194"  # a PIN registered with Airflow's masker only, standing alone in the text


@pytest.fixture
def outgoing_secrets(fresh_airflow_masker: None) -> None:
    from airflow_provider_plugz._compat import mask_secret

    remember(OUT_TOKEN)
    mask_secret(MASKED_ONLY)
    mask_secret(MASKED_PIN)


def _forms(instance: str, token: str) -> dict[str, str]:
    """The instance URL of ``instance`` and ``token`` in each shape a text may quote it in."""
    path = "/instances/XINSTANCEX/token/XTOKENX/send-text"
    url = f"https://api.plugzapi.com.br{path}"
    forms = {
        "url": url,
        "path": path,
        "no-leading-slash": path[1:],
        "percent-encoded": quote(url, safe=""),
        "percent-encoded-twice": quote(quote(url, safe=""), safe=""),
        "json-escaped": url.replace("/", "\\/"),
        "upper-case": url.upper(),
    }
    values = {"XINSTANCEX": instance, "XTOKENX": token}
    return {
        name: re.sub("XINSTANCEX|XTOKENX", lambda m: values[m.group()], form) for name, form in forms.items()
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        *(
            pytest.param(f"Task failed: {form}!", f"Task failed: {clean}!", id=f"instance-url-{name}")
            for (name, form), clean in zip(
                _forms("3C0FFEE1D", "UNKN0WNT0KEN").items(), _forms("***", "***").values(), strict=True
            )
        ),
        pytest.param(
            "GET /x?token=abc&dag_id=d&client_token=zz#top",
            "GET /x?token=***&dag_id=d&client_token=***#top",
            id="query-string-tokens",
        ),
        pytest.param("u%3Fpin%3D1234%26a%3Db", "u%3Fpin%3D***%26a%3Db", id="query-string-percent-encoded"),
        pytest.param("https://user:pw@host/x", "https://***@host/x", id="url-user-info"),
        pytest.param(
            "headers={'Client-Token': 'S0meC1ient', 'Accept': '*/*'}",
            "headers={'Client-Token': '***', 'Accept': '*/*'}",
            id="client-token-field",
        ),
        pytest.param(f"token {OUT_TOKEN.lower()} refused", "token *** refused", id="remembered-secret"),
        pytest.param(f"client token {MASKED_ONLY}.", "client token ***.", id="airflow-masked-secret"),
        pytest.param(f"PIN {MASKED_PIN} rejected", "PIN *** rejected", id="airflow-masked-pin"),
        pytest.param(MASKED_ONLY, "***", id="all-secret-is-never-empty"),
        pytest.param(
            "*Airflow: task failed*\nDAG: nightly_sync\nTask: load [3]\nTry: 2\n"
            "Log: http://airflow.example/dags/d/runs/r/tasks/load?try_number=2&map_index=3",
            "*Airflow: task failed*\nDAG: nightly_sync\nTask: load [3]\nTry: 2\n"
            "Log: http://airflow.example/dags/d/runs/r/tasks/load?try_number=2&map_index=3",
            id="default-alert-text-kept",
        ),
        pytest.param(
            "http://localhost:8080/dags/d/grid?dag_run_id=scheduled__2026-01-02T00%3A00%3A00%2B00%3A00",
            "http://localhost:8080/dags/d/grid?dag_run_id=scheduled__2026-01-02T00%3A00%3A00%2B00%3A00",
            id="airflow-2-run-link-kept",
        ),
        pytest.param(
            "Call +55 11 98765-4321 about order 20261207 (5 instances, token bucket: full)",
            "Call +55 11 98765-4321 about order 20261207 (5 instances, token bucket: full)",
            id="ordinary-text-kept",
        ),
        pytest.param("", "", id="empty-stays-empty"),
    ],
)
@pytest.mark.usefixtures("outgoing_secrets")
def test_redact_outgoing(text: str, expected: str) -> None:
    from airflow_provider_plugz._redaction import redact_outgoing

    assert redact_outgoing(text) == expected


SEGMENT = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~", min_size=1, max_size=40
)


@given(
    SEGMENT, SEGMENT, st.sampled_from(sorted(_forms("i", "t"))), st.sampled_from(["", " ", "\n", "'", ")"])
)
def test_redact_outgoing_leaves_no_instance_credentials(
    instance: str, token: str, form: str, end: str
) -> None:
    from airflow_provider_plugz._redaction import redact_outgoing

    text = f"failed: {_forms(instance, token)[form]}{end}"
    assert redact_outgoing(text) == f"failed: {_forms('***', '***')[form]}{end}"


def _masker_redact_targets() -> list[object]:
    """Each of Airflow's maskers' modules the package reads (the first importable of each group)."""
    import importlib

    from airflow_provider_plugz import _compat

    modules = []
    for candidates in _compat._MASKER_MODULES:
        for name in candidates:
            try:
                modules.append(importlib.import_module(name))
            except ImportError:
                continue
            break
    return modules


def _raises(value: object) -> str:
    raise RuntimeError if value == "runtime" else KeyError(f"masker broke on {MASKED_ONLY}")


@pytest.mark.parametrize(
    ("replacement", "expected"),
    [
        pytest.param(lambda value: "<redaction-failed>", "unchecked", id="masker-says-failed"),
        pytest.param(lambda value: {"not": "a text"}, "unchecked", id="masker-returns-no-text"),
        pytest.param(lambda value: _raises("other"), "unchecked", id="masker-raises"),
        # Airflow 2 without its masker in the logging config: nothing can have been registered.
        pytest.param(lambda value: _raises("runtime"), "kept", id="masker-not-set-up"),
    ],
)
def test_redact_outgoing_withholds_what_airflows_masker_could_not_check(
    monkeypatch: pytest.MonkeyPatch, replacement: object, expected: str
) -> None:
    from airflow_provider_plugz._compat import AIRFLOW_V3
    from airflow_provider_plugz._redaction import UNCHECKED, redact_outgoing

    for module in _masker_redact_targets():
        if AIRFLOW_V3:
            monkeypatch.setattr(module, "redact", replacement)
        else:  # Airflow 2 is read through its masker's patterns (see _compat._redact_airflow2)
            monkeypatch.setattr(module, "_secrets_masker", lambda: replacement(None))
    text = f"disk full on {MASKED_ONLY}"
    assert redact_outgoing(text) == (UNCHECKED if expected == "unchecked" else text)
    assert MASKED_ONLY not in UNCHECKED


@pytest.mark.parametrize(
    ("registered", "text", "expected"),
    [
        pytest.param(" ", "disk full on db-1", "disk full on db-1", id="blank-password"),
        pytest.param("a", "a task failed", "a task failed", id="one-letter-password"),
        pytest.param("hunter2pw", "hunter2pw task failed", "*** task failed", id="five-or-more-masked"),
        pytest.param("  pw  ", "the pw is wrong", "the pw is wrong", id="short-once-stripped"),
        pytest.param("s3cr3t!pw", "login s3cr3t!pw failed", "login *** failed", id="special-characters"),
    ],
)
def test_redact_outgoing_ignores_values_airflow_3_would_never_mask(
    fresh_airflow_masker: None, registered: str, text: str, expected: str
) -> None:
    """Airflow 2 registers any non-empty value (a blank connection password): an alert must not
    lose every space or letter of it; on both Airflows what reaches the masker as a secret of 5 or
    more characters is hidden."""
    from airflow_provider_plugz._compat import mask_secret
    from airflow_provider_plugz._redaction import redact_outgoing

    mask_secret(registered)
    assert redact_outgoing(text) == expected


_DIGITS = "0123456789" + fullwidth("0123456789") + written_in(ARABIC_INDIC, "0123456789")


@given(st.text(alphabet=_DIGITS + " \u00a0\u2009\u200b?x+%", max_size=300))
def test_mask_phones_leaves_no_eight_digits_of_any_script_together(text: str) -> None:
    import unicodedata

    shown = "".join(str(unicodedata.digit(ch)) if ch in _DIGITS else ch for ch in mask_phones(text))
    assert re.search(r"[0-9](?:[ \u00a0\u2009\u200b?]?[0-9]){7}", shown) is None
