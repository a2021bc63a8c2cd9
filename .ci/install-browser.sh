#!/usr/bin/env bash
# Browser for the app's tests (tests/test_app_browser.py): Debian's chromium, driven by the
# Python `playwright` package through executable_path=/usr/bin/chromium. Idempotent: does
# nothing when chromium is already there. Never runs `playwright install` (no browser
# download from outside the distribution). The Python package comes with `pip install -e
# '.[dev]'` (pyproject's dev extra); it is installed here too when missing from the venv.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x /usr/bin/chromium ]; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
fi

PY="${PY:-.venv/bin/python}"
if [ -x "$PY" ] && ! "$PY" -c "import playwright" 2>/dev/null; then
  "$PY" -m pip install -q "playwright>=1.40"
fi
echo "chromium ready: /usr/bin/chromium"
