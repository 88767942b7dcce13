"""Fixtures for the sandbox's own tests (tests/testing/): a started sandbox with four instances
(``sb``) and a plain requests session (``http``). The raw-HTTP helpers they use are in
tests/support/sandbox.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import requests

from airflow_provider_plugz.testing import PlugzSandbox
from tests.support.sandbox import CT

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture
def sb() -> Iterator[PlugzSandbox]:
    """A started sandbox with four instances: no PIN, PIN, expired, web."""
    with PlugzSandbox(client_token=CT) as sandbox:
        sandbox.add_instance("inst-1", "tok-1")
        sandbox.add_instance("inst-2", "tok-2", has_code=True)
        sandbox.add_instance("old", "tok-old", expired=True)
        sandbox.add_instance("web", "tok-web", kind="web")
        yield sandbox


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.trust_env = False  # no proxies from the environment for loopback
        yield session
