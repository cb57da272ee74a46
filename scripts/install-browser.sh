#!/usr/bin/env bash
# Debian's chromium for tests/test_web.py (Playwright drives it; `playwright install` is not used).
# Idempotent and quiet: does nothing when the browser is already there.
set -euo pipefail

CHROMIUM="${ZOOLITE_CHROMIUM:-/usr/bin/chromium}"
[ -x "$CHROMIUM" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "install-browser: $CHROMIUM missing; run: sudo apt-get update && sudo apt-get install -y chromium" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq chromium >/dev/null
