"""At most once through Airflow's retries: a durable record of each state-changing request.

A message sent twice is something a person reads, so the hook never resends a request that may
have reached Plugz. That is not enough once Airflow is in the loop: a task retry, a worker lost
mid-request or a manual clear starts the task again, and the new try would send again. So a
task that changes state (:class:`~.messages.PlugzSendMessageOperator`,
:class:`~.plugz.PlugzSetPinOperator`) keeps an :class:`AttemptLedger`:

- ``sending`` is written *before* the request leaves (a worker killed after that still left its
  mark), ``sent`` once Plugz confirmed it (with the ids it answered), and the record is removed
  when the request provably never left or the server refused it (nothing to guard).
- A later try of the same task instance (same DAG, run, task and map index) reads it first: after
  ``sent`` it reports the earlier result instead of sending again; after ``sending`` the outcome
  is unknown and it fails without a retry (:class:`~..exceptions.PlugzOutcomeUnknownError`),
  unless the task was built with ``allow_resend=True``.

Where the record lives: Airflow 3.3+'s task state store (``context["task_state_store"]``, scoped
to the task instance and kept across its tries, expired after ``[state_store]
default_retention_days``); on older Airflows an Airflow Variable named ``plugz_once_<hash>``
whose description names the task instance. Neither holds a phone number, a text or a secret.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from airflow_provider_plugz.exceptions import PlugzError, PlugzOutcomeUnknownError

if TYPE_CHECKING:
    from collections.abc import Mapping

#: The record's states.
SENDING, SENT = "sending", "sent"
#: The key of the record in Airflow's task state store.
RECORD_KEY = "plugz_once"
#: The prefix of the Variable that holds the record where there is no task state store.
VARIABLE_PREFIX = "plugz_once_"
_MAX_RECORD = 4096  # a record we wrote is ~200 bytes; anything bigger is not ours

log = logging.getLogger(__name__)


class RecordStore(Protocol):
    """Where one task instance's record lives: Airflow's task state store, or a Variable."""

    def get(self, key: str) -> Any: ...
    def set(self, key: str, value: Any) -> None: ...
    def delete(self, key: str) -> None: ...


@dataclass(frozen=True)
class Attempt:
    """An earlier try's record: its state, its try number, when, and what Plugz answered."""

    state: str
    try_number: int
    at: str
    result: dict[str, str] | None = None


class AttemptLedger:
    """The record of one task instance's state-changing request (see the module docstring).

    :param store: Airflow's task state store, or a :class:`VariableStore`.
    :param try_number: this try's number (1 for the first).
    :param what: what is sent, for messages ("the WhatsApp message", "the PIN").
    """

    def __init__(self, store: RecordStore, key: str, try_number: int, what: str) -> None:
        self.store = store
        self.key = key
        self.try_number = try_number
        self.what = what

    @classmethod
    def for_task(cls, context: Mapping[str, Any], what: str) -> AttemptLedger:
        """The ledger of the running task instance: its task state store, else a Variable."""
        ti = context.get("ti")
        if ti is None:
            raise PlugzError(
                f"Plugz: {what} is sent at most once per task instance, which needs the task's "
                "context (context['ti']); run it as an Airflow task (dag.test() works too)."
            )
        try_number = ti.try_number if isinstance(ti.try_number, int) else 1
        store = context.get("task_state_store")
        if store is not None:
            return cls(store, RECORD_KEY, try_number, what)
        identity = (ti.dag_id, ti.task_id, ti.run_id, ti.map_index)
        return cls(VariableStore(identity), VariableStore.name_for(identity), try_number, what)

    def earlier(self) -> Attempt | None:
        """The record an earlier try left, or None. A record we cannot read counts as ``sending``."""
        raw = self._call("read", self.store.get, self.key, after="Nothing was sent.")
        if raw is None:
            return None
        record = raw if isinstance(raw, dict) else _json_object(raw)
        if record is None or record.get("state") not in (SENDING, SENT):
            return Attempt(SENDING, 0, "unknown")
        try_number = record.get("try")
        result = record.get("result")
        if not (isinstance(result, dict) and all(isinstance(v, str) for v in result.values())):
            result = None
        state = record["state"] if result is not None or record["state"] == SENDING else SENDING
        return Attempt(
            state,
            try_number if type(try_number) is int else 0,
            str(record.get("at", "unknown"))[:40],
            result,
        )

    def record_sending(self) -> None:
        """Write ``sending``: from here on, a later try assumes this one may have sent."""
        self._write(SENDING, None)

    def record_sent(self, result: dict[str, str]) -> None:
        """Write ``sent`` with Plugz's answer (ids only).

        It was sent: a failure here only logs (``sending`` stays, so a later try sends nothing).
        """
        try:
            self._write(SENT, result)
        except PlugzError as err:
            log.warning("%s", err)

    def forget(self) -> None:
        """Remove the record: the request never left, or the server refused it.

        A failure only logs: the ``sending`` left behind makes a later try refuse, the safe side.
        """
        try:
            self._call("remove", self.store.delete, self.key, after="A later try will not send it.")
        except PlugzError as err:
            log.warning("%s", err)

    def outcome_unknown(self, error: PlugzError) -> PlugzOutcomeUnknownError:
        """The error of a try whose request may have reached Plugz (``error`` said why not sure)."""
        text, advice = str(error), type(error).advice
        if advice and text.endswith(advice):  # "try again later" is the one thing not to do here
            text = text[: -len(advice)].rstrip()
        return PlugzOutcomeUnknownError(
            f"{text} Plugz may have received {self.what} (try {self.try_number}): the task fails "
            f"without an Airflow retry, which would send it again. {PlugzOutcomeUnknownError.advice}",
            http_status=error.http_status,
            server_message=error.server_message,
        )

    def refused_after(self, earlier: Attempt) -> PlugzOutcomeUnknownError:
        """The error of a try that will not send because an earlier one may have."""
        which = f"try {earlier.try_number}" if earlier.try_number else "an earlier try"
        return PlugzOutcomeUnknownError(
            f"Plugz: {which} of this task instance (started {earlier.at}) may have sent {self.what} "
            f"and did not live to see the answer, so try {self.try_number} does not send it again. "
            f"{PlugzOutcomeUnknownError.advice}"
        )

    def _write(self, state: str, result: dict[str, str] | None) -> None:
        at = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        record: dict[str, Any] = {"state": state, "try": self.try_number, "at": at}
        if result is not None:
            record["result"] = result
        after = "Nothing was sent." if state == SENDING else "A later try will not send it again."
        self._call("write", self.store.set, self.key, record, after=after)

    def _call(self, action: str, function: Any, *args: Any, after: str) -> Any:
        try:
            return function(*args)
        except PlugzError:
            raise
        except Exception as exc:
            raise PlugzError(
                f"Plugz: could not {action} the record that keeps {self.what} from being sent twice "
                f"({type(exc).__name__}). {after} Check that the worker reaches Airflow's metadata "
                "database or API server."
            ) from None


class VariableStore:
    """A record in an Airflow Variable, for Airflows without a task state store (before 3.3)."""

    def __init__(self, identity: tuple[Any, ...]) -> None:
        self.identity = identity

    @staticmethod
    def name_for(identity: tuple[Any, ...]) -> str:
        digest = hashlib.sha256(json.dumps([str(part) for part in identity]).encode()).hexdigest()
        return VARIABLE_PREFIX + digest[:32]

    def get(self, key: str) -> Any:
        from airflow_provider_plugz._compat import get_variable

        return get_variable(key)

    def set(self, key: str, value: Any) -> None:
        from airflow_provider_plugz._compat import Variable

        dag_id, task_id, run_id, map_index = self.identity
        description = f"airflow-provider-plugz send-once record of {dag_id}.{task_id} in {run_id}"
        if map_index not in (None, -1):
            description += f" [{map_index}]"
        Variable.set(key, json.dumps(value), description=description[:500])

    def delete(self, key: str) -> None:
        from airflow_provider_plugz._compat import Variable

        Variable.delete(key)


def _json_object(raw: Any) -> dict[str, Any] | None:
    if not isinstance(raw, str) or len(raw) > _MAX_RECORD:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
