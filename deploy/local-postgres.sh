#!/usr/bin/env bash
# Start (or reuse) a private local PostgreSQL for Plexus: its own data directory and port,
# no system service. Installs Debian's postgresql package if no server binaries are found.
#   usage: deploy/local-postgres.sh [start|stop|status|url]
# Environment: PLEXUS_STATE (default ~/.cache/plexus), PLEXUS_PG_PORT (default 55432).
set -euo pipefail

STATE=${PLEXUS_STATE:-$HOME/.cache/plexus}
PORT=${PLEXUS_PG_PORT:-55432}
# Postgres runs as the postgres user when we are root, and root's home is not readable by
# it, so the data directory then lives under /var/tmp.
if [ "$(id -u)" = 0 ]; then PGROOT=${PLEXUS_PG_ROOT:-/var/tmp/plexus}; else PGROOT=${PLEXUS_PG_ROOT:-$STATE}; fi
DATA=$PGROOT/pg-$PORT
LOG=$PGROOT/pg-$PORT.log
URL="postgres://plexus@127.0.0.1:$PORT/plexus"

find_bin() {
  local name=$1 dir
  for dir in /usr/lib/postgresql/*/bin; do
    [ -x "$dir/$name" ] && { echo "$dir/$name"; return 0; }
  done
  command -v "$name" 2>/dev/null || return 1
}

ensure_installed() {
  if ! find_bin initdb >/dev/null || ! find_bin pg_ctl >/dev/null; then
    echo "installing postgresql from Debian packages..." >&2
    export DEBIAN_FRONTEND=noninteractive
    ${SUDO:-} apt-get update -qq >&2
    ${SUDO:-} apt-get install -y -qq postgresql >&2
  fi
}

# Postgres refuses to run as root: run it as the postgres user when we are root.
as_pg() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

start() {
  ensure_installed
  local initdb pg_ctl psql
  initdb=$(find_bin initdb); pg_ctl=$(find_bin pg_ctl); psql=$(find_bin psql || command -v psql)
  mkdir -p "$PGROOT"
  if [ "$(id -u)" = 0 ]; then chmod 755 "$PGROOT"; fi
  if [ ! -f "$DATA/PG_VERSION" ]; then
    mkdir -p "$DATA"
    [ "$(id -u)" = 0 ] && chown postgres:postgres "$DATA"
    as_pg "$initdb" -D "$DATA" -U postgres --auth=trust -E UTF8 >/dev/null
    cat >>"$DATA/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$DATA'
max_connections = 300
shared_buffers = 256MB
synchronous_commit = on
fsync = on
CONF
  fi
  if ! as_pg "$pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
    touch "$LOG"; [ "$(id -u)" = 0 ] && chown postgres:postgres "$LOG"
    as_pg "$pg_ctl" -D "$DATA" -l "$LOG" -w -t 60 start >/dev/null
  fi
  "$psql" -h 127.0.0.1 -p "$PORT" -U postgres -tAc "SELECT 1 FROM pg_roles WHERE rolname='plexus'" | grep -q 1 ||
    "$psql" -h 127.0.0.1 -p "$PORT" -U postgres -qc "CREATE ROLE plexus LOGIN CREATEDB"
  "$psql" -h 127.0.0.1 -p "$PORT" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='plexus'" | grep -q 1 ||
    "$psql" -h 127.0.0.1 -p "$PORT" -U postgres -qc "CREATE DATABASE plexus OWNER plexus"
  echo "$URL"
}

stop() {
  local pg_ctl; pg_ctl=$(find_bin pg_ctl) || return 0
  [ -f "$DATA/PG_VERSION" ] && as_pg "$pg_ctl" -D "$DATA" -m fast stop >/dev/null 2>&1 || true
}

status() {
  local pg_ctl; pg_ctl=$(find_bin pg_ctl) || return 1
  [ -f "$DATA/PG_VERSION" ] && as_pg "$pg_ctl" -D "$DATA" status >/dev/null 2>&1
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  url) echo "$URL" ;;
  *) echo "usage: $0 [start|stop|status|url]" >&2; exit 2 ;;
esac
