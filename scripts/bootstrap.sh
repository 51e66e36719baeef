#!/usr/bin/env bash
# Installs what is missing on a fresh machine: system packages (as root, else the
# exact command is printed; Chromium is for the docs page test), uv, the locked
# Python environment and the Flink connector jars. Safe to run again: each step
# checks before it acts.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[36m•\033[0m %s\n' "$*" >&2; }

missing=()
[ -x /usr/lib/postgresql/15/bin/postgres ] || missing+=(postgresql-15)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v java >/dev/null 2>&1 || missing+=(openjdk-17-jre-headless)
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
# Headless browser for the API docs page test (Playwright drives Debian's build).
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)  # the load generator of bench/ (P1)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    say "installing system packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "missing system packages; run: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi

if ! command -v uv >/dev/null 2>&1; then
  say "installing uv with pip"
  python3 -m pip install --quiet uv
fi
export UV_PYTHON_DOWNLOADS=never
say "syncing the Python environment (uv sync --locked)"
uv sync --locked --quiet
say "fetching the Flink Kafka connector jars (PyPI, checksums pinned)"
uv run --locked python -m streaming.jobs.jars >/dev/null
# The local Arweave gateway (npm arlocal); reinstalled only when the lock changes.
if [ ! -f node_modules/.package-lock.json ] || ! cmp -s package-lock.json node_modules/.ece-lock; then
  say "installing the local Arweave gateway (npm ci; the first time builds sqlite3, ~2-4 min)"
  # One retry after a pause: a registry hiccup mid-install should not fail a whole CI run.
  npm ci --no-audit --no-fund --loglevel=error >/dev/null \
    || { say "npm ci failed; retrying once in 10 s"; sleep 10; npm ci --no-audit --no-fund --loglevel=error >/dev/null; }
  cp package-lock.json node_modules/.ece-lock
fi
say "ready"
