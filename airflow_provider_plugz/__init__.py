"""Apache Airflow provider for the Plugz WhatsApp API.

Kept deliberately empty of imports: DAG files import our operators on every parse,
and Airflow reads provider metadata through :mod:`.get_provider_info` alone.
"""

from __future__ import annotations

__version__ = "0.1.0"
