"""The declarations every call and every fact are made of, and nothing else: light to import.

:class:`Endpoint` holds all there is to know about one API call (with :class:`Body`, what its
``body`` builds, and :class:`Malformed` / :class:`BadArgument`, what its functions raise);
:class:`Fact` what the fleet audit can check per number and the event watcher can watch, declared
beside its endpoint in :mod:`airflow_provider_plugz.endpoints` (``FACTS``). A fact says which call
answers it and how that answer becomes

- a **state**, a small JSON value (``True``/``False``, ``"connected"``, ``"queued"``) that the
  audit counts and fails on and the watcher compares from one poll to the next, and
- a **column**: the JSON an audit entry holds for it (checked field by field when a report is
  read back from XCom) and the words the task log uses.

Everything else - audit entries, counts, ``fail_*`` options, log lines, the failure message, the
watcher's events and their names - is written once for every fact, in the audit package and in
:mod:`airflow_provider_plugz.triggers.events`. So a read call becomes auditable and watchable by
declaring its fact; nothing is written for "PIN" or "status" elsewhere.

Standard library only, and so :mod:`airflow_provider_plugz.endpoints`, which declares with it:
the event watcher and the audit operator read the declarations when a DAG file is parsed and when
the triggerer (on its event loop) builds a watcher. The machinery that sends and reads calls is
:mod:`airflow_provider_plugz._protocol`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, TypeVar

if TYPE_CHECKING:
    from airflow_provider_plugz._protocol import Answer

T = TypeVar("T")
R = TypeVar("R")

#: An answer body's default bound (decoded bytes), as :mod:`~airflow_provider_plugz.transports.body`
#: applies it (that module's constant; restated here to keep the declarations standard-library only).
MAX_BODY_BYTES = 1024 * 1024

#: A column's JSON (one audit entry's fields for one fact), and a state.
Fields = Mapping[str, Any]
State = Hashable


# --- calls -------------------------------------------------------------------------------------


class Malformed(Exception):
    """Raised by an endpoint's ``parse`` with what is wrong with the answer, in words."""


class BadArgument(Exception):
    """Raised by an endpoint's ``body`` with what is wrong with the caller's argument (never its value)."""


class Body(NamedTuple):
    """A request body (JSON-serialisable; :class:`Secret` values are revealed only on the wire).

    ``secrets`` (a PIN) are registered with Airflow's masker before sending and redacted from
    whatever the server answers; ``private`` values (a phone number, a message text: personal
    data, not secrets) are only redacted from the answer, so no error text repeats them.
    """

    json: Any
    secrets: tuple[str, ...] = ()
    private: tuple[str, ...] = ()

    def __repr__(self) -> str:
        # The JSON holds the PIN, the recipient and the text: only its shape and the counts show.
        keys = list(self.json) if isinstance(self.json, Mapping) else type(self.json).__name__
        hidden = f"secrets=<{len(self.secrets)} hidden>, private=<{len(self.private)} hidden>"
        return f"Body(json={keys!r}, {hidden})"


def _no_state(payload: Mapping[str, Any]) -> bool:
    return False


@dataclass(frozen=True, eq=False)  # one object per call: compared by identity
class Endpoint(Generic[T]):
    """Everything about one API call, declared once (see :mod:`airflow_provider_plugz.endpoints`).

    :param method: the HTTP method.
    :param path: the path below ``/instances/<id>/token/<token>/``.
    :param action: what the call does, in the words every message about it uses.
    :param parse: the answer's JSON object -> the typed result; raises :class:`Malformed`.
    :param idempotent: may be sent again after it may have reached the server (a read timeout,
        a dropped connection, a 5xx); a call that changes state is not, and is retried only
        when it provably never left.
    :param body: the caller's arguments -> the request :class:`Body`, validated; raises
        :class:`BadArgument`. None: the call takes no arguments and sends no body.
    :param error_is_state: whether an ``error`` text in a 200 answer is part of the result
        (``/status`` says why it is disconnected) rather than a failure (the PIN calls).
    :param array_key: for a call that may answer a bare JSON array (a list of things): ``parse``
        then gets ``{array_key: [...]}``; None (the default): the answer must be an object.
    :param max_body: the largest answer body read, decoded (1 MiB unless a call's answers can be
        larger, as a listing); one byte more is refused as too large.
    """

    method: str
    path: str
    action: str
    parse: Callable[[Answer], T]
    idempotent: bool = True
    body: Callable[..., Body] | None = None
    error_is_state: Callable[[Mapping[str, Any]], bool] = _no_state
    array_key: str | None = None
    max_body: int = MAX_BODY_BYTES


# --- reading an answer's fields (for ``parse`` functions) ---------------------------------------


def flag(answer: Answer, key: str, *, optional: bool = False) -> bool | None:
    """A documented boolean field (with ``optional``, null or absent gives None); else malformed."""
    value = answer.payload.get(key)
    if isinstance(value, bool) or (optional and value is None):
        return value
    raise Malformed(f"it has no {key!r} field" if key not in answer.payload else f"{key!r} is not a boolean")


def text_field(answer: Answer, key: str, where: str = "") -> str | None:
    """A documented string field as server text (see :meth:`Answer.text`): None when absent,
    null or blank; any other JSON type is malformed."""
    value = answer.payload.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise Malformed(f"'{where}{key}' is not a text")
    return (answer.text(key) or "").strip() or None


#: The longest link :func:`link_field` keeps.
MAX_LINK = 2048


def link_field(answer: Answer, key: str) -> str | None:
    """A documented link field (``imgUrl``), whole or None: None also when it is not one printable
    line of at most :data:`MAX_LINK` characters or holds anything :meth:`Answer.text` would mask or
    redact (a phone-like number, a secret, instance credentials)."""
    value = answer.payload.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise Malformed(f"'{key}' is not a text")
    from airflow_provider_plugz._redaction import mask_phones, redact, sanitize

    link = value.strip()
    shown = mask_phones(redact(sanitize(link, MAX_LINK), answer.secrets))
    return link if shown == link else None


# --- facts -------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False, repr=False)  # one object per fact; cheap to declare
class Fact(Generic[R]):
    """One thing the audit can check per number and the watcher can watch (see the module).

    :param name: how users name it: the audit's ``checks`` and the watcher's ``watch``.
    :param endpoint: the call that answers it (a read: idempotent, no arguments).
    :param fields: the call's result -> the column's JSON (secret-free, personal data left out).
    :param read_fields: a column's JSON read back from XCom -> the same, every field checked;
        raises ValueError saying what is wrong, never quoting a text of it.
    :param state: a column's JSON -> its state.
    :param states: every state, in the order the report counts them, -> the count's name.
    :param words: every state -> how the log says it (problems in capitals).
    :param is_bad: whether a state is a finding (``fail_option`` fails on it).
    :param fail_option: the audit operators' option that fails the task on a bad state.
    :param problem: the failure message's words for the numbers in a bad state ("have NO PIN").
    :param column: the key of its column in an audit entry (the primary fact's fields are the
        entry itself); the watcher's events name the fact by ``name``.
    :param errors_count: the count of numbers whose column could not be read.
    :param title: the log summary's name for it ("Connection status").
    :param describe: a column's JSON -> a few words for the log.
    :param baseline: a bad first observation's ``change`` name in the watcher's events.
    :param change: (old state, new state) -> a change's ``change`` name in the watcher's events.
    :param doing: what a failure of the call was doing, for an entry's text ("reading the status of").
    """

    name: str
    endpoint: Endpoint[R]
    fields: Callable[[R], dict[str, Any]]
    read_fields: Callable[[Any], dict[str, Any]]
    state: Callable[[Fields], State]
    states: Mapping[State, str]
    words: Mapping[State, str]
    is_bad: Callable[[State], bool]
    fail_option: str
    problem: str
    column: str
    errors_count: str
    title: str
    describe: Callable[[Fields], str]
    baseline: str
    change: Callable[[State, State], str]
    doing: str

    def __repr__(self) -> str:
        return f"Fact({self.name!r})"

    @property
    def counts(self) -> tuple[str, ...]:
        """The report's counts for this fact: one per state, then the numbers not read."""
        return (*self.states.values(), self.errors_count)

    @property
    def shows_state(self) -> bool:
        """Whether a finding names its state (several states are bad, e.g. ``session_lost``)."""
        return sum(1 for state in self.states if self.is_bad(state)) > 1

    def state_of(self, result: R) -> State:
        """The state of a call's result."""
        return self.state(self.fields(result))


def facts_by_name(facts: tuple[Fact[Any], ...]) -> Mapping[str, Fact[Any]]:
    """``{fact.name: fact}``, refusing two facts of one name or one column or one count."""
    names = [fact.name for fact in facts]
    columns = [fact.column for fact in facts]
    counts = [count for fact in facts for count in fact.counts]
    for what, values in (("name", names), ("column", columns), ("count", counts)):
        doubled = sorted({value for value in values if values.count(value) > 1})
        if doubled:
            raise ValueError(f"two facts declare the same {what}: {', '.join(doubled)}")
    return {fact.name: fact for fact in facts}


# --- checking a column read back from XCom (nothing in it is trusted) ------------------------

#: The longest text a report holds (an entry's ``message``, a status ``reason``).
MAX_TEXT_LENGTH = 4096
#: A key name short and plain enough to be quoted in a message.
_KEY_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,39}")


def expect_keys(xcom: dict[Any, Any], keys: set[str], what: str) -> None:
    """ValueError unless ``xcom`` has exactly ``keys``; quotes only short key names."""
    if set(xcom) == keys:
        return
    missing = sorted(keys.difference(xcom))
    extra = [key for key in xcom if key not in keys]
    parts = []
    if missing:
        parts.append(f"lacks {', '.join(map(repr, missing))}")
    if extra:
        named = [repr(key) for key in extra[:5] if isinstance(key, str) and _KEY_NAME.fullmatch(key)]
        others = len(extra) - len(named)
        shown = ", ".join([*named, *([f"{others} other(s)"] if others else [])])
        parts.append(f"has unexpected keys ({shown})")
    raise ValueError(f"{what} {' and '.join(parts)}; expected exactly {', '.join(sorted(keys))}")


def kind(value: Any) -> str:
    """What ``value`` is, for a message, never what it holds (it may be a phone number)."""
    if value is None:
        return "null"
    if isinstance(value, str):
        return f"a string of {len(value):,} character(s)"
    name = type(value).__name__
    return f"{'an' if name[:1] in 'aeiou' else 'a'} {name}"


def checked_text(value: Any, what: str) -> str:
    """A report's text field: a string of at most :data:`MAX_TEXT_LENGTH` characters."""
    if not isinstance(value, str) or len(value) > MAX_TEXT_LENGTH:
        raise ValueError(
            f"{what} must be a string of at most {MAX_TEXT_LENGTH:,} characters, got {kind(value)}"
        )
    return value


def cut(text: str) -> str:
    """``text`` within :data:`MAX_TEXT_LENGTH` characters, so that its report reads back."""
    return text if len(text) <= MAX_TEXT_LENGTH else text[: MAX_TEXT_LENGTH - 1] + "…"
