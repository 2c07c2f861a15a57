// The wire protocol (docs/protocol.md): MessagePack frames with named fields, UUIDs as 16-byte
// binaries, enums as lowercase strings. Only the types the web app uses are spelled out.

import { decode, encode } from "@msgpack/msgpack";

export const PROTOCOL_VERSION = 1;

export type Bytes = Uint8Array;
export type Uuid = Uint8Array;
export type Priority = "now" | "next" | "low";
export type Status = "idle" | "working" | "dnd";
export type Role = "member" | "admin" | "owner";
export type Sealing = "box_session" | "box_member" | "mesh_key" | "plain";
export type DeliveryState = "queued" | "pushed" | "acked" | "read";
export type Target = { session: Uuid } | { member: Uuid } | { group: string } | "all";

export interface Cursor {
  watermark: number;
  acked: number[];
}

export interface SessionProfile {
  display_name?: string | null;
  status?: Status;
  summary?: string | null;
  groups?: { name: string; role?: string | null }[];
  visible?: boolean;
  cwd?: string | null;
  host?: string | null;
  agent_kind?: string | null;
  agent_model?: string | null;
  agent_pid?: number | null;
  pull_only?: boolean;
}

export interface PeerInfo {
  session_id: Uuid;
  member_id: Uuid;
  display_name: string;
  session_pubkey: Bytes;
  status: Status;
  status_source: "jsonl" | "manual" | "hook";
  status_since_ms: number;
  profile: SessionProfile;
  connected_at_ms: number;
}

export interface MemberInfo {
  member_id: Uuid;
  display_name: string;
  role: Role;
  pubkey: Bytes;
  joined_at_ms: number;
}

export interface Message {
  seq: number;
  id: Uuid;
  sender_member: Uuid;
  sender_session: Uuid;
  sender_name: string;
  sender_pubkey: Bytes;
  sender_member_pubkey: Bytes;
  target: Target;
  priority: Priority;
  reply_to?: Uuid | null;
  subtype?: string | null;
  sealing: Sealing;
  nonce: Bytes;
  ciphertext: Bytes;
  sent_at_ms: number;
}

export interface Welcome {
  mesh_name: string;
  role: Role;
  display_name: string;
  head_seq: number;
  cursor: Cursor;
  sealed_mesh_key?: Bytes | null;
  node_id: string;
  server_time_ms: number;
  key_commitment?: Bytes | null;
  key_commitment_signature?: Bytes | null;
  owner_pubkey?: Bytes | null;
  key_epoch?: number;
  key_rotation_due?: boolean;
}

/// One rotated mesh key as its holder receives it (`mesh_keys`).
export interface EpochKey {
  epoch: number;
  sealed_key: Bytes;
  commitment: Bytes;
  signature: Bytes;
  rotated_by: Bytes;
  rotated_by_pubkey: Bytes;
}

export interface PeerEvent {
  change: "joined" | "left" | "updated";
  peer: PeerInfo;
}

export interface KeyRequest {
  member_id: Uuid;
  display_name: string;
  member_pubkey: Bytes;
  claim_pubkey: Bytes;
}

export interface RecipientState {
  session_id: Uuid;
  member_id: Uuid;
  display_name: string;
  state: DeliveryState;
}

export interface InviteInfo {
  code: string;
  role: Role;
  max_uses: number;
  uses: number;
  expires_at_ms: number;
  revoked: boolean;
  issued_by: Uuid;
  groups?: string[];
}

// Coordination objects arrive in events as JSON (UUIDs as strings) and in replies as
// MessagePack (UUIDs as bytes); the app keeps them with string ids.
export type TaskStatus = "todo" | "in_progress" | "review" | "done" | "blocked" | "cancelled";

export interface Task {
  number: number;
  title: string;
  description: string;
  complexity?: string | null;
  files: string[];
  tags: string[];
  depends_on: number[];
  status: TaskStatus;
  owner: string;
  owner_name: string;
  assignee?: string | null;
  assignee_name?: string | null;
  feedback?: string | null;
  review_notes?: string | null;
  created_at_ms: number;
  updated_at_ms: number;
}

export interface LockInfo {
  token: number;
  pattern: string;
  mode: "exclusive" | "shared";
  holder_member: string;
  holder_session: string;
  holder_name: string;
  reason?: string | null;
  acquired_at_ms: number;
  expires_at_ms: number;
}

export interface LockWaiter {
  pattern: string;
  mode: "exclusive" | "shared";
  name: string;
  since_ms: number;
  deadline_ms: number;
}

export interface Thread {
  number: number;
  topic: string;
  priority: Priority;
  author: string;
  author_name: string;
  waiting_on: string[];
  resolved: boolean;
  posts: number;
  updated_at_ms: number;
}

export interface ThreadPost {
  post: number;
  author: string;
  author_name: string;
  body: string;
  at_ms: number;
}

export interface StateEntry {
  key: string;
  value: string;
  version: number;
  updated_by: string;
  updated_by_name: string;
  updated_at_ms: number;
}

export interface Memory {
  number: number;
  body: string;
  tags: string[];
  author: string;
  author_name: string;
  at_ms: number;
}

export interface Reminder {
  number: number;
  id: string;
  schedule: { kind: "at"; at_ms: number } | { kind: "in"; after_ms: number } | { kind: "cron"; expr: string; tz: string };
  target: unknown;
  priority: Priority;
  label?: string | null;
  creator: string;
  creator_name: string;
  next_fire_at_ms?: number | null;
  fire_count: number;
  cancelled: boolean;
}

/// A coordination event's JSON body (`sealing: plain`).
export type CoordEvent = { summary: string } & (
  | { object: "state"; key: string; entry?: StateEntry | null }
  | { object: "task"; action: string; task: Task }
  | { object: "thread"; action: string; thread: Thread; post?: ThreadPost | null }
  | { object: "lock"; action: string; lock: LockInfo }
  | { object: "memory"; number: number; memory?: Memory | null }
  | { object: "webhook"; hook: string; payload: string }
);

export interface WireError {
  code: number;
  message: string;
}

export type ServerFrame =
  | { res: { id: number; ok?: Bytes | null; err?: WireError | null } }
  | { push: { push: string; body: Bytes } };

const OPTIONS = { ignoreUndefined: true } as const;

export function encodeBody(body: unknown): Bytes {
  return encode(body, OPTIONS);
}

export function encodeRequest(id: number, op: string, body: unknown): Uint8Array<ArrayBuffer> {
  return new Uint8Array(encode({ v: PROTOCOL_VERSION, id, op, body: encodeBody(body) }, OPTIONS));
}

export function decodeFrame(bytes: Bytes): ServerFrame {
  return decode(bytes) as ServerFrame;
}

export function decodeBody<T>(bytes: Bytes): T {
  return decode(bytes) as T;
}

// ---------------------------------------------------------------------------------------------
// UUIDs

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

export function hex(bytes: Bytes): string {
  let s = "";
  for (const b of bytes) s += HEX[b];
  return s;
}

export function unhex(s: string): Bytes {
  const clean = s.replace(/[^0-9a-fA-F]/g, "");
  const out = new Uint8Array(clean.length >> 1);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(clean.slice(2 * i, 2 * i + 2), 16);
  return out;
}

export function uuidString(u: Uuid): string {
  const h = hex(u);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export function uuidBytes(s: string): Uuid {
  return unhex(s);
}

export function newUuid(): Uuid {
  const u = crypto.getRandomValues(new Uint8Array(16));
  u[6] = (u[6] & 0x0f) | 0x40;
  u[8] = (u[8] & 0x3f) | 0x80;
  return u;
}

export function sameBytes(a: Bytes | null | undefined, b: Bytes | null | undefined): boolean {
  if (!a || !b || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/// A coordination object from a MessagePack reply, with its UUID fields as strings (the form
/// events carry them in).
export function withStringIds<T>(value: unknown): T {
  if (value instanceof Uint8Array) return (value.length === 16 ? uuidString(value) : value) as T;
  if (Array.isArray(value)) return value.map((v) => withStringIds(v)) as T;
  if (value && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = withStringIds(v);
    return out as T;
  }
  return value as T;
}

export function targetLabel(t: Target, names: (member: string) => string): string {
  if (t === "all") return "everyone";
  if ("group" in t) return `@${t.group}`;
  if ("member" in t) return names(uuidString(t.member));
  return `session ${uuidString(t.session).slice(0, 8)}`;
}

/// A permission request of an agent session (docs/protocol.md, session room ops).
export interface ApprovalInfo {
  id: Bytes;
  session_id: Bytes;
  member_id: Bytes;
  member_name: string;
  requested_at_ms: number;
  expires_at_ms: number;
  nonce: Bytes;
  ciphertext: Bytes;
  allowed?: boolean | null;
  decided_by?: string | null;
}
