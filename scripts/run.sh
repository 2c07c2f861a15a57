#!/usr/bin/env bash
# Run Plexus locally: provision Postgres (Debian package if missing), build, start a broker,
# create a demo mesh, join two peers, show a message round trip, then keep the broker in the
# foreground. Ctrl-C stops everything this script started.
#   scripts/run.sh            one node on :7700
#   scripts/run.sh --cluster  Redis + three nodes on :7700, :7701, :7702 (peers spread over them)
#   PLEXUS_PORT (default 7700), PLEXUS_LISTEN_HOST (default 0.0.0.0, so other machines can join),
#   PLEXUS_DEMO_DIR (default $PLEXUS_STATE/demo), PLEXUS_BUILD_PROFILE (release or debug)
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/plexus/target}
export PLEXUS_STATE=${PLEXUS_STATE:-$HOME/.cache/plexus}
export PLEXUS_PG_PORT=${PLEXUS_PG_PORT:-55432}
PORT=${PLEXUS_PORT:-7700}
HOST=${PLEXUS_LISTEN_HOST:-0.0.0.0}
NODES=1
if [ "${1:-}" = "--cluster" ]; then NODES=3; fi

echo "==> postgres"
pg_was_running=0
if (exec 3<>"/dev/tcp/127.0.0.1/$PLEXUS_PG_PORT") 2>/dev/null; then pg_was_running=1; fi
DB_URL=$(deploy/local-postgres.sh start)
echo "    $DB_URL"

echo "==> web app"
scripts/web.sh

PROFILE=${PLEXUS_BUILD_PROFILE:-release}
echo "==> building ($PROFILE)"
if [ "$PROFILE" = release ]; then
  cargo build --release --locked --bin plexus-broker --bin plexus
  BIN=$CARGO_TARGET_DIR/release
else
  cargo build --locked --bin plexus-broker --bin plexus
  BIN=$CARGO_TARGET_DIR/debug
fi
export PATH="$BIN:$PATH"

BROKER_PIDS=""
FOLLOW_PID=""
redis_started=0
cleanup() {
  trap - INT TERM EXIT
  [ -n "$FOLLOW_PID" ] && kill "$FOLLOW_PID" 2>/dev/null || true
  for pid in $BROKER_PIDS; do kill "$pid" 2>/dev/null || true; done
  for pid in $BROKER_PIDS; do wait "$pid" 2>/dev/null || true; done
  if [ "$redis_started" = 1 ]; then deploy/local-redis.sh stop; fi
  if [ "$pg_was_running" = 0 ]; then deploy/local-postgres.sh stop; fi
  echo "stopped."
}
trap cleanup INT TERM EXIT

REDIS_URL=""
if [ "$NODES" -gt 1 ]; then
  echo "==> redis"
  export PLEXUS_REDIS_PORT=${PLEXUS_REDIS_PORT:-56379}
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$PLEXUS_REDIS_PORT") 2>/dev/null; then redis_started=1; fi
  REDIS_URL=$(deploy/local-redis.sh start)
  echo "    $REDIS_URL"
fi

ready() { # plain bash, no curl needed
  { exec 3<>"/dev/tcp/127.0.0.1/$1" && printf 'GET /ready HTTP/1.0\r\n\r\n' >&3 && head -1 <&3 | grep -q ' 200'; } 2>/dev/null
}
URLS=""
for i in $(seq 0 $((NODES - 1))); do
  P=$((PORT + i))
  echo "==> broker node $i on $HOST:$P"
  PLEXUS_DATABASE__URL=$DB_URL PLEXUS_HTTP__LISTEN=$HOST:$P PLEXUS_REDIS__URL=$REDIS_URL PLEXUS_NODE__ID=node-$i plexus-broker &
  BROKER_PIDS="$BROKER_PIDS $!"
  for _ in $(seq 1 150); do ready "$P" && break; sleep 0.2; done
  ready "$P" || { echo "broker node $i did not become ready"; exit 1; }
  URLS="$URLS${URLS:+,}ws://127.0.0.1:$P"
done
URL=ws://127.0.0.1:$PORT
LAST=ws://127.0.0.1:$((PORT + NODES - 1))

DEMO=${PLEXUS_DEMO_DIR:-$PLEXUS_STATE/demo}
rm -rf "$DEMO"; mkdir -p "$DEMO"
alice() { PLEXUS_HOME=$DEMO/alice plexus "$@"; }
bob() { PLEXUS_HOME=$DEMO/bob plexus "$@"; }

echo "==> alice creates a mesh"
alice mesh create demo --broker "$URL" --display-name alice
# The binary itself in the background (not through the shell function, which would fork a
# subshell): $! is then the follower's own pid, and stopping it stops it.
PLEXUS_HOME=$DEMO/alice plexus inbox --follow > "$DEMO/alice.log" 2>&1 &
FOLLOW_PID=$!
CODE=$(alice --json invite create | sed -n 's/.*"code":"\([A-Z0-9]*\)".*/\1/p')
echo "==> bob joins with invite $CODE (on node $((NODES - 1)))"
bob join "$CODE" --broker "$LAST" --name bob
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
echo "==> coordination: a task, a lock, shared state, a reminder"
alice task create "review the demo" --tags demo
bob task claim 1
bob lock acquire 'demo/**' --reason "editing the demo" --ttl 10m
alice lock acquire demo/README.md || true   # refused: bob holds demo/**, and it says so
alice state set demo/status running
bob remind add "the demo is still running" --in 30s
bob task list

IP=$(hostname -I 2>/dev/null | awk '{print $1}')
INVITE=$(alice --json invite create --uses 5 | sed -n 's/.*"code":"\([A-Z0-9]*\)".*/\1/p')
REMOTE=$(echo "$URLS" | sed "s/127.0.0.1/${IP:-<this-host>}/g")
cat <<TXT

Plexus is running with $NODES node(s): $URLS  (metrics: http://127.0.0.1:$PORT/metrics)
In a browser: http://${IP:-127.0.0.1}:$PORT/ — join with invite $INVITE, or link to alice with
    PLEXUS_HOME=$DEMO/alice $BIN/plexus link <the code the browser shows>
On another machine (with the plexus binary), join the demo mesh:
    plexus join $INVITE --broker $REMOTE --name <your-name>
    plexus inbox --follow
Here, talk as alice with:  PLEXUS_HOME=$DEMO/alice $BIN/plexus send <name> "text"
Ctrl-C stops the broker(s) (and Postgres/Redis, if this script started them).
TXT
wait
