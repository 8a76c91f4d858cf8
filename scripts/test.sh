#!/usr/bin/env bash
# The test command: sets everything up, then runs the whole default suite (unit and system tests with
# a private Mosquitto and real processes). Extra arguments go to pytest, e.g. `scripts/test.sh -m soak`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
