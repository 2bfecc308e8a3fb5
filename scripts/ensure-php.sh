#!/usr/bin/env bash
# Install PHP and Laravel (Debian's php-cli, php-redis = phpredis, and
# php-laravel-framework 8.83) for the tests that run a real `queue:work`
# (tests/support/laravel_app.py writes the app skeleton; no network needed).
# Idempotent.
set -euo pipefail
if command -v php >/dev/null 2>&1 && php -r 'exit(extension_loaded("redis") ? 0 : 1);' \
  && [ -f /usr/share/php/Illuminate/autoload.php ]; then
  exit 0
fi
echo "ensure-php: installing php-cli php-redis php-laravel-framework (Debian packages)"
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends php-cli php-redis php-laravel-framework >/dev/null
