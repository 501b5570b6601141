#!/usr/bin/env bash
# pytest exits 5 when it collected nothing: for CI that is a failure, not a pass.
set -uo pipefail
.venv/bin/python -m pytest "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: failing (a test run that tests nothing is not green)" >&2
  exit 1
fi
exit "$rc"
