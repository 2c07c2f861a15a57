#!/usr/bin/env bash
# Build the web app into web/dist, which the broker embeds (broker/build.rs). Installs Node.js
# and npm from Debian packages when missing; dependencies come from web/package-lock.json.
#   scripts/web.sh            build
#   scripts/web.sh chromium   also make sure Debian's Chromium is installed (browser tests)
set -euo pipefail
cd "$(dirname "$0")/../web"

apt_install() {
  echo "installing $* from Debian packages..." >&2
  local sudo; sudo=$([ "$(id -u)" = 0 ] || echo sudo)
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq >&2
  $sudo apt-get install -y -qq "$@" >&2
}

if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
  apt_install nodejs npm
fi
if [ "${1:-}" = chromium ] && [ ! -x /usr/bin/chromium ]; then
  apt_install chromium
fi

# npm ci only when the lock file changed since the last install.
lock_hash=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ "$(cat node_modules/.plexus-lock 2>/dev/null || true)" != "$lock_hash" ]; then
  npm ci --no-audit --no-fund --loglevel=error
  echo "$lock_hash" > node_modules/.plexus-lock
fi
npm run --silent build >&2
