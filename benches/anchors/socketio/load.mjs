// The anchor's load client: the same workloads as plexus-load (benches/src/main.rs), against
// Socket.IO nodes. Peer i connects to node i mod n. Prints one JSON object with the same
// fields plexus-load prints.
//   node load.mjs --servers http://127.0.0.1:7800,http://127.0.0.1:7801 --mode direct \
//        --peers 100 --messages 1000 --rate 5000 --window 64
import { io } from "socket.io-client";

const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const servers = arg("servers", "http://127.0.0.1:7800").split(",");
const mode = arg("mode", "direct");
const peers = Number(arg("peers", "10"));
const messages = Number(arg("messages", "100"));
const rate = Number(arg("rate", "0"));
const windowSize = Number(arg("window", "16"));
const payloadBytes = Number(arg("payload", "128"));
const settleSecs = Number(arg("settle", "30"));
const payload = "x".repeat(payloadBytes);

const latencies = [];
let received = 0;
const seen = new Set();
let duplicates = 0;

function connect(i) {
  return new Promise((resolve, reject) => {
    const s = io(servers[i % servers.length], { transports: ["websocket"], query: { id: String(i) }, reconnection: false });
    s.on("connect", () => resolve(s));
    s.on("connect_error", reject);
    s.on("msg", (m) => {
      const key = `${m.from}:${m.n}:${i}`;
      if (seen.has(key)) duplicates++;
      else seen.add(key);
      received++;
      latencies.push(performance.now() - m.t);
    });
  });
}

const sockets = [];
for (let i = 0; i < peers; i += 50) {
  sockets.push(...(await Promise.all(Array.from({ length: Math.min(50, peers - i) }, (_, k) => connect(i + k)))));
}
if (mode === "group") {
  await Promise.all(sockets.slice(1).map((s) => new Promise((r) => s.emit("join", "bench", r))));
}

const senders = mode === "group" ? 1 : peers;
const perMessage = mode === "group" ? peers - 1 : 1;
const total = senders * messages;
let acked = 0;
const outstanding = new Array(senders).fill(0);
const sentBy = new Array(senders).fill(0);

function send(i) {
  const m = { from: i, n: sentBy[i]++, t: performance.now(), payload };
  outstanding[i]++;
  const done = () => {
    outstanding[i]--;
    acked++;
  };
  if (mode === "group") sockets[i].emit("group", { ...m, group: "bench" }, done);
  else sockets[i].emit("dm", { ...m, to: (i + 1) % peers }, done);
}

const started = performance.now();
await new Promise((resolve) => {
  if (rate > 0) {
    // Open loop: message k is due at k / rate, from sender k mod senders; a full window
    // leaves it due (the backlog shows up as latency).
    let next = 0;
    const tick = () => {
      const due = Math.min(total, Math.floor(((performance.now() - started) / 1000) * rate) + 1);
      while (next < due) {
        const i = next % senders;
        if (outstanding[i] >= windowSize) break;
        send(i);
        next++;
      }
      if (next >= total) resolve();
      else setImmediate(tick);
    };
    tick();
  } else {
    // Closed loop: every sender keeps `window` sends outstanding.
    const pump = () => {
      for (let i = 0; i < senders; i++) {
        while (outstanding[i] < windowSize && sentBy[i] < messages) send(i);
      }
      if (sentBy.every((n) => n >= messages)) resolve();
      else setImmediate(pump);
    };
    pump();
  }
});
while (acked < total) await new Promise((r) => setImmediate(r));
const sendSecs = (performance.now() - started) / 1000;
const settleBy = performance.now() + settleSecs * 1000;
while (received < total * perMessage && performance.now() < settleBy) await new Promise((r) => setTimeout(r, 5));
const totalSecs = (performance.now() - started) / 1000;

latencies.sort((a, b) => a - b);
const pct = (p) => (latencies.length ? latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] : 0);
console.log(
  JSON.stringify({
    system: "socket.io",
    servers,
    mode,
    peers,
    messages_per_peer: messages,
    window: windowSize,
    offered_rate: rate,
    payload_bytes: payloadBytes,
    sent_acked: acked,
    received,
    duplicates,
    deliveries_expected: total * perMessage,
    delivered_pct: (100 * received) / (total * perMessage),
    deliveries_per_sec: received / totalSecs,
    send_seconds: sendSecs,
    total_seconds: totalSecs,
    msgs_per_sec: acked / sendSecs,
    latency_ms: { p50: pct(0.5), p99: pct(0.99), p999: pct(0.999), max: latencies.at(-1) ?? 0 },
  }),
);
for (const s of sockets) s.close();
process.exit(0);
