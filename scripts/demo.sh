#!/usr/bin/env bash
# Set up (scripts/setup.sh), then the main job on the embedded stack: bring it up, drive 20 s of tiered
# open-model load at 500 req/s, tear it down, verify the history against the quota model and the SLOs,
# and write reports/<run-id>/index.html. Extra arguments go to `quotaquake run` (e.g. --defect racy).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/quotaquake run --scenario scenarios/tiered.py --rate 500 --duration 20s "$@"
