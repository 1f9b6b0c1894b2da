#!/usr/bin/env bash
# Install what tests/test_browser.py needs: Debian's Chromium (apt) and the playwright Python
# package in the active environment. Playwright's own browser download is not used (it cannot
# reach its CDN here); the test drives /usr/bin/chromium. Idempotent and quiet: a second run
# only checks. Needs root or passwordless sudo for apt.
set -euo pipefail

PYTHON="${PYTHON:-python}"

if [[ ! -x /usr/bin/chromium ]]; then
    SUDO=""
    if [[ $(id -u) -ne 0 ]]; then
        if ! sudo -n true 2>/dev/null; then
            echo "install_browser: /usr/bin/chromium is missing; run as root or with passwordless sudo" >&2
            exit 1
        fi
        SUDO="sudo -n"
    fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq >/dev/null
    $SUDO apt-get install -y -qq chromium >/dev/null
fi

if ! "$PYTHON" -c "import playwright.sync_api" >/dev/null 2>&1; then
    "$PYTHON" -m pip install --quiet playwright
fi

echo "install_browser: $(/usr/bin/chromium --version 2>/dev/null || echo 'chromium missing'),"\
     "playwright $("$PYTHON" -c 'import importlib.metadata as m; print(m.version("playwright"))')"
