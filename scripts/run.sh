#!/usr/bin/env bash
# Run Plexus locally: provision Postgres (Debian package if missing), build, start a broker,
# create a demo mesh, join two peers, show a message round trip, then keep the broker in the
# foreground. Ctrl-C stops everything this script started.
#   PLEXUS_PORT (default 7700), PLEXUS_LISTEN_HOST (default 0.0.0.0, so other machines can join)
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/plexus/target}
export PLEXUS_STATE=${PLEXUS_STATE:-$HOME/.cache/plexus}
export PLEXUS_PG_PORT=${PLEXUS_PG_PORT:-55432}
PORT=${PLEXUS_PORT:-7700}
HOST=${PLEXUS_LISTEN_HOST:-0.0.0.0}

echo "==> postgres"
pg_was_running=0
if (exec 3<>"/dev/tcp/127.0.0.1/$PLEXUS_PG_PORT") 2>/dev/null; then pg_was_running=1; fi
DB_URL=$(deploy/local-postgres.sh start)
echo "    $DB_URL"

echo "==> building (release)"
cargo build --release --locked --bin plexus-broker --bin plexus
BIN=$CARGO_TARGET_DIR/release
export PATH="$BIN:$PATH"

BROKER_PID=""
FOLLOW_PID=""
cleanup() {
  trap - INT TERM EXIT
  [ -n "$FOLLOW_PID" ] && kill "$FOLLOW_PID" 2>/dev/null || true
  [ -n "$BROKER_PID" ] && kill "$BROKER_PID" 2>/dev/null && wait "$BROKER_PID" 2>/dev/null || true
  if [ "$pg_was_running" = 0 ]; then deploy/local-postgres.sh stop; fi
  echo "stopped."
}
trap cleanup INT TERM EXIT

echo "==> broker on $HOST:$PORT"
PLEXUS_DATABASE__URL=$DB_URL PLEXUS_HTTP__LISTEN=$HOST:$PORT plexus-broker &
BROKER_PID=$!
ready() { # plain bash, no curl needed
  { exec 3<>"/dev/tcp/127.0.0.1/$PORT" && printf 'GET /ready HTTP/1.0\r\n\r\n' >&3 && head -1 <&3 | grep -q ' 200'; } 2>/dev/null
}
for _ in $(seq 1 150); do ready && break; sleep 0.2; done
ready || { echo "broker did not become ready"; exit 1; }
URL=ws://127.0.0.1:$PORT

DEMO=$PLEXUS_STATE/demo
rm -rf "$DEMO"; mkdir -p "$DEMO"
alice() { PLEXUS_HOME=$DEMO/alice plexus "$@"; }
bob() { PLEXUS_HOME=$DEMO/bob plexus "$@"; }

echo "==> alice creates a mesh"
alice mesh create demo --broker "$URL" --display-name alice
alice inbox --follow > "$DEMO/alice.log" 2>&1 &
FOLLOW_PID=$!
CODE=$(alice --json invite create | sed -n 's/.*"code":"\([A-Z0-9]*\)".*/\1/p')
echo "==> bob joins with invite $CODE"
bob join "$CODE" --broker "$URL" --name bob
echo "==> bob -> alice (now), then bob -> everyone"
bob send alice "hello from bob" --priority now
bob send '*' "hi all" --priority next
sleep 1
echo "==> alice's live inbox:"
sed 's/^/    /' "$DEMO/alice.log"
echo "==> alice -> bob, bob reads his inbox"
alice send bob "welcome, bob"
bob inbox
echo "==> peers (as bob)"
bob peers

IP=$(hostname -I 2>/dev/null | awk '{print $1}')
INVITE=$(alice --json invite create --uses 5 | sed -n 's/.*"code":"\([A-Z0-9]*\)".*/\1/p')
cat <<TXT

Plexus is running: ws://${IP:-<this-host>}:$PORT  (metrics: http://127.0.0.1:$PORT/metrics)
On another machine (with the plexus binary), join the demo mesh:
    plexus join $INVITE --broker ws://${IP:-<this-host>}:$PORT --name <your-name>
    plexus inbox --follow
Here, talk as alice with:  PLEXUS_HOME=$DEMO/alice $BIN/plexus send <name> "text"
Ctrl-C stops the broker (and Postgres, if this script started it).
TXT
wait "$BROKER_PID"
