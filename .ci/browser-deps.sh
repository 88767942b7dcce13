#!/usr/bin/env bash
# What tests/browser needs, installed idempotently (each step is skipped when already done):
#   1. Chromium from Debian's apt repository (no browser is ever downloaded from elsewhere);
#   2. the `browser` dependency group of pyproject.toml (the pinned Playwright driver) into $VENV.
# Run it after the virtualenv exists (`make install`). A second run takes well under a second.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PY="$VENV/bin/python"

# ---- 1. Chromium ------------------------------------------------------------------------------
if command -v chromium >/dev/null 2>&1; then
    echo "browser-deps: chromium already installed"
elif ! command -v apt-get >/dev/null 2>&1; then
    # Not Debian: a developer installs Chromium their own way (or sets PLUGZ_CHROMIUM); until
    # then tests/browser skips. In CI that would hide the test, so it is an error there.
    case "${CI:-}" in
        "" | 0 | false | no)
            echo "browser-deps: no apt-get here; install Chromium yourself (tests/browser skips without it)" >&2
            ;;
        *)
            echo "browser-deps: CI is set but Chromium is missing and apt-get is not available" >&2
            exit 1
            ;;
    esac
else
    sudo=""
    if [ "$(id -u)" != 0 ]; then
        sudo="sudo"
    fi
    export DEBIAN_FRONTEND=noninteractive
    # Installing straight away works when the package lists are fresh; update them only if not.
    if ! $sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1; then
        $sudo apt-get update -qq
        $sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null
    fi
    echo "browser-deps: installed chromium"
fi
# Debian's launcher script prints a harmless shell warning on some machines; show the version only.
if command -v chromium >/dev/null 2>&1; then
    chromium --version 2>/dev/null | sed "s/^/browser-deps: /"
fi

# ---- 2. Playwright (the `browser` dependency group, pinned in pyproject.toml) -----------------
if [ ! -x "$PY" ]; then
    echo "browser-deps: $PY not found; create the virtualenv first (make install)" >&2
    exit 1
fi
# Exit 0 when every `name==version` pin of the group is installed, 1 otherwise.
if "$PY" - <<'EOF'
import re
import sys
from importlib.metadata import PackageNotFoundError, version

text = open("pyproject.toml", encoding="utf-8").read()
block = re.search(r"^browser = \[(.*?)^\]", text, re.S | re.M)
if block is None:
    sys.exit("browser-deps: pyproject.toml has no `browser` dependency group")
for name, pinned in re.findall(r'"([A-Za-z0-9_.-]+)==([^"; ]+)"', block.group(1)):
    try:
        installed = version(name)
    except PackageNotFoundError:
        sys.exit(1)
    if installed != pinned:
        sys.exit(1)
EOF
then
    echo "browser-deps: the 'browser' group is already installed"
else
    # The group alone: the project itself is already installed (make install).
    if [ -x "$VENV/bin/uv" ]; then
        "$VENV/bin/uv" pip install --quiet --python "$PY" --group browser
    elif command -v uv >/dev/null 2>&1; then
        uv pip install --quiet --python "$PY" --group browser
    else
        # pip reads dependency groups from 25.1 on.
        "$PY" -m pip install --quiet --disable-pip-version-check --group browser
    fi
    echo "browser-deps: installed the 'browser' group"
fi
"$PY" -c 'from importlib.metadata import version; print("browser-deps: playwright", version("playwright"))'
