#!/usr/bin/env bash
# What tests/distributed needs from the system, installed idempotently (skipped when present):
# Debian's redis-server (the Celery broker) and postgresql (metadata database and Celery result
# backend). Nothing is downloaded from elsewhere; the Celery provider and psycopg2 go into the
# test's own deployment virtualenv (tests/deployment/stack.py), not here.
set -euo pipefail

have_redis() { command -v redis-server >/dev/null 2>&1; }
# initdb and pg_ctl live under /usr/lib/postgresql/<version>/bin on Debian, not on PATH.
have_postgres() { compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || command -v initdb >/dev/null 2>&1; }

missing=()
if have_redis; then echo "distributed-deps: redis-server already installed"; else missing+=(redis-server); fi
if have_postgres; then echo "distributed-deps: postgresql already installed"; else missing+=(postgresql); fi

if [ "${#missing[@]}" -gt 0 ]; then
    if ! command -v apt-get >/dev/null 2>&1; then
        # Not Debian: install them your own way; until then tests/distributed skips. In CI that
        # would hide the test, so it is an error there.
        case "${CI:-}" in
            "" | 0 | false | no)
                echo "distributed-deps: no apt-get here; install ${missing[*]} yourself (tests/distributed skips without them)" >&2
                exit 0
                ;;
            *)
                echo "distributed-deps: CI is set but ${missing[*]} missing and apt-get is not available" >&2
                exit 1
                ;;
        esac
    fi
    sudo=""
    if [ "$(id -u)" != 0 ]; then
        sudo="sudo"
    fi
    export DEBIAN_FRONTEND=noninteractive
    # Debian's packages start their own system-wide servers; the test runs its own on free
    # ports, so the service start (policy-rc.d) is irrelevant but harmless. Installing straight
    # away works when the package lists are fresh; update them only if not.
    if ! $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
        $sudo apt-get update -qq
        $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
    echo "distributed-deps: installed ${missing[*]}"
fi
if have_redis; then redis-server --version | sed "s/^/distributed-deps: /"; fi
for initdb in /usr/lib/postgresql/*/bin/initdb; do
    [ -x "$initdb" ] && "$initdb" --version | sed "s/^/distributed-deps: /"
done
exit 0
