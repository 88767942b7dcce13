#!/usr/bin/env bash
# Build benchmarks/.venv: Airflow, this provider (editable), the HTTP provider we compare
# against, and a profiler. Kept apart from the project's .venv on purpose: the HTTP provider
# is a contender here, never a dependency of airflow-provider-plugz.
set -euo pipefail
cd "$(dirname "$0")/.."
AIRFLOW_VERSION="${AIRFLOW_VERSION:-3.3.2}"
PYTHON="${PYTHON:-3.11}"
UV="${UV:-$(command -v uv || echo .venv/bin/uv)}"  # make install puts one in .venv
"$UV" venv --quiet --allow-existing --python "$PYTHON" benchmarks/.venv
"$UV" pip install --quiet --python benchmarks/.venv/bin/python -e . \
    "apache-airflow==${AIRFLOW_VERSION}" \
    "apache-airflow-providers-http>=5" \
    "pyinstrument>=5"
benchmarks/.venv/bin/python - <<'PY'
from importlib.metadata import version
for name in ("apache-airflow", "apache-airflow-providers-http", "httpx", "requests", "aiohttp", "pyinstrument"):
    print(f"{name:32} {version(name)}")
PY
