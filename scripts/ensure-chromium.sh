#!/usr/bin/env bash
# Debian's chromium for the web view's browser test (tests/api/test_api_web_browser.py):
# playwright (PyPI, the `web-test` extra) drives it through executable_path, because
# playwright cannot download its own browsers here. Idempotent.
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
echo "ensure-chromium: installing chromium (Debian package)"
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
