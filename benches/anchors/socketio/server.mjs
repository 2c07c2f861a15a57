// One Socket.IO node of the anchor cluster: the Redis adapter fans events out between nodes,
// as a team would deploy it. Nothing is stored: an event to a peer that is offline is gone.
//   node server.mjs --port 7800 --redis redis://127.0.0.1:56379/0
import { createServer } from "node:http";
import { Server } from "socket.io";
import { createAdapter } from "@socket.io/redis-adapter";
import { createClient } from "redis";

const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const port = Number(arg("port", "7800"));
const redisUrl = arg("redis", "redis://127.0.0.1:6379/0");

const pub = createClient({ url: redisUrl });
const sub = pub.duplicate();
await Promise.all([pub.connect(), sub.connect()]);

const http = createServer();
const io = new Server(http, {
  adapter: createAdapter(pub, sub, { key: arg("prefix", "plexus-anchor") }),
  transports: ["websocket"],
  maxHttpBufferSize: 1e6,
});

io.on("connection", (socket) => {
  // Each peer is addressable as its own room, on whichever node it is connected to.
  socket.join(`u:${socket.handshake.query.id}`);
  socket.on("join", (group, ack) => {
    socket.join(`g:${group}`);
    ack?.();
  });
  socket.on("dm", (m, ack) => {
    io.to(`u:${m.to}`).emit("msg", m);
    ack?.();
  });
  socket.on("group", (m, ack) => {
    socket.to(`g:${m.group}`).emit("msg", m);
    ack?.();
  });
});

http.listen(port, "127.0.0.1", () => console.error(`socket.io anchor on ${port}`));
const stop = () => {
  io.close();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
