#!/usr/bin/env bash
# Plexus and the anchor a team would pick instead — Socket.IO 4.8 with @socket.io/redis-adapter —
# side by side on this machine, in one run: two Plexus nodes (Postgres with fsync, Redis) and
# two Socket.IO nodes (same Redis, nothing durable), the same workloads back to back, and the
# ratios. Run on purpose, never in CI:
#   bash benches/side-by-side.sh            # all workloads
#   QUICK=1 bash benches/side-by-side.sh    # one step per workload
# Everything it starts it stops (by pid), also on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/plexus/target}
DB=$(deploy/local-postgres.sh start)
REDIS=$(deploy/local-redis.sh start)
[ -n "${SKIP_BUILD:-}" ] || cargo build --release --quiet -p plexus-broker --bin plexus-broker -p plexus-benches --bin plexus-load
(cd benches/anchors/socketio && { [ -d node_modules ] || npm ci --no-audit --no-fund --loglevel=error; })
L=$CARGO_TARGET_DIR/release/plexus-load
out=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

prefix="sbs-$$-"
for i in 0 1; do
  PLEXUS_DATABASE__URL=$DB PLEXUS_REDIS__URL=$REDIS PLEXUS_REDIS__PREFIX="$prefix" PLEXUS_NODE__ID="plexus-$i" \
    PLEXUS_HTTP__LISTEN=127.0.0.1:$((7700 + i)) RUST_LOG=warn "$CARGO_TARGET_DIR/release/plexus-broker" >"$out/plexus-$i.log" 2>&1 &
  pids+=($!)
  node benches/anchors/socketio/server.mjs --port $((7800 + i)) --redis "$REDIS" --prefix "$prefix" \
    >"$out/sio-$i.log" 2>&1 &
  pids+=($!)
done
plexus_pids="${pids[0]} ${pids[2]}"
sio_pids="${pids[1]} ${pids[3]}"
for port in 7700 7701; do
  until curl -sf "http://127.0.0.1:$port/ready" >/dev/null; do sleep 0.2; done
done
until (exec 3<>/dev/tcp/127.0.0.1/7800) 2>/dev/null && (exec 3<>/dev/tcp/127.0.0.1/7801) 2>/dev/null; do sleep 0.2; done

cpu_ticks() { # utime + stime of the given pids, in clock ticks
  local t=0
  for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done
  echo $t
}

# run NAME SYSTEM ARGS...: one workload against one system; appends a JSON line to results.
run() {
  local name=$1 system=$2; shift 2
  local before after json
  if [ "$system" = plexus ]; then
    before=$(cpu_ticks $plexus_pids)
    json=$("$L" --broker ws://127.0.0.1:7700,ws://127.0.0.1:7701 "$@")
    after=$(cpu_ticks $plexus_pids)
  else
    before=$(cpu_ticks $sio_pids)
    json=$(node benches/anchors/socketio/load.mjs --servers http://127.0.0.1:7800,http://127.0.0.1:7801 "$@")
    after=$(cpu_ticks $sio_pids)
  fi
  echo "{\"workload\": \"$name\", \"system\": \"$system\", \"server_cpu_ticks\": $((after - before)), \"args\": \"$*\", \"report\": $json}" >>"$out/results.jsonl"
  echo "  $system $name: $(echo "$json" | python3 -c 'import json, sys; r = json.load(sys.stdin); l = r["latency_ms"]; print("%.0f deliveries/s, p50 %.1f ms, p99 %.1f ms, %.1f%% delivered" % (r["deliveries_per_sec"], l["p50"], l["p99"], r["delivered_pct"]))')" >&2
}

both() { local name=$1; shift; run "$name" plexus "$@"; run "$name" socket.io "$@"; }

echo "== group of 999 over 2 nodes (one sender, open loop)" >&2
rates=${QUICK:+60}
for r in ${rates:-20 60 120 200 300}; do
  both "group999@${r}/s" --mode group --peers 1000 --messages $((r * 4)) --rate "$r" --window 64
done
echo "== cross-node 1:1, 100 peers" >&2
both "direct@saturation" --mode direct --peers 100 --messages 1000 --window 16
both "direct@5000/s" --mode direct --peers 100 --messages 500 --rate 5000 --window 64
[ -n "${QUICK:-}" ] || both "direct@3200/s" --mode direct --peers 100 --messages 320 --rate 3200 --window 64

python3 - "$out/results.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
hz = 100  # USER_HZ
by = {}
for r in rows:
    by.setdefault(r["workload"], {})[r["system"]] = r
print(f"{'workload':<22} {'plexus deliv/s':>15} {'sio deliv/s':>12} {'ratio':>6} {'plexus p99':>11} {'sio p99':>9} {'plexus µs/msg':>14} {'sio µs/msg':>11}")
for name, s in by.items():
    p, a = s.get("plexus"), s.get("socket.io")
    if not p or not a:
        continue
    def per_msg(r):
        msgs = r["report"]["sent_acked"] or 1
        return r["server_cpu_ticks"] / hz / msgs * 1e6
    pd, ad = p["report"]["deliveries_per_sec"], a["report"]["deliveries_per_sec"]
    print(f"{name:<22} {pd:>15,.0f} {ad:>12,.0f} {pd / ad if ad else 0:>6.2f} "
          f"{p['report']['latency_ms']['p99']:>9.1f}ms {a['report']['latency_ms']['p99']:>7.1f}ms "
          f"{per_msg(p):>14.0f} {per_msg(a):>11.0f}")
PY
echo "(raw results: $out/results.jsonl)" >&2
trap - EXIT
cleanup
