"""The hook page's sample (docs/hook.md): run against the sandbox by tests/test_docs.py."""

from __future__ import annotations

# [START howto_hook_plugz]
from airflow_provider_plugz.exceptions import PlugzAuthenticationError, PlugzTransientError
from airflow_provider_plugz.hooks.plugz import PlugzHook


def describe_number(conn_id: str = "plugz_default") -> str:
    hook = PlugzHook(plugz_conn_id=conn_id)
    try:
        status = hook.get_pin_status()  # GET .../security/two-fa-code
    except PlugzTransientError:
        return "Plugz is not reachable now: try again later"  # network, 429, 5xx
    except PlugzAuthenticationError as err:
        return str(err)  # says which field to fix; never contains a secret
    pin = "PIN set" if status.has_code else "no PIN"

    ok, message = hook.test_connection()  # what the UI's Test button shows

    health = hook.get_instance_status()  # GET .../status
    # e.g. health.connected False, health.smartphone_connected False,
    # health.error "You are not connected."
    return f"{pin}; connected: {health.connected}; test: {ok} ({message})"


# [END howto_hook_plugz]


def with_fewer_retries(conn_id: str = "plugz_default") -> bool:
    # [START howto_hook_plugz_retry]
    from airflow_provider_plugz.retry import RetryPolicy

    hook = PlugzHook(plugz_conn_id=conn_id, retry=RetryPolicy(max_attempts=2))  # every call
    status = hook.get_pin_status(retry=RetryPolicy(max_attempts=1))  # this call only
    # [END howto_hook_plugz_retry]
    return status.has_code
