// The browser as a peer of the mesh: one WebSocket to the broker that served the page, a signed
// hello, a session that reconnects with backoff and resumes from its cursor, and the delivery
// policy every peer follows — record a message (history + cursor) before acknowledging it,
// never surface a sequence twice, never acknowledge what could not be opened. It also hands the
// mesh key to joiners and takes a grant only when it matches the owner's commitment.

import * as db from "./db";
import * as keys from "./keys";
import {
  Bytes,
  CoordEvent,
  Cursor,
  decodeBody,
  decodeFrame,
  encodeRequest,
  EpochKey,
  KeyRequest,
  MemberInfo,
  Message,
  newUuid,
  PeerEvent,
  Priority,
  Role,
  sameBytes,
  SessionProfile,
  Status,
  Target,
  uuidString,
  Welcome,
} from "./wire";

export class RemoteError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

export type Connection = "connecting" | "online" | "offline" | "removed";

export interface PeerEvents {
  connection(state: Connection, detail: string): void;
  welcome(w: Welcome): void;
  message(item: db.HistoryItem, m: Message): void;
  coordination(ev: CoordEvent, m: Message): void;
  presence(ev: PeerEvent): void;
  digest(unread: number): void;
  /// A mesh key was taken (epoch 0: the first; above: a rotation).
  meshKey(epoch: number): void;
  /// A member went (the mesh key's rotation became due): the member list changed.
  memberWent(): void;
  /// A session-room push (`stream`, `room`, `approval`; docs/protocol.md).
  room(kind: string, body: unknown): void;
}

/// Close codes after which reconnecting is pointless (docs/protocol.md, close codes).
const FINAL_CLOSES: Record<number, string> = {
  4002: "you are no longer a member of this mesh",
  4004: "this browser session was opened in another tab or window",
};

/// `not_member`: the broker no longer knows this member (removed, or left).
const NOT_MEMBER = 16;
const CONFLICT = 26;
const STALE_KEY = 34;

const CALL_TIMEOUT_MS = 15_000;

interface Pending {
  resolve(v: unknown): void;
  reject(e: Error): void;
  timer: ReturnType<typeof setTimeout>;
}

export class Peer {
  private ws: WebSocket | null = null;
  private nextId = 1;
  private pending = new Map<number, Pending>();
  private cursor: db.StoredCursor = { watermark: 0, pending: [] };
  private recent = new Set<number>();
  private waitingForKey: Message[] = [];
  private ackQueue: number[] = [];
  private ackTimer: ReturnType<typeof setTimeout> | null = null;
  private attempt = 0;
  private stopped = false;
  private readonly member: keys.SigningPair;
  readonly session: keys.BoxPair;
  welcome: Welcome | null = null;
  status: Status = "idle";

  constructor(
    public identity: db.Identity,
    private readonly events: PeerEvents,
  ) {
    this.member = keys.signingFromSecret(identity.memberSecret);
    this.session = keys.boxFromSecret(identity.sessionSecret);
  }

  get memberId(): string {
    return uuidString(this.identity.memberId);
  }

  get sessionId(): string {
    return uuidString(this.identity.sessionId);
  }

  get role(): Role {
    return this.welcome?.role ?? this.identity.role;
  }

  get holdsMeshKey(): boolean {
    return !!this.identity.meshKey;
  }

  async start(): Promise<void> {
    this.cursor = await db.loadCursor();
    this.connect();
  }

  stop(): void {
    this.stopped = true;
    this.ws?.close(1000, "logged out");
  }

  private connect(): void {
    if (this.stopped) return;
    this.events.connection("connecting", "");
    const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
    const ws = new WebSocket(url);
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    ws.onopen = () => void this.hello(ws);
    ws.onmessage = (e) => this.onFrame(new Uint8Array(e.data as ArrayBuffer));
    ws.onclose = (e) => this.onClose(ws, e.code, e.reason);
  }

  private onClose(ws: WebSocket, code: number, reason: string): void {
    if (this.ws !== ws) return;
    this.ws = null;
    for (const [, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new Error("connection lost"));
    }
    this.pending.clear();
    if (this.stopped) return;
    const final = FINAL_CLOSES[code];
    if (final) {
      this.events.connection("removed", final);
      return;
    }
    // The broker's hint (a draining node says when to come back), else exponential backoff
    // with jitter, so a node's sessions do not all return at once.
    const hinted = /retry_after_ms=(\d+)/.exec(reason);
    const backoff = Math.min(10_000, 250 * 2 ** this.attempt) * (0.5 + Math.random());
    const delay = hinted ? Number(hinted[1]) : backoff;
    this.attempt = Math.min(this.attempt + 1, 8);
    this.events.connection("offline", `reconnecting in ${Math.round(delay / 100) / 10}s`);
    setTimeout(() => this.connect(), delay);
  }

  private async hello(ws: WebSocket): Promise<void> {
    const id = this.identity;
    const timestamp = Date.now();
    const nonce = keys.random(16);
    const signed = keys.helloBytes(id.meshId, id.memberId, id.sessionId, this.session.publicKey, timestamp, nonce);
    const profile: SessionProfile = {
      status: this.status,
      visible: true,
      host: "browser",
      agent_kind: "browser",
    };
    const wire: Cursor | undefined =
      this.cursor.watermark > 0 || this.cursor.pending.length > 0
        ? { watermark: this.cursor.watermark, acked: this.cursor.pending.slice(-4096) }
        : undefined;
    try {
      const welcome = await this.callOn<Welcome>(ws, "hello", {
        mesh_id: id.meshId,
        member_id: id.memberId,
        session_id: id.sessionId,
        session_pubkey: this.session.publicKey,
        timestamp_ms: timestamp,
        nonce,
        signature: keys.sign(this.member, signed),
        mode: "session",
        cursor: wire,
        profile,
      });
      this.attempt = 0;
      this.welcome = welcome;
      this.confirm([], welcome.cursor.watermark);
      if (welcome.role !== id.role) {
        id.role = welcome.role;
        await db.saveIdentity(id);
      }
      if (welcome.sealed_mesh_key) await this.adoptKey(welcome.sealed_mesh_key);
      if ((welcome.key_epoch ?? 0) > (id.keyEpoch ?? 0) || (welcome.key_rotation_due && id.meshKey)) {
        await this.catchUpKeys();
      }
      this.events.connection("online", welcome.node_id);
      this.events.welcome(welcome);
      // Held `next` and unread `low` messages wait in the inbox; a person sees them here.
      void this.pullInbox();
    } catch (e) {
      if (e instanceof RemoteError && e.code === NOT_MEMBER) {
        this.stopped = true;
        this.events.connection("removed", FINAL_CLOSES[4002]);
      } else {
        this.events.connection("offline", `hello refused: ${(e as Error).message}`);
      }
      ws.close(1000, "hello failed");
    }
  }

  private onFrame(bytes: Uint8Array): void {
    let frame;
    try {
      frame = decodeFrame(bytes);
    } catch {
      return;
    }
    if ("res" in frame) {
      const p = this.pending.get(frame.res.id);
      if (!p) return;
      this.pending.delete(frame.res.id);
      clearTimeout(p.timer);
      if (frame.res.err) p.reject(new RemoteError(frame.res.err.code, frame.res.err.message));
      else p.resolve(frame.res.ok ? decodeBody(frame.res.ok) : {});
      return;
    }
    const { push, body } = frame.push;
    try {
      switch (push) {
        case "message":
          void this.deliver(decodeBody<Message>(body));
          break;
        case "peer":
          this.events.presence(decodeBody<PeerEvent>(body));
          break;
        case "digest":
          this.events.digest(decodeBody<{ low_unread: number }>(body).low_unread);
          void this.pullInbox();
          break;
        case "key_request":
          void this.grantKey(decodeBody<KeyRequest>(body));
          break;
        case "mesh_key":
          void this.adoptKey(decodeBody<{ sealed_mesh_key: Bytes }>(body).sealed_mesh_key);
          break;
        case "key_epoch": {
          const k = decodeBody<{ epoch: number; rotation_due: boolean }>(body);
          if (k.rotation_due) this.events.memberWent();
          if (k.epoch > (this.identity.keyEpoch ?? 0) || (k.rotation_due && this.identity.meshKey)) {
            void this.catchUpKeys();
          }
          break;
        }
        case "stream":
        case "room":
        case "approval":
          this.events.room(push, decodeBody(body));
          break;
      }
    } catch (e) {
      console.warn("bad push", push, e);
    }
  }

  private callOn<T>(ws: WebSocket, op: string, body: unknown): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`${op} timed out`));
      }, CALL_TIMEOUT_MS);
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
      ws.send(encodeRequest(id, op, body));
    });
  }

  /// Call an op on the current connection.
  call<T>(op: string, body: unknown = {}): Promise<T> {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN || !this.welcome) {
      return Promise.reject(new Error("not connected"));
    }
    return this.callOn<T>(ws, op, body);
  }

  // -------------------------------------------------------------------------------------------
  // Delivery

  private seen(seq: number): boolean {
    return seq <= this.cursor.watermark || this.cursor.pending.includes(seq) || this.recent.has(seq);
  }

  private confirm(acked: number[], watermark: number): void {
    const done = new Set(acked);
    this.cursor.watermark = Math.max(this.cursor.watermark, watermark);
    this.cursor.pending = this.cursor.pending.filter((s) => s > this.cursor.watermark && !done.has(s));
    for (const s of acked) this.recent.add(s);
    if (this.recent.size > 4096) this.recent = new Set([...this.recent].slice(-2048));
    void db.saveCursor(this.cursor);
  }

  private conversationOf(m: Message): string {
    if (m.target !== "all" && "group" in m.target) return `group:${m.target.group}`;
    if (m.target === "all") return "all";
    // A message to me (as a member or this session): the conversation with its sender.
    return `member:${uuidString(m.sender_member)}`;
  }

  private open(m: Message): string | null {
    try {
      switch (m.sealing) {
        case "box_session":
          return keys.fromUtf8.decode(keys.openBox(m.sender_pubkey, this.session, m.nonce, m.ciphertext));
        case "box_member":
          return keys.fromUtf8.decode(keys.openAsMember(m.sender_pubkey, this.member, m.nonce, m.ciphertext));
        case "mesh_key": {
          const key = this.meshKeyOf(m.nonce);
          if (!key) return null;
          return keys.fromUtf8.decode(keys.openSecretbox(key, m.nonce, m.ciphertext));
        }
        case "plain":
          return keys.fromUtf8.decode(m.ciphertext);
      }
    } catch {
      return `[could not be opened with this browser's keys]`;
    }
    return null;
  }

  private async deliver(m: Message): Promise<void> {
    if (this.seen(m.seq)) {
      // Surfaced before and its ack lost: acknowledge again, show nothing.
      this.queueAck(m.seq);
      return;
    }
    const text = this.open(m);
    if (text === null) {
      // Sealed with the mesh key we do not hold yet: not acknowledged, so it waits in the
      // inbox and is opened when the key arrives.
      if (!this.waitingForKey.some((w) => w.seq === m.seq)) this.waitingForKey.push(m);
      return;
    }
    this.cursor.pending.push(m.seq);
    if (m.sealing === "plain") {
      await db.saveCursor(this.cursor);
      try {
        this.events.coordination(JSON.parse(text) as CoordEvent, m);
      } catch {
        /* an event we cannot read still counts as delivered */
      }
    } else {
      const item: db.HistoryItem = {
        id: uuidString(m.id),
        seq: m.seq,
        conversation: this.conversationOf(m),
        fromMe: false,
        senderName: m.sender_name,
        senderMember: uuidString(m.sender_member),
        senderSession: uuidString(m.sender_session),
        text,
        priority: m.priority,
        subtype: m.subtype,
        sentAtMs: m.sent_at_ms,
        replyTo: m.reply_to ? uuidString(m.reply_to) : null,
        read: false,
      };
      await db.addHistory(item);
      await db.saveCursor(this.cursor);
      this.events.message(item, m);
    }
    this.queueAck(m.seq);
  }

  private queueAck(seq: number): void {
    this.ackQueue.push(seq);
    if (!this.ackTimer) this.ackTimer = setTimeout(() => void this.flushAcks(), 30);
  }

  private async flushAcks(): Promise<void> {
    this.ackTimer = null;
    const seqs = this.ackQueue.splice(0);
    if (seqs.length === 0) return;
    try {
      const r = await this.call<{ cursor: Cursor }>("ack", { seqs, read: false });
      this.confirm(seqs, r.cursor.watermark);
    } catch {
      // Kept in the cursor; the next hello acknowledges them.
    }
  }

  /// The person has seen these (a conversation was opened).
  async markRead(seqs: number[]): Promise<void> {
    if (seqs.length === 0) return;
    try {
      const r = await this.call<{ cursor: Cursor }>("ack", { seqs, read: true });
      this.confirm(seqs, r.cursor.watermark);
    } catch {
      /* the state stays "acked" */
    }
  }

  private async pullInbox(): Promise<void> {
    try {
      const r = await this.call<{ messages: Message[]; more: boolean }>("inbox", { limit: 500 });
      for (const m of r.messages) await this.deliver(m);
    } catch {
      /* retried on the next digest or connection */
    }
  }

  // -------------------------------------------------------------------------------------------
  // The mesh key

  /// The mesh key of `epoch`, if held.
  private meshKeyFor(epoch: number): Bytes | null {
    const id = this.identity;
    if (id.meshKey && (id.keyEpoch ?? 0) === epoch) return id.meshKey;
    return id.retiredKeys?.[epoch] ?? null;
  }

  /// The key a mesh-key nonce names.
  private meshKeyOf(nonce: Bytes): Bytes | null {
    return this.meshKeyFor(keys.meshKeyEpoch(nonce));
  }

  /// Seal with the current mesh key.
  private sealWithMeshKey(plain: Bytes): keys.Sealed {
    if (!this.identity.meshKey) throw new Error("the mesh key has not arrived yet: group messages wait for it");
    return keys.secretbox(this.identity.meshKey, this.identity.keyEpoch ?? 0, plain);
  }

  /// Keep a checked mesh key of `epoch`: a newer one becomes current, the current one retires.
  private keepKey(epoch: number, key: Bytes): boolean {
    const id = this.identity;
    if (this.meshKeyFor(epoch)) return false;
    id.retiredKeys = { ...(id.retiredKeys ?? {}) };
    if (id.meshKey && epoch < (id.keyEpoch ?? 0)) {
      id.retiredKeys[epoch] = key;
    } else {
      if (id.meshKey) id.retiredKeys[id.keyEpoch ?? 0] = id.meshKey;
      id.meshKey = key;
      id.keyEpoch = epoch;
    }
    return true;
  }

  private async grantKey(req: KeyRequest): Promise<void> {
    const owners = this.meshKeyFor(0);
    if (!owners || sameBytes(req.member_id, this.identity.memberId)) return;
    const epoch = this.identity.keyEpoch ?? 0;
    const current = this.identity.meshKey;
    const epochKeys =
      epoch > 0 && current ? [{ epoch, sealed_key: keys.sealToMember(req.member_pubkey, current) }] : [];
    try {
      await this.call("key_grant", {
        member_id: req.member_id,
        sealed_mesh_key: keys.sealAnonymous(req.claim_pubkey, owners),
        epoch_keys: epochKeys,
      });
    } catch {
      /* another holder answers, or the next request does */
    }
  }

  private catchingUp: Promise<void> | null = null;

  /// Take rotated mesh keys (each checked against its signed commitment) and rotate when a
  /// member went and this member holds the current key (docs/protocol.md, "Key epochs").
  catchUpKeys(): Promise<void> {
    this.catchingUp ??= this.catchUp().finally(() => (this.catchingUp = null));
    return this.catchingUp;
  }

  private async catchUp(): Promise<void> {
    for (let attempt = 0; attempt < 4; attempt++) {
      const list = await this.refreshKeys();
      if (!list.rotation_due || !this.identity.meshKey || (this.identity.keyEpoch ?? 0) !== list.epoch) return;
      if (await this.rotateKey(list.epoch + 1)) return;
    }
  }

  private async refreshKeys(): Promise<{ epoch: number; rotation_due: boolean }> {
    const list = await this.call<{ epoch: number; rotation_due: boolean; keys: EpochKey[] }>("mesh_keys", {});
    const mesh = this.identity.meshId;
    let changed = false;
    for (const k of list.keys) {
      if (this.meshKeyFor(k.epoch)) continue;
      try {
        const key = keys.openSealedAsMember(this.member, k.sealed_key);
        const signed = keys.keyRotationBytes(mesh, k.epoch, k.commitment);
        if (!sameBytes(keys.epochKeyCommitment(mesh, k.epoch, key), k.commitment)) continue;
        if (!keys.verify(k.rotated_by_pubkey, signed, k.signature)) continue;
        changed = this.keepKey(k.epoch, key) || changed;
      } catch {
        /* not sealed to this member: ignored */
      }
    }
    if (changed) {
      await db.saveIdentity(this.identity);
      this.events.meshKey(this.identity.keyEpoch ?? 0);
    }
    return list;
  }

  private async rotateKey(epoch: number): Promise<boolean> {
    const mesh = this.identity.meshId;
    const { members } = await this.call<{ members: MemberInfo[] }>("members", {});
    const key = keys.newMeshKey();
    const commitment = keys.epochKeyCommitment(mesh, epoch, key);
    const signature = keys.sign(this.member, keys.keyRotationBytes(mesh, epoch, commitment));
    const sealed = members.map((m) => ({ member_id: m.member_id, sealed_key: keys.sealToMember(m.pubkey, key) }));
    try {
      await this.call("key_rotate", { epoch, commitment, signature, sealed });
    } catch (e) {
      if (e instanceof RemoteError && e.code === CONFLICT) return false;
      throw e;
    }
    this.keepKey(epoch, key);
    await db.saveIdentity(this.identity);
    this.events.meshKey(this.identity.keyEpoch ?? 0);
    return true;
  }

  private async adoptKey(sealed: Bytes): Promise<void> {
    const id = this.identity;
    if (id.meshKey || !id.claimSecret) return;
    let key: Bytes;
    try {
      key = keys.openAnonymous(keys.boxFromSecret(id.claimSecret), sealed);
    } catch {
      return;
    }
    const w = this.welcome;
    const commitment = w?.key_commitment ?? id.keyCommitment;
    if (!keys.keyMatchesCommitment(id.meshId, key, commitment, w?.key_commitment_signature, w?.owner_pubkey)) {
      // A forgery: refuse it, which bars its granter and asks the others again.
      await this.call("key_reject", {}).catch(() => undefined);
      return;
    }
    this.keepKey(0, key);
    id.claimSecret = null;
    id.keyCommitment = commitment ?? null;
    await db.saveIdentity(id);
    this.events.meshKey(this.identity.keyEpoch ?? 0);
    // A rotated mesh granted the current key too.
    if ((this.welcome?.key_epoch ?? 0) > 0) await this.refreshKeys().catch(() => undefined);
    const waiting = this.waitingForKey.splice(0);
    for (const m of waiting) await this.deliver(m);
    void this.pullInbox();
  }

  // -------------------------------------------------------------------------------------------
  // Sending

  /// Seal `text` for `target` and send it; returns the message id.
  async send(
    target: Target,
    text: string,
    priority: Priority,
    sealTo: { session?: Bytes; member?: Bytes },
    replyTo?: Bytes,
  ): Promise<{ id: string; seq: number }> {
    const plain = keys.utf8.encode(text);
    let sealing: "box_session" | "box_member" | "mesh_key";
    let sealed: keys.Sealed;
    if (replyTo || (target !== "all" && "session" in target)) {
      if (!sealTo.session) throw new Error("no key for that session");
      sealing = "box_session";
      sealed = keys.boxTo(sealTo.session, this.session, plain);
    } else if (target !== "all" && "member" in target) {
      if (!sealTo.member) throw new Error("no key for that member");
      sealing = "box_member";
      sealed = keys.boxToMember(sealTo.member, this.session, plain);
    } else {
      sealing = "mesh_key";
      sealed = this.sealWithMeshKey(plain);
    }
    const id = newUuid();
    const body = { id, target, priority, reply_to: replyTo, sealing, nonce: sealed.nonce, ciphertext: sealed.ciphertext };
    try {
      const r = await this.call<{ seq: number }>("send", body);
      return { id: uuidString(id), seq: r.seq };
    } catch (e) {
      // Sealed with a key that was rotated away, or a member left: bring the keys up to date
      // and send the same message again under the current one.
      if (!(e instanceof RemoteError && e.code === STALE_KEY)) throw e;
      await this.catchUpKeys();
      const again = this.sealWithMeshKey(plain);
      const r = await this.call<{ seq: number }>("send", { ...body, nonce: again.nonce, ciphertext: again.ciphertext });
      return { id: uuidString(id), seq: r.seq };
    }
  }

  /// A reminder body sealed like a message (member: box_member; group: the mesh key).
  sealReminder(target: Target, memberKey: Bytes | null, text: string): { sealing: string } & keys.Sealed {
    const plain = keys.utf8.encode(text);
    if (target !== "all" && "member" in target) {
      if (!memberKey) throw new Error("no key for that member");
      return { sealing: "box_member", ...keys.boxToMember(memberKey, this.session, plain) };
    }
    return { sealing: "mesh_key", ...this.sealWithMeshKey(plain) };
  }

  signInvite(code: string, role: Role, maxUses: number, expiresAtMs: number): Bytes {
    return keys.sign(this.member, keys.inviteBytes(this.identity.meshId, code, role, maxUses, expiresAtMs));
  }

  /// Open something sealed with the mesh key (stream entries, permission requests) as JSON.
  openMeshJson<T>(nonce: Bytes, ciphertext: Bytes): T | null {
    const key = this.meshKeyOf(nonce);
    if (!key) return null;
    try {
      return JSON.parse(keys.fromUtf8.decode(keys.openSecretbox(key, nonce, ciphertext))) as T;
    } catch {
      return null;
    }
  }

  /// Seal text with the mesh key (a decision's reason).
  sealMesh(text: string): keys.Sealed {
    return this.sealWithMeshKey(keys.utf8.encode(text));
  }

  /// Seal text to a session's key from this browser's session (a prompt to an agent).
  sealToSession(sessionKey: Bytes, text: string): keys.Sealed {
    return keys.boxTo(sessionKey, this.session, keys.utf8.encode(text));
  }

  async setStatus(status: Status): Promise<void> {
    this.status = status;
    await this.call("set_status", { status, source: "manual" });
  }
}
