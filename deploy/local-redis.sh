#!/usr/bin/env bash
# Start (or reuse) a private local Redis for Plexus: its own directory and port, no system
# service. Installs Debian's redis-server package if it is missing.
#   usage: deploy/local-redis.sh [start|stop|status|url]
# Environment: PLEXUS_STATE (default ~/.cache/plexus), PLEXUS_REDIS_PORT (default 56379).
set -euo pipefail

STATE=${PLEXUS_STATE:-$HOME/.cache/plexus}
PORT=${PLEXUS_REDIS_PORT:-56379}
DIR=$STATE/redis-$PORT
URL="redis://127.0.0.1:$PORT/0"

ensure_installed() {
  if ! command -v redis-server >/dev/null 2>&1; then
    echo "installing redis-server from Debian packages..." >&2
    export DEBIAN_FRONTEND=noninteractive
    ${SUDO:-} apt-get update -qq >&2
    ${SUDO:-} apt-get install -y -qq redis-server >&2
  fi
}

running() { redis-cli -p "$PORT" ping 2>/dev/null | grep -q PONG; }

start() {
  ensure_installed
  mkdir -p "$DIR"
  if ! running; then
    redis-server --port "$PORT" --bind 127.0.0.1 --dir "$DIR" --daemonize yes \
      --pidfile "$DIR/redis.pid" --logfile "$DIR/redis.log" --save "" --appendonly no >/dev/null
    for _ in $(seq 1 50); do running && break; sleep 0.1; done
    running || { echo "redis did not start; see $DIR/redis.log" >&2; exit 1; }
  fi
  echo "$URL"
}

stop() {
  command -v redis-cli >/dev/null 2>&1 && redis-cli -p "$PORT" shutdown nosave >/dev/null 2>&1 || true
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  status) command -v redis-cli >/dev/null 2>&1 && running ;;
  url) echo "$URL" ;;
  *) echo "usage: $0 [start|stop|status|url]" >&2; exit 2 ;;
esac
