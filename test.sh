#!/usr/bin/env bash
# The test command: sets everything up if needed (venv, real offline assets), then runs the test suite.
#   ./test.sh                 # the suite CI runs (slow real-weight tests included)
#   ./test.sh -m "not slow"   # only the fast unit tests
#   ./test.sh test/test_registry.py -x
set -euo pipefail
cd "$(dirname "$0")"
bash tools/install.sh
# shellcheck disable=SC1091
. .venv/bin/activate
python tools/prepare_assets.py
# The web demo's browser test drives Debian's Chromium through Playwright (never `playwright install`).
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ]; then
    (apt-get install -y -qq chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)) \
      || echo "test.sh: could not install chromium; the browser test will be skipped"
  else
    echo "test.sh: chromium missing and not root; the browser test will be skipped (sudo apt-get install chromium)"
  fi
fi
# The linter first (ruff.toml): seconds, and a failure names file:line and the rule.
python -m ruff check --quiet .
set +e
python -m pytest test "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then echo "test.sh: pytest collected no tests; that is a failure here"; exit 1; fi
exit "$rc"
