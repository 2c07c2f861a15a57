// What the browser keeps, in IndexedDB, and nowhere else: the member identity and session key
// (never sent anywhere), the delivery cursor, and the history of messages this browser
// surfaced or sent. Logging out deletes the whole database.

import { Bytes, Priority, Role } from "./wire";

const DB_NAME = "plexus";
const VERSION = 1;

export interface Identity {
  meshId: Bytes;
  meshName: string;
  memberId: Bytes;
  memberSecret: Bytes;
  displayName: string;
  role: Role;
  sessionId: Bytes;
  sessionSecret: Bytes;
  /// The current mesh key, and its epoch.
  meshKey?: Bytes | null;
  keyEpoch?: number;
  /// Earlier mesh keys by epoch, to read history sealed with them.
  retiredKeys?: Record<number, Bytes>;
  claimSecret?: Bytes | null;
  keyCommitment?: Bytes | null;
}

export interface StoredCursor {
  watermark: number;
  /// Surfaced here, acknowledgement not confirmed by the broker yet.
  pending: number[];
}

/// One message in a conversation, as this browser saw or sent it.
export interface HistoryItem {
  /// The message id (string form).
  id: string;
  seq?: number;
  conversation: string;
  fromMe: boolean;
  senderName: string;
  senderMember: string;
  senderSession: string;
  text: string;
  priority: Priority;
  subtype?: string | null;
  sentAtMs: number;
  replyTo?: string | null;
  /// The person has seen it (acknowledged as read).
  read: boolean;
}

let opened: Promise<IDBDatabase> | null = null;

function open(): Promise<IDBDatabase> {
  if (!opened) {
    opened = new Promise((resolve, reject) => {
      const req = indexedDB.open(DB_NAME, VERSION);
      req.onupgradeneeded = () => {
        const db = req.result;
        db.createObjectStore("kv");
        const history = db.createObjectStore("history", { keyPath: "id" });
        history.createIndex("conversation", "conversation");
      };
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
  }
  return opened;
}

function done<T>(req: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

async function store(name: string, mode: IDBTransactionMode): Promise<IDBObjectStore> {
  return (await open()).transaction(name, mode).objectStore(name);
}

async function get<T>(key: string): Promise<T | undefined> {
  return done((await store("kv", "readonly")).get(key)) as Promise<T | undefined>;
}

async function put(key: string, value: unknown): Promise<void> {
  await done((await store("kv", "readwrite")).put(value, key));
}

export const loadIdentity = () => get<Identity>("identity");
export const saveIdentity = (id: Identity) => put("identity", id);
export const loadCursor = async () => (await get<StoredCursor>("cursor")) ?? { watermark: 0, pending: [] };
export const saveCursor = (c: StoredCursor) => put("cursor", c);

export async function addHistory(item: HistoryItem): Promise<void> {
  await done((await store("history", "readwrite")).put(item));
}

export async function history(conversation: string): Promise<HistoryItem[]> {
  const index = (await store("history", "readonly")).index("conversation");
  const items = (await done(index.getAll(IDBKeyRange.only(conversation)))) as HistoryItem[];
  return items.sort((a, b) => a.sentAtMs - b.sentAtMs || (a.seq ?? 0) - (b.seq ?? 0));
}

export async function allHistory(): Promise<HistoryItem[]> {
  return (await done((await store("history", "readonly")).getAll())) as HistoryItem[];
}

/// Forget everything: keys, cursor, history.
export async function forgetAll(): Promise<void> {
  if (opened) {
    (await opened).close();
    opened = null;
  }
  await new Promise<void>((resolve, reject) => {
    const req = indexedDB.deleteDatabase(DB_NAME);
    req.onsuccess = () => resolve();
    req.onerror = () => reject(req.error);
    req.onblocked = () => resolve();
  });
}
