#!/usr/bin/env bash
# Install the real tools the tests and the demo use, when they are missing:
# Debian's redis-server and prometheus (promtool). Idempotent and quiet when
# everything is there already.
set -euo pipefail

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
# redis-cli (--cluster create: tests/support/redis_cluster.py); Sentinel is redis-server --sentinel
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)

if ((${#missing[@]})); then
  echo "ensure-tools: installing ${missing[*]} (Debian packages)"
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Further tools, one script each (node peers for tests, helm/kubectl, ...).
for extra in scripts/ensure-*.sh; do
  [ "$extra" = "scripts/ensure-tools.sh" ] && continue
  bash "$extra"
done
exit 0
