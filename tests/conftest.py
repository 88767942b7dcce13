"""Shared test setup: a throwaway Airflow home, no network but loopback, Airflow helpers.

The Airflow environment is set at import time, before any test module imports ``airflow``:
Airflow reads its home and database URL when first imported.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import re
import shutil
import socket
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_plugz.testing.dag_run import configure_airflow_home

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow_provider_plugz.testing import PlugzSandbox

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_DAGS = ROOT / "example_dags"
AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="plugz-tests-airflow-"))
configure_airflow_home(AIRFLOW_HOME, EXAMPLE_DAGS)

# With PYTHONDONTWRITEBYTECODE set (as on our CI machines) every run recompiles Airflow:
# `import airflow` takes ~6 s of CPU instead of ~3 s. Keep bytecode in a cache beside the tests,
# for the processes the tests start too (`airflow tasks test`, the demo, import measurements).
if sys.dont_write_bytecode and not sys.pycache_prefix:
    sys.dont_write_bytecode = False
    sys.pycache_prefix = str(ROOT / ".cache" / "pycache")
if sys.pycache_prefix:
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = sys.pycache_prefix


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(AIRFLOW_HOME, ignore_errors=True)


# pytest-xdist (`make test` runs `-n auto --dist loadgroup`): every worker is a process of its own,
# so AIRFLOW_HOME above (its SQLite database included) is per worker, and ports are picked free.
# Tests that share one expensive set-up run on one worker, as one group: the folders whose session
# fixture builds the wheel into a venv and which start real Airflow processes, and the module whose
# tests read one interpreter's import measurements. The groups are named by path: xdist's own
# `xdist_group` mark works by a node-id suffix that pytest 9 no longer keeps.
XDIST_GROUPS = ("tests/deployment/", "tests/distributed/", "tests/browser/", "tests/test_import_cost.py")


@pytest.hookimpl(optionalhook=True)  # only called when pytest-xdist is loaded
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    if config.getoption("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    class PathGroupScheduling(LoadGroupScheduling):
        def _split_scope(self, nodeid: str) -> str:
            group = next((g for g in XDIST_GROUPS if nodeid.startswith(g)), None)
            return group or super()._split_scope(nodeid)

    return PathGroupScheduling(config, log)


# Distinctive, realistic-length secrets: long enough for Airflow's masker (>= 5 chars) and
# easy to grep for in any text a test captures.
INSTANCE_ID = "3C0FFEE1NSTANCE0000000000000001"
INSTANCE_TOKEN = "T0KEN5ECRET0000000000000000001"
CLIENT_TOKEN = "F1C11E7T0KEN5ECRET00000000001"
SECRETS = (INSTANCE_TOKEN, CLIENT_TOKEN)


def _is_loopback(address: Any) -> bool:
    host = address[0] if isinstance(address, tuple) else address
    if isinstance(host, bytes) or (isinstance(host, str) and host.startswith("/")):
        return True  # AF_UNIX socket paths (asyncio's self-pipe, etc.)
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any test that tries to reach beyond 127.0.0.0/8 (or ::1)."""
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def guard(address: Any) -> None:
        if not _is_loopback(address):
            raise OSError(f"tests may only use loopback, not {address!r}")

    def connect(self: socket.socket, address: Any) -> None:
        guard(address)
        return real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        guard(address)
        return real_connect_ex(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host is not None:
            name = host.decode() if isinstance(host, bytes) else str(host)
            if name != "localhost":
                guard(name)
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.fixture
def sandbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[PlugzSandbox]:
    """A Plugz sandbox with the secrets above, and ``plugz_default`` pointing at its instance."""
    from airflow_provider_plugz.testing import PlugzSandbox

    with PlugzSandbox(client_token=CLIENT_TOKEN) as sb:
        sb.add_instance(INSTANCE_ID, INSTANCE_TOKEN)
        monkeypatch.setenv("AIRFLOW_CONN_PLUGZ_DEFAULT", sb.connection_json(INSTANCE_ID))
        yield sb


@pytest.fixture(autouse=True)
def _fresh_secret_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with no remembered secrets: another test's fixture values (some hold
    words such as "INSTANCE") must not redact this test's texts."""
    from airflow_provider_plugz import _redaction

    monkeypatch.setattr(_redaction, "_KNOWN", _redaction._Index())


ALERTS_INSTANCE_ID = "A1ER75NSTANCE00000000000000001"
ALERTS_TOKEN = "A1ER75T0KEN5ECRET000000000001"
ONCALL_PHONE = "5511987650123"


@pytest.fixture
def alerts(sandbox: PlugzSandbox, monkeypatch: pytest.MonkeyPatch) -> PlugzSandbox:
    """``plugz_alerts`` on a second instance of ``sandbox``, and the Variable ``plugz_oncall_phone``."""
    sandbox.add_instance(ALERTS_INSTANCE_ID, ALERTS_TOKEN)
    monkeypatch.setenv("AIRFLOW_CONN_PLUGZ_ALERTS", sandbox.connection_json(ALERTS_INSTANCE_ID))
    monkeypatch.setenv("AIRFLOW_VAR_PLUGZ_ONCALL_PHONE", ONCALL_PHONE)
    return sandbox


@pytest.fixture(autouse=True)
def retry_sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Retries never sleep for real in tests; the waits they asked for are recorded here."""
    from airflow_provider_plugz.hooks import plugz

    waits: list[float] = []

    async def asleep(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr(plugz, "_sleep", waits.append)
    monkeypatch.setattr(plugz, "_asleep", asleep)
    return waits


class FakeTaskInstance:
    """Just enough of a TaskInstance for operators (``xcom_push``) and sensors in reschedule
    mode (Airflow 2 reads the identifying fields); what was pushed is kept in ``pushed``."""

    dag_id, task_id, run_id, map_index, max_tries, try_number = "tests", "task", "run", -1, 0, 1

    def __init__(self) -> None:
        self.pushed: dict[str, Any] = {}

    def get_first_reschedule_date(self, context: Any) -> None:
        return None

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


class FakeTaskStateStore:
    """Airflow 3.3's ``context["task_state_store"]`` as a dict (``values`` outlives a try)."""

    def __init__(self, values: dict[str, Any] | None = None) -> None:
        self.values = {} if values is None else values

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def set(self, key: str, value: Any) -> None:
        assert value is not None
        self.values[key] = value

    def delete(self, key: str) -> None:
        self.values.pop(key, None)


def task_context(store: FakeTaskStateStore | None = None, try_number: int = 1) -> Any:
    """A context for ``execute()`` outside Airflow: the task instance and its task state store."""
    ti = FakeTaskInstance()
    ti.try_number = try_number
    return {"ti": ti, "task_state_store": store or FakeTaskStateStore()}


def zapi_device_answer(phone: str) -> dict[str, Any]:
    """Z-API's current ``/device`` page example, verbatim but for ``phone``."""
    return {
        "phone": phone,
        "imgUrl": "https://exemplo.com/foto-perfil.jpg",
        "about": "Recado do perfil do contato",
        "name": "Nome do Perfil",
        "device": {"sessionName": "Z-API", "device_model": "Z-API"},
        "originalDevice": "android",
        "sessionId": 175,
        "isBusiness": False,
    }


def zapi_device_examples(phone: str) -> list[Any]:
    """Z-API's two ``/device`` page examples (current; older, a number not paired yet) and what
    each must read as: ``device_model`` there names the session software, never the phone's model."""
    from airflow_provider_plugz.endpoints import DeviceInfo

    not_paired = {
        "phone": "",
        "imgUrl": "",
        "name": "",
        "device": {"sessionName": "Z-API", "device_model": "Z-API"},
        "sessionId": 66,
        "isBusiness": True,
    }
    current = DeviceInfo(
        phone=phone,
        img_url="https://exemplo.com/foto-perfil.jpg",
        platform="android",
        name="Nome do Perfil",
        about="Recado do perfil do contato",
        is_business=False,
        session_name="Z-API",
        session_id=175,
    )
    return [
        pytest.param(zapi_device_answer(phone), current, id="z-api-docs-example"),
        pytest.param(
            not_paired,
            DeviceInfo(phone=None, is_business=True, session_name="Z-API", session_id=66),
            id="z-api-older-docs-example-not-paired",
        ),
    ]


def fullwidth(text: str) -> str:
    """``text`` in fullwidth forms (U+FF01...), as East Asian input methods write "+55 (11)"."""
    return "".join(chr(ord(ch) + 0xFEE0) if "!" <= ch <= "~" else ch for ch in text)


#: The zero of other scripts' digits, for :func:`written_in`.
ARABIC_INDIC, PERSIAN, DEVANAGARI = "\u0660", "\u06f0", "\u0966"
_SUPERSCRIPT = str.maketrans("0123456789", "\u2070\u00b9\u00b2\u00b3\u2074\u2075\u2076\u2077\u2078\u2079")


def written_in(zero: str, text: str) -> str:
    """``text`` with its digits in the script whose zero is ``zero`` (``"^"``: superscript)."""
    if zero == "^":
        return text.translate(_SUPERSCRIPT)
    return "".join(chr(ord(zero) + int(ch)) if "0" <= ch <= "9" else ch for ch in text)


#: A server text echoing the number behind an instance (5511987654321) in shapes a server may
#: write it, and what every place that shows the text must show instead.
PHONE_ECHOES = [
    pytest.param(
        "You are not connected. Number +5511987654321 ...",
        "You are not connected. Number *** ...",
        id="ascii",
    ),
    pytest.param(
        f"Número {fullwidth('+55 (11) 98765-4321')} desconectado", "Número *** desconectado", id="fullwidth"
    ),
    pytest.param(
        f"Number {written_in(ARABIC_INDIC, '5511987654321')} is offline",
        "Number *** is offline",
        id="arabic-indic",
    ),
    pytest.param("Number 5511\u200b98765\u200b4321 lost", "Number *** lost", id="split-by-zero-width"),
    pytest.param("session of 5511987654321@c.us lost", "session of ***@c.us lost", id="whatsapp-id"),
    pytest.param("scan /qr?phone=%2B55%2011%2098765-4321", "scan /qr?phone=***", id="percent-encoded"),
]


#: A loopback address and port, as the sandbox's URLs hold them.
LOOPBACK_PORT = re.compile(r"(127\.0\.0\.1|localhost|\[::1\]):[0-9]+")


def assert_no_phone(*texts: str) -> None:
    """No text shows a run of the number in :data:`PHONE_ECHOES`, in any script's digits."""
    import unicodedata

    for text in texts:
        shown = "".join(str(unicodedata.digit(ch, "")) if ch.isdigit() else ch for ch in text)
        # The sandbox's port is the OS's choice: 45511 or 54321 in a URL is no phone number.
        shown = LOOPBACK_PORT.sub(r"\1:<port>", shown)
        for run in ("5511", "98765", "4321"):
            assert run not in shown, f"a phone number leaked into: {text[:200]!r}"


def assert_no_secrets(*texts: str, secrets: tuple[str, ...] = (*SECRETS, INSTANCE_ID)) -> None:
    """None of the distinctive secrets above (or ``secrets``) is in any of ``texts``."""
    for text in texts:
        for secret in secrets:
            assert secret not in text, f"a secret leaked into: {text[:200]!r}"


async def trigger_events(trigger: Any, timeout: float = 10) -> list[dict[str, Any]]:
    """Every event a trigger fires until its ``run()`` ends (bounded by ``timeout``)."""

    async def collect() -> list[dict[str, Any]]:
        return [event.payload async for event in trigger.run()]

    return await asyncio.wait_for(collect(), timeout)


class _CurrentStdout:
    """Writes to whatever sys.stdout is now, so pytest's capture sees Airflow's root handler."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


@pytest.fixture
def captured_logs(capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Any:
    """Everything logged or printed while the test runs: fd-level output and every log record."""
    import logging

    for handler in logging.getLogger().handlers:
        if type(handler) is logging.StreamHandler:
            monkeypatch.setattr(handler, "stream", _CurrentStdout())
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(f"{record.getMessage()} {record.exc_text or ''} {record.args!r}")

    keep = Keep(level=logging.DEBUG)
    logging.getLogger().addHandler(keep)

    def read() -> str:
        out, err = capfd.readouterr()
        return "\n".join([out, err, *records])

    yield read
    logging.getLogger().removeHandler(keep)


def make_connection(conn_id: str = "plugz_default", **fields: Any) -> Any:
    """An Airflow SDK ``Connection`` of type plugz with valid defaults, overridable per field."""
    from tests.airflow_compat import Connection

    values: dict[str, Any] = {
        "conn_type": "plugz",
        "login": INSTANCE_ID,
        "password": INSTANCE_TOKEN,
        "extra": {"client_token": CLIENT_TOKEN},
    }
    values.update(fields)
    extra = values.pop("extra")
    return Connection(conn_id=conn_id, extra=None if extra is None else _json(extra), **values)


def _json(value: Any) -> str:
    import json

    return value if isinstance(value, str) else json.dumps(value)


@pytest.fixture(scope="session")
def airflow_db() -> Iterator[Path]:
    """Metadata tables in the throwaway home, and Airflow's in-process task API warmed up."""
    import time

    from airflow_provider_plugz.testing.dag_run import init_metadata_db
    from tests.airflow_compat import DAG_TEST_CODE, warm_up_task_api

    init_metadata_db()
    warm_up_task_api()

    # dag.test() sleeps 1 s whenever nothing is runnable (after a failure, between reschedules).
    # Shorten only the sleeps made by DAG.test itself.
    real_sleep, test_code = time.sleep, DAG_TEST_CODE

    def sleep(seconds: float) -> None:
        if seconds >= 1 and sys._getframe(1).f_code is test_code:
            seconds = 0.05
        real_sleep(seconds)

    patcher = pytest.MonkeyPatch()
    patcher.setattr(time, "sleep", sleep)
    yield AIRFLOW_HOME
    patcher.undo()


def load_dag_file(folder: Path, source: str, dag_id: str) -> Any:
    """Write ``source`` as a DAG file in ``folder``, parse it and, on Airflow 3, serialize it to
    the metadata database (dag.test() and `airflow tasks test` run only a serialized DAG)."""
    from airflow_provider_plugz._compat import AIRFLOW_V3, dag_bag

    (folder / f"{dag_id}.py").write_text(source)
    bag = dag_bag(str(folder))
    assert bag.import_errors == {}
    if AIRFLOW_V3:
        from airflow.dag_processing.bundles.manager import DagBundlesManager
        from airflow.dag_processing.dagbag import sync_bag_to_db

        DagBundlesManager().sync_bundles_to_db()
        sync_bag_to_db(bag, "dags-folder", None)
    return bag.get_dag(dag_id)


@pytest.fixture
def example_dags(airflow_db: Path) -> Any:
    """A fresh DagBag of example_dags/ (dag.test() mutates params, so never share DAG objects)."""
    from tests.airflow_compat import DagBag

    return DagBag(dag_folder=str(EXAMPLE_DAGS))


@pytest.fixture
def fresh_airflow_masker(monkeypatch: pytest.MonkeyPatch) -> None:
    """Airflow's secrets maskers (process-wide) start this test empty and get their secrets back
    after it: what other tests registered (Airflow 2 registers a connection password such as
    "airflow") must not redact this test's texts."""
    import importlib

    from airflow_provider_plugz._compat import _MASKER_MODULES

    for candidates in _MASKER_MODULES:
        for name in candidates:
            try:
                module = importlib.import_module(name)
            except ImportError:
                continue
            try:
                masker = module._secrets_masker()
            except RuntimeError:  # Airflow 2 whose logging has no masker: nothing to isolate
                break
            monkeypatch.setattr(masker, "patterns", set())
            monkeypatch.setattr(masker, "replacer", None)
            break
