// The mesh as this browser knows it: presence, members, and every coordination object, loaded
// when the session connects and kept current from the event stream (coordination events are
// messages in the log, so a reconnect replays what was missed). Views subscribe by topic.

import { Peer } from "./peer";
import {
  Bytes,
  CoordEvent,
  InviteInfo,
  LockInfo,
  LockWaiter,
  MemberInfo,
  Memory,
  PeerEvent,
  PeerInfo,
  Reminder,
  StateEntry,
  Task,
  Thread,
  uuidString,
  withStringIds,
  ApprovalInfo,
} from "./wire";

export type Topic =
  | "connection"
  | "presence"
  | "members"
  | "tasks"
  | "locks"
  | "threads"
  | "state"
  | "memory"
  | "reminders"
  | "messages"
  | "groups"
  | "invites"
  | "activity"
  | "approvals"
  | "controls"
  | "key";

export interface GroupInfo {
  name: string;
  members: { member_id: string; display_name: string; role?: string | null }[];
}

export interface Activity {
  at: number;
  summary: string;
  subtype: string;
}

export class Mesh {
  peers = new Map<string, PeerInfo>();
  members = new Map<string, MemberInfo>();
  tasks = new Map<number, Task>();
  locks: LockInfo[] = [];
  waiters: LockWaiter[] = [];
  threads = new Map<number, Thread>();
  state = new Map<string, StateEntry>();
  memories = new Map<number, Memory>();
  reminders: Reminder[] = [];
  groups: GroupInfo[] = [];
  /// Permission requests this person may answer, by id.
  approvals = new Map<string, ApprovalInfo>();
  invites: InviteInfo[] = [];
  /// Whom this member blocks and mutes (member ids).
  controls: { blocked: Set<string>; muted: Set<string> } = { blocked: new Set(), muted: new Set() };
  activity: Activity[] = [];
  unread = new Map<string, number>();
  /// Sessions whose presence changed since a view last took them (the lobby patches those).
  changed = new Set<string>();
  connection = { state: "connecting", detail: "" };
  private listeners = new Map<Topic, Set<() => void>>();

  constructor(private readonly peer: () => Peer) {}

  on(topic: Topic, fn: () => void): () => void {
    let set = this.listeners.get(topic);
    if (!set) this.listeners.set(topic, (set = new Set()));
    set.add(fn);
    return () => set.delete(fn);
  }

  emit(topic: Topic): void {
    for (const fn of this.listeners.get(topic) ?? []) fn();
  }

  memberName(id: string): string {
    return this.members.get(id)?.display_name ?? id.slice(0, 8);
  }

  async loadApprovals(): Promise<void> {
    const r = await this.peer().call<{ approvals: ApprovalInfo[] }>("approval_list");
    this.approvals = new Map(r.approvals.map((a) => [uuidString(a.id), a]));
    this.emit("approvals");
  }

  /// A request was made or decided (a push).
  approval(info: ApprovalInfo): void {
    const id = uuidString(info.id);
    if (info.allowed === null || info.allowed === undefined) this.approvals.set(id, info);
    else this.approvals.delete(id);
    this.emit("approvals");
  }

  /// Everything, after a (re)connect.
  async load(): Promise<void> {
    const peer = this.peer();
    const [peers, members, tasks, locks, threads, state, reminders, groups] = await Promise.all([
      peer.call<{ peers: PeerInfo[] }>("peers"),
      peer.call<{ members: MemberInfo[] }>("members"),
      peer.call<{ tasks: unknown[] }>("task_list", { status: [], limit: 500 }),
      peer.call<unknown>("lock_list"),
      peer.call<{ threads: unknown[] }>("thread_list", { include_resolved: true, limit: 500 }),
      peer.call<{ entries: unknown[] }>("state_list", { prefix: "", limit: 500 }),
      peer.call<{ reminders: unknown[] }>("remind_list", { all: true }),
      peer.call<unknown>("group_list"),
    ]);
    this.peers = new Map(peers.peers.map((p) => [uuidString(p.session_id), p]));
    this.members = new Map(members.members.map((m) => [uuidString(m.member_id), m]));
    this.tasks = new Map(withStringIds<Task[]>(tasks.tasks).map((t) => [t.number, t]));
    this.setLocks(locks);
    this.threads = new Map(withStringIds<Thread[]>(threads.threads).map((t) => [t.number, t]));
    this.state = new Map(withStringIds<StateEntry[]>(state.entries).map((e) => [e.key, e]));
    this.reminders = withStringIds<Reminder[]>(reminders.reminders);
    this.groups = withStringIds<{ groups: GroupInfo[] }>(groups).groups;
    for (const t of ["presence", "members", "tasks", "locks", "threads", "state", "reminders", "groups"] as Topic[]) {
      this.emit(t);
    }
    await this.loadApprovals();
    await this.loadControls();
    if (peer.role !== "member") await this.loadInvites();
  }

  async loadControls(): Promise<void> {
    const c = await this.peer().call<{ blocked: Bytes[]; muted: Bytes[] }>("controls");
    this.controls = { blocked: new Set(c.blocked.map(uuidString)), muted: new Set(c.muted.map(uuidString)) };
    this.emit("controls");
  }

  /// Block or mute a member (or lift it); applied at once on every node.
  async setControl(memberId: Bytes, kind: "block" | "mute", on: boolean): Promise<void> {
    const c = await this.peer().call<{ blocked: Bytes[]; muted: Bytes[] }>("peer_control", { member_id: memberId, kind, on });
    this.controls = { blocked: new Set(c.blocked.map(uuidString)), muted: new Set(c.muted.map(uuidString)) };
    this.emit("controls");
  }

  async loadInvites(): Promise<void> {
    const r = await this.peer().call<{ invites: InviteInfo[] }>("invite_list");
    this.invites = r.invites;
    this.emit("invites");
  }

  async loadLocks(): Promise<void> {
    this.setLocks(await this.peer().call<unknown>("lock_list"));
  }

  private setLocks(reply: unknown): void {
    const r = withStringIds<{ locks: LockInfo[]; waiters: LockWaiter[] }>(reply);
    this.locks = r.locks;
    this.waiters = r.waiters;
    this.emit("locks");
  }

  async loadReminders(): Promise<void> {
    const r = await this.peer().call<{ reminders: unknown[] }>("remind_list", { all: true });
    this.reminders = withStringIds<Reminder[]>(r.reminders);
    this.emit("reminders");
  }

  async loadGroups(): Promise<void> {
    this.groups = withStringIds<{ groups: GroupInfo[] }>(await this.peer().call<unknown>("group_list")).groups;
    this.emit("groups");
  }

  async loadMembers(): Promise<void> {
    const r = await this.peer().call<{ members: MemberInfo[] }>("members");
    this.members = new Map(r.members.map((m) => [uuidString(m.member_id), m]));
    this.emit("members");
  }

  presence(ev: PeerEvent): void {
    const id = uuidString(ev.peer.session_id);
    if (ev.change === "left") this.peers.delete(id);
    else this.peers.set(id, ev.peer);
    this.changed.add(id);
    if (ev.change === "joined" && !this.members.has(uuidString(ev.peer.member_id))) void this.loadMembers();
    this.emit("presence");
  }

  coordination(ev: CoordEvent, subtype: string, at: number): void {
    this.activity.unshift({ at, summary: ev.summary, subtype });
    this.activity.length = Math.min(this.activity.length, 200);
    this.emit("activity");
    switch (ev.object) {
      case "task":
        this.tasks.set(ev.task.number, ev.task);
        this.emit("tasks");
        break;
      case "thread":
        this.threads.set(ev.thread.number, ev.thread);
        this.emit("threads");
        break;
      case "state":
        if (ev.entry) this.state.set(ev.key, ev.entry);
        else this.state.delete(ev.key);
        this.emit("state");
        break;
      case "memory":
        if (ev.memory) this.memories.set(ev.number, ev.memory);
        else this.memories.delete(ev.number);
        this.emit("memory");
        break;
      case "lock":
        // The event carries the lock; the queue behind it is read again.
        void this.loadLocks().catch(() => undefined);
        break;
    }
  }
}
