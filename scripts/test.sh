#!/usr/bin/env bash
# Set up (scripts/setup.sh), then run the gates and the whole test suite: lint, types, unit and
# integration tests on real Redis, PostgreSQL, Envoy, Prometheus, Locust and Chaos Toolkit.
# Extra arguments go to pytest (e.g. `scripts/test.sh -m "not integration"` for the fast set).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/mypy
# the record -> check -> render seams (pyproject's [tool.importlinter]); quiet unless a contract breaks
.venv/bin/lint-imports --no-cache >/dev/null || .venv/bin/lint-imports --no-cache
exec .venv/bin/pytest "$@"
