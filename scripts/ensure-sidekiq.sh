#!/usr/bin/env bash
# Install Sidekiq (Debian's ruby-sidekiq, 6.4) for the tests that drive it for
# real: its client writes jobs and its server runs them. Idempotent.
set -euo pipefail
if command -v sidekiq >/dev/null 2>&1 && ruby -e 'require "sidekiq"' >/dev/null 2>&1; then
  exit 0
fi
echo "ensure-sidekiq: installing ruby-sidekiq (Debian package)"
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends ruby-sidekiq ruby-redis >/dev/null
