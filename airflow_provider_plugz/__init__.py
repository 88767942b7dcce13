"""Apache Airflow provider for the Plugz WhatsApp API.

Kept deliberately empty of imports: DAG files import our operators on every parse,
and Airflow reads provider metadata through :mod:`.get_provider_info` alone. The one
import is the tiny ``_version`` module that every build and install writes from the git
tag (see ``hatch_build.py``).
"""

from __future__ import annotations

try:
    from airflow_provider_plugz._version import __version__
except ModuleNotFoundError:  # a source tree put on sys.path without being built or installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
