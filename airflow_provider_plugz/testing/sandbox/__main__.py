"""``python -m airflow_provider_plugz.testing.sandbox``: serve a sandbox from a shell (see ``--help``)."""

from __future__ import annotations

import sys

from airflow_provider_plugz.testing.sandbox._cli import main

if __name__ == "__main__":
    sys.exit(main())
