"""A log filter that keeps instance URLs and known secrets out of the HTTP clients' log records.

httpx logs every request's URL at INFO, urllib3 and httpcore at DEBUG: with the instance token
in the path, that is a secret in the log unless redacted. Both transports call
:func:`redact_client_logs` before their first request.
"""

from __future__ import annotations

import logging
import threading

from airflow_provider_plugz._redaction import redact_known


class _RedactCredentialUrls(logging.Filter):
    """Rewrites log records of the HTTP clients so that they hold no instance URL or known secret."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record of someone else's: leave it to logging
            return True
        cleaned = redact_known(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        return True


_CLIENT_LOGGERS = ("httpx", "httpcore", "urllib3")
_LOG_FILTER = _RedactCredentialUrls()
_filtered_loggers: set[str] = set()
_filter_lock = threading.Lock()


def redact_client_logs() -> None:
    """Put the filter on every logger of the HTTP clients, children included.

    A logger's filters do not apply to records of its children (``httpcore.http11``), so each
    one gets it; loggers created since the last call are picked up on the next.
    """
    manager = logging.Logger.manager
    with _filter_lock:
        names = [*_CLIENT_LOGGERS, *manager.loggerDict]
        for name in names:
            if name in _filtered_loggers or name.split(".", 1)[0] not in _CLIENT_LOGGERS:
                continue
            logger = logging.getLogger(name)
            logger.addFilter(_LOG_FILTER)
            _filtered_loggers.add(name)
