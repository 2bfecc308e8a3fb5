#!/usr/bin/env bash
# Install the npm packages the tests drive for real (BullMQ) into
# tests/peers/node/node_modules. Idempotent: does nothing when the installed
# tree is newer than package.json and package-lock.json (versions pinned there).
set -euo pipefail
dir="$(cd "$(dirname "$0")/.." && pwd)/tests/peers/node"
if ! command -v npm >/dev/null 2>&1; then
  echo "ensure-node: npm not found; install Node.js 20+ to run the BullMQ tests" >&2
  exit 1
fi
stamp="$dir/node_modules/.package-lock.json"
if [ -f "$stamp" ] && [ "$stamp" -nt "$dir/package.json" ] && [ "$stamp" -nt "$dir/package-lock.json" ] \
  && [ -d "$dir/node_modules/bullmq" ]; then
  exit 0
fi
echo "ensure-node: installing test peers (bullmq) in tests/peers/node"
cd "$dir"
npm ci --no-audit --no-fund --loglevel=error
