"""How bytes travel to Plugz and back; everything else about a call is in :mod:`.._protocol`.

Internal modules, one per concern (:class:`~airflow_provider_plugz.hooks.plugz.PlugzHook` is
what users import):

- :mod:`.sync_requests` - the task-side transport: a ``requests`` session and one attempt over
  it, with requests' exception table;
- :mod:`.requests_deadline` - the watchdog thread that keeps a requests attempt's total
  deadline, and the urllib3 connection classes it watches;
- :mod:`.async_httpx` - the event-loop transport (the triggerer, the fleet audit): the httpx
  client factory, one attempt over it, httpx's exception table, and the small thread pool the
  async paths run their blocking work in;
- :mod:`.tls` - TLS verification of both (the system CAs, or a connection's own bundle);
- :mod:`.body` - reading an answer's body, bounded and decoded as it is read;
- :mod:`.failures` - what goes wrong below HTTP, the shape of an exception table and the one
  lookup both use, and the one :class:`~airflow_provider_plugz.exceptions.PlugzError` per failure.

Each transport sorts its own library's exceptions into a
:class:`~airflow_provider_plugz.transports.failures.TransportFailure`; turning that into the right
:class:`~airflow_provider_plugz.exceptions.PlugzError` is :func:`.failures.transport_error`'s, shared.
Importing this package imports neither requests nor httpx.
"""

from __future__ import annotations
