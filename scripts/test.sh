#!/usr/bin/env bash
# The whole test suite: provisions a private local Postgres and Redis (Debian packages if
# missing), checks formatting and lints, builds every binary and runs every test tier.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/plexus/target}
# A fresh clone gains nothing from incremental caches, which grow by gigabytes per run.
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}
export PLEXUS_STATE=${PLEXUS_STATE:-$HOME/.cache/plexus}
export PLEXUS_PG_PORT=${PLEXUS_PG_PORT:-55432}
export PLEXUS_REDIS_PORT=${PLEXUS_REDIS_PORT:-56379}
# Stop, on exit or Ctrl-C, the servers this run started (ones already running stay).
started=()
deploy/local-postgres.sh status || started+=(deploy/local-postgres.sh)
deploy/local-redis.sh status || started+=(deploy/local-redis.sh)
cleanup() { for s in "${started[@]}"; do "$s" stop || true; done; }
trap cleanup EXIT
trap 'exit 130' INT TERM
export PLEXUS_TEST_DATABASE_URL
PLEXUS_TEST_DATABASE_URL=$(deploy/local-postgres.sh start)
export PLEXUS_TEST_REDIS_URL
PLEXUS_TEST_REDIS_URL=$(deploy/local-redis.sh start)
echo "test database: $PLEXUS_TEST_DATABASE_URL, test redis: $PLEXUS_TEST_REDIS_URL"

# The agent-interface tests drive `plexus mcp` with the official MCP Python SDK (from PyPI) in
# a virtualenv under $PLEXUS_STATE; Debian's python3 and python3-venv if missing.
export PLEXUS_MCP_VENV=${PLEXUS_MCP_VENV:-$PLEXUS_STATE/mcp-venv}
if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
  $SUDO apt-get update -qq >&2
  $SUDO apt-get install -y -qq python3 python3-venv >&2
fi

# The web app (TypeScript, type-checked and built with Vite into web/dist, which the broker
# embeds) and Debian's Chromium for the browser tests; Node.js and npm from Debian if missing.
scripts/web.sh chromium

rustup component list --installed 2>/dev/null | grep -q rustfmt || rustup component add rustfmt clippy
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# End-to-end tests run the real binaries from the target directory.
cargo build --workspace --bins --locked
cargo test --workspace --locked
# A 60-second fault-injection run on a private cluster (own Postgres and Redis ports): node
# kills, a Postgres and a Redis restart; fails on any lost, duplicated or misrouted message,
# overlapping lock holders, ghost grants, backwards tokens or lost/doubled reminder firings.
"$CARGO_TARGET_DIR"/debug/plexus-chaos --secs 60 --repo .
# Dockerfile, compose, nginx, Prometheus, Grafana and the Helm chart (see the script).
scripts/check-deploy.sh
