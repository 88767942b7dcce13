"""The Plugz connection form in Airflow 3's real UI, driven by headless Chromium.

Airflow 3.3's React UI: Admin > Connections is ``/connections``; "Add Connection" opens a dialog
with Standard Fields, Extra Fields (our ``conn-fields``) and Extra Fields JSON. There is no Test
button in the dialog: "Test Connection" is an icon button on the connection's row of the list,
so a connection is saved first and then tested, and the answer arrives as a toast.

Each step leaves a screenshot in ``test-artifacts/browser/``.
"""

from __future__ import annotations

import json
import re
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_plugz.testing.sandbox import PlugzSandbox

if TYPE_CHECKING:
    from collections.abc import Iterator

    from playwright.sync_api import Locator, Page, Response, Route

    from tests.browser.conftest import AirflowApiServer

pytestmark = pytest.mark.browser

# The React UI and `airflow api-server` are Airflow 3's; the Airflow 2 run of the suite
# (`make test-airflow2`) has neither, so this module is not for it, in CI or not.
if int(version("apache-airflow").split(".")[0]) < 3:
    pytest.skip("the connection form test drives Airflow 3's UI", allow_module_level=True)

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"

# Distinctive, realistic-length secrets, easy to grep for in anything the browser shows.
INSTANCE_ID = "B0W5ER1NSTANCE000000000000001"
INSTANCE_TOKEN = "B0W5ERT0KEN5ECRET00000000001"
CLIENT_TOKEN = "B0W5ERC11E7T0KEN5ECRET000001"
WRONG_CLIENT_TOKEN = "WR0NGC11E7T0KEN5ECRET0000001"
SECRETS = (INSTANCE_TOKEN, CLIENT_TOKEN, WRONG_CLIENT_TOKEN)

STANDARD_LABELS = ["Description", "Base URL", "Instance ID", "Instance token"]
EXTRA_LABELS = ["Client-Token", "Connect timeout (s)", "Read timeout (s)"]
# Airflow's own labels for the fields we relabel or hide (schema/port/extra). Airflow 3.3 still
# draws its "Extra Fields JSON" section whatever the provider hides (its hook metadata has no
# "extra" standard field to hide), and that editor shows a Client-Token being typed in clear.
HIDDEN_OR_RENAMED = ["Host", "Login", "Password", "Port", "Schema", "Extra"]

TEST_ENDPOINT = "**/api/v2/connections/test"
TOAST = '[data-scope="toast"][data-part="root"]'


@pytest.fixture(scope="module")
def sandbox() -> Iterator[PlugzSandbox]:
    """The fake Plugz API that the API server's PlugzHook.test_connection() calls."""
    with PlugzSandbox(client_token=CLIENT_TOKEN) as running:
        running.add_instance(INSTANCE_ID, INSTANCE_TOKEN, has_code=False)
        yield running


# --------------------------------------------------------------------------- page helpers


def shot(target: Page | Locator, name: str) -> None:
    """Save a step's screenshot as test-artifacts/browser/<name>.png."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    target.screenshot(path=str(ARTIFACTS / f"{name}.png"), animations="disabled")


def labelled_input(dialog: Locator, label: str) -> Locator:
    """The input of the form field whose label reads exactly ``label``.

    Not ``get_by_label``: Airflow 3.3 does not tie the label of a secret extra field to its
    input (``<label for=_r_16_>`` beside ``<input id=element_client_token>``).
    """
    label_text = re.compile(rf"^\s*{re.escape(label)}\s*\*?\s*$")
    field = dialog.locator('[data-scope="field"][data-part="root"]').filter(
        has=dialog.page.locator("label", has_text=label_text)
    )
    return field.locator("input, textarea")


def open_section(dialog: Locator, name: str) -> Locator:
    """Expand one accordion section of the form (one is open at a time) and return its body."""
    trigger = dialog.get_by_role("button", name=name, exact=True)
    if trigger.get_attribute("aria-expanded") != "true":
        trigger.click()
    # Not get_by_role("region", name=...): the "Extra Fields" item's id has a space in it, so
    # its region's aria-labelledby names two ids that do not exist and the region has no name.
    region = dialog.locator(f'[id="{trigger.get_attribute("aria-controls")}"]')
    region.wait_for(state="visible")
    return region


def field_labels(section: Locator) -> list[str]:
    return [re.sub(r"\s*\*$", "", text.strip()) for text in section.locator("label").all_inner_texts()]


def open_connections(page: Page, server: AirflowApiServer) -> None:
    """Admin > Connections (each load parses Airflow's 7 MB bundle: ~2 s, so load it once a test)."""
    from playwright.sync_api import expect

    page.goto(f"{server.base_url}/connections")
    expect(page.get_by_role("button", name="Add Connection")).to_be_visible()


def open_add_dialog(page: Page) -> Locator:
    from playwright.sync_api import expect

    page.get_by_role("button", name="Add Connection").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_role("heading", name="Add Connection")).to_be_visible()
    return dialog


def choose_plugz(dialog: Locator, connection_id: str) -> None:
    from playwright.sync_api import expect

    dialog.get_by_label("Connection ID").fill(connection_id)
    dialog.get_by_role("combobox", name="Connection Type").fill("Plugz")
    dialog.page.get_by_role("option", name="Plugz", exact=True).click()
    expect(dialog.get_by_role("button", name="Standard Fields", exact=True)).to_be_visible()


def fill_plugz_form(dialog: Locator, base_url: str, client_token: str) -> None:
    open_section(dialog, "Standard Fields")
    labelled_input(dialog, "Base URL").fill(base_url)
    labelled_input(dialog, "Instance ID").fill(INSTANCE_ID)
    labelled_input(dialog, "Instance token").fill(INSTANCE_TOKEN)
    open_section(dialog, "Extra Fields")
    labelled_input(dialog, "Client-Token").fill(client_token)
    labelled_input(dialog, "Connect timeout (s)").fill("3")
    labelled_input(dialog, "Read timeout (s)").fill("10")


def save(dialog: Locator, connection_id: str) -> Locator:
    """Press Save; return the connection's row in the list."""
    from playwright.sync_api import expect

    page = dialog.page
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_be_hidden()
    row = page.get_by_role("row").filter(has=page.get_by_role("cell", name=connection_id, exact=True))
    expect(row).to_be_visible()
    return row


def press_test(row: Locator) -> tuple[Response, Locator]:
    """Press the row's Test Connection button; return the API's answer and the toast it raised."""
    page = row.page
    with page.expect_response(TEST_ENDPOINT) as answer:
        row.get_by_role("button", name="Test Connection").click()
    response = answer.value
    title = "Test Connection Successful" if _json(response).get("status") else "Test Connection Failed"
    toast = page.locator(TOAST).filter(has_text=title).last
    toast.wait_for(state="visible")
    return response, toast


def _json(response: Response) -> dict[str, Any]:
    body = response.json()
    return body if isinstance(body, dict) else {}


def treat_port_zero_as_unset(page: Page) -> None:
    """Work around Airflow 3.3.2's row Test button on connections without a port.

    The UI posts ``port: Number(connection.port)``, i.e. ``0`` for a NULL port; the API then
    takes 0 for "a different destination than the stored connection", refuses to reuse its
    stored (masked) secrets and answers 400 "Bad Request". Plugz hides the port, so every Plugz
    connection hits it. Fixed upstream by normalising 0 like a blank port (apache/airflow
    #73298, after 3.3.2); until our pinned Airflow has it, drop ``port: 0`` from the request,
    which is what that fix does on the server. ``test_test_button_without_the_port_workaround``
    tells when the workaround can go.
    """

    def handle(route: Route) -> None:
        body = route.request.post_data_json
        if isinstance(body, dict) and body.get("port") == 0:
            del body["port"]
            route.continue_(post_data=json.dumps(body))
        else:
            route.continue_()

    page.route(TEST_ENDPOINT, handle)


def assert_no_secret(text: str, where: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"a secret value appears in {where}"


# --------------------------------------------------------------------------- the tests


def test_add_plugz_connection_then_test_it(
    page: Page, airflow_api_server: AirflowApiServer, sandbox: PlugzSandbox
) -> None:
    from playwright.sync_api import expect

    server, conn_id = airflow_api_server, "plugz_browser_ok"
    treat_port_zero_as_unset(page)

    # Admin > Connections > Add Connection
    open_connections(page, server)
    shot(page, "01-connections-list")
    dialog = open_add_dialog(page)
    shot(page, "02-add-connection-dialog")

    # connection type "Plugz"
    choose_plugz(dialog, conn_id)

    # our labels; the fields we hide are not drawn; secrets are masked
    standard = open_section(dialog, "Standard Fields")
    assert field_labels(standard) == STANDARD_LABELS
    assert labelled_input(dialog, "Base URL").get_attribute("placeholder") == "https://api.plugzapi.com.br"
    shot(dialog, "03-plugz-standard-fields")
    extra = open_section(dialog, "Extra Fields")
    assert field_labels(extra) == EXTRA_LABELS
    expect(extra).to_contain_text("Account security token (Plugz panel > Security).")
    shot(dialog, "04-plugz-extra-fields")
    for label in HIDDEN_OR_RENAMED:
        expect(labelled_input(dialog, label)).to_have_count(0)
    for label in ("Instance token", "Client-Token"):
        expect(labelled_input(dialog, label)).to_have_attribute("type", "password")
    for label in ("Base URL", "Instance ID"):
        expect(labelled_input(dialog, label)).not_to_have_attribute("type", "password")

    # point it at the sandbox
    fill_plugz_form(dialog, sandbox.base_url, CLIENT_TOKEN)
    open_section(dialog, "Standard Fields")
    shot(dialog, "05-plugz-form-filled")
    open_section(dialog, "Extra Fields")
    shot(dialog, "06-plugz-extra-fields-filled")
    assert_no_secret(dialog.inner_text(), "the filled form's visible text")

    # save (Airflow 3.3 has no Test button before that): listed, stored under the keys PlugzHook reads
    row = save(dialog, conn_id)
    expect(row).to_contain_text("plugz")
    expect(row).to_contain_text(sandbox.base_url)
    shot(page, "07-connection-saved-and-listed")
    stored = server.api("GET", f"connections/{conn_id}")
    assert stored["conn_type"] == "plugz"
    assert stored["host"] == sandbox.base_url
    assert stored["login"] == INSTANCE_ID
    assert stored["password"] == "***"  # set, and redacted by the API
    assert json.loads(stored["extra"]) == {"client_token": "***", "connect_timeout": 3, "read_timeout": 10}

    # Test, on the row: PlugzHook.test_connection() runs in the API server, against the sandbox
    requests_before = sandbox.request_count
    response, toast = press_test(row)
    assert response.status == 200, response.text()
    assert _json(response)["status"] is True, response.text()
    expect(toast).to_contain_text("Test Connection Successful")
    expect(toast).to_contain_text(f"Connected to Plugz at {sandbox.base_url}")
    expect(toast).to_contain_text("has NO PIN set")
    shot(page, "08-test-connection-successful")
    assert sandbox.request_count > requests_before
    # The stored secrets (not the masks the UI posted) reached the sandbox.
    last = sandbox.requests[-1]
    assert last.headers["client-token"] == CLIENT_TOKEN
    assert INSTANCE_TOKEN in last.path
    assert_no_secret(page.content(), "the connections page")


def test_wrong_client_token_shows_readable_error_without_secrets(
    page: Page, airflow_api_server: AirflowApiServer, sandbox: PlugzSandbox
) -> None:
    from playwright.sync_api import expect

    server, conn_id = airflow_api_server, "plugz_browser_wrong_client_token"
    treat_port_zero_as_unset(page)

    open_connections(page, server)
    dialog = open_add_dialog(page)
    choose_plugz(dialog, conn_id)
    fill_plugz_form(dialog, sandbox.base_url, WRONG_CLIENT_TOKEN)
    row = save(dialog, conn_id)

    response, toast = press_test(row)
    assert response.status == 200, response.text()
    answer = _json(response)
    assert answer["status"] is False
    expect(toast).to_contain_text("Test Connection Failed")
    expect(toast).to_contain_text("PlugzAuthenticationError")
    expect(toast).to_contain_text("Client-Token")
    shot(page, "09-test-connection-failed-wrong-client-token")
    message = toast.inner_text()
    assert "Traceback" not in message
    assert "Traceback" not in answer["message"]
    assert_no_secret(message, "the error toast")
    assert_no_secret(answer["message"], "the test API's answer")
    assert_no_secret(page.content(), "the connections page")
    # The sandbox did receive the wrong token (and echoed it back): it was redacted on the way.
    assert sandbox.requests[-1].headers["client-token"] == WRONG_CLIENT_TOKEN
    assert_no_secret(server.log(), "the API server's log")


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="Airflow 3.3.2 UI posts port=0 for a connection without a port and the API answers 400; "
    "fixed upstream after 3.3.2 (apache/airflow#73298). When this passes, drop treat_port_zero_as_unset.",
)
def test_test_button_without_the_port_workaround(
    page: Page, airflow_api_server: AirflowApiServer, sandbox: PlugzSandbox
) -> None:
    server, conn_id = airflow_api_server, "plugz_browser_unpatched"
    server.api(
        "POST",
        "connections",
        {
            "connection_id": conn_id,
            "conn_type": "plugz",
            "host": sandbox.base_url,
            "login": INSTANCE_ID,
            "password": INSTANCE_TOKEN,
            "extra": json.dumps({"client_token": CLIENT_TOKEN}),
        },
    )
    open_connections(page, server)
    row = page.get_by_role("row").filter(has=page.get_by_role("cell", name=conn_id, exact=True))
    response, _toast = press_test(row)
    shot(page, "10-unpatched-test-button")
    assert response.status == 200, f"HTTP {response.status}: {response.text()}"
    assert _json(response)["status"] is True
