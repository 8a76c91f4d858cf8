#!/usr/bin/env bash
# Refreshes the README's pictures (docs/dashboard.png, docs/officer.png, docs/supervision.png, docs/letter.png, docs/scorecard.png,
# docs/officer-exception.png, docs/officer-badge.png, docs/check-valid.png, docs/check-forged.png, docs/dashboard-drill-down.png,
# docs/alert.png, docs/enterprise-phone.png, docs/cases.png, docs/public_disclosure.png) from
# the real-browser tests.
# The tests themselves never write into the repository: only this command, through FE_REFRESH_DOCS=1,
# makes them save those screenshots into docs/. Review the pictures, then commit them.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
FE_REFRESH_DOCS=1 .venv/bin/python -m pytest tests/system/test_browser.py -q \
  -k "test_a_live_inspection_appears_on_the_dashboard or test_officer_scans_a_photo_on_the_phone_page" "$@"
FE_REFRESH_DOCS=1 .venv/bin/python -m pytest tests/system/test_supervision_browser.py tests/system/test_scorecard_browser.py -q "$@"
FE_REFRESH_DOCS=1 .venv/bin/python -m pytest tests/system/test_officer_browser.py -q -k "enterprises_check" "$@"
FE_REFRESH_DOCS=1 .venv/bin/python -m pytest tests/system/test_console_browser.py -q -k "drill_down or enterprise_history" "$@"
FE_REFRESH_DOCS=1 .venv/bin/python -m pytest tests/system/test_cases_browser.py -q "$@"
git status --short -- docs/ || true
