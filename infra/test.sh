#!/usr/bin/env bash
# The README's test command: set everything up, then run every test suite (pytest's "no tests" is a failure).
set -euo pipefail
cd "$(dirname "$0")/.."
bash infra/setup.sh
bash infra/install-browser.sh   # Debian chromium for the UI checks (tests/services/test_ui.py)
source infra/env.sh
set +e
.venv/bin/python -m pytest "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "test: pytest collected no tests; that is a failure" >&2
  exit 1
fi
exit "$status"
