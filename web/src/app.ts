// The signed-in app: the shell (header, navigation, connection state), routing between views,
// and the wiring from the peer's events into the mesh store and the message history.

import * as db from "./db";
import { Mesh, Topic } from "./mesh";
import { Peer } from "./peer";
import { badge, h, replace, toast } from "./ui";
import { adminView } from "./views/admin";
import { coordViews } from "./views/coord";
import { lobbyView } from "./views/lobby";
import { roomView } from "./views/room";
import { messagesView } from "./views/messages";
import { tasksView } from "./views/tasks";
import { ApprovalInfo, Message, Status, uuidString } from "./wire";

/// A view builds its page once per visit (forms keep what is typed in them) and updates its
/// live parts when a topic it follows changes.
export interface View {
  topics: Topic[];
  mount(app: App, root: HTMLElement, arg: string): Mounted;
}

export interface Mounted {
  update(topics: Set<Topic>): void;
  /// The view is being left.
  leave?(): void;
}

const VIEWS: Record<string, { label: string; view: View }> = {
  lobby: { label: "Lobby", view: lobbyView },
  messages: { label: "Messages", view: messagesView },
  tasks: { label: "Tasks", view: tasksView },
  locks: { label: "Locks", view: coordViews.locks },
  threads: { label: "Threads", view: coordViews.threads },
  state: { label: "State", view: coordViews.state },
  reminders: { label: "Reminders", view: coordViews.reminders },
  memory: { label: "Memory", view: coordViews.memory },
  admin: { label: "People", view: adminView },
};

/// Views reached by link, not listed in the navigation.
const HIDDEN: Record<string, View> = { room: roomView };

export class App {
  readonly mesh: Mesh;
  readonly peer: Peer;
  private route = "lobby";
  private arg = "";
  private main!: HTMLElement;
  private nav!: HTMLElement;
  private connectionBadge!: HTMLElement;
  private banner!: HTMLElement;
  /// Permission requests waiting for this person, on every page.
  private asks!: HTMLElement;
  private unsubscribe: (() => void)[] = [];
  private mounted: Mounted | null = null;
  private dirty = new Set<Topic>();
  /// Called whenever history gains an item (the messages view listens).
  onHistory: ((conversation: string) => void) | null = null;
  /// Session-room pushes and reconnects (the room view listens while open).
  onRoom: ((kind: string, body: unknown) => void) | null = null;
  onReconnect: (() => void) | null = null;

  constructor(
    identity: db.Identity,
    private readonly root: HTMLElement,
    private readonly onLogout: () => void,
  ) {
    this.mesh = new Mesh(() => this.peer);
    this.peer = new Peer(identity, {
      connection: (state, detail) => {
        this.mesh.connection = { state, detail };
        this.mesh.emit("connection");
      },
      welcome: () => {
        this.mesh.load().catch((e) => toast(`loading the mesh: ${(e as Error).message}`, "error"));
        // Rooms are attached per connection: the open one attaches again.
        this.onReconnect?.();
      },
      message: (item, m: Message) => {
        if (!item.fromMe) this.mesh.unread.set(item.conversation, (this.mesh.unread.get(item.conversation) ?? 0) + 1);
        if (m.subtype === "reminder") void this.mesh.loadReminders().catch(() => undefined);
        this.onHistory?.(item.conversation);
        this.mesh.emit("messages");
      },
      coordination: (ev, m) => this.mesh.coordination(ev, m.subtype ?? "", m.sent_at_ms),
      presence: (ev) => this.mesh.presence(ev),
      digest: () => undefined,
      meshKey: (epoch) => {
        toast(epoch === 0 ? "the mesh key arrived: group messages open now" : `the mesh key was rotated (epoch ${epoch})`);
        this.mesh.emit("key");
      },
      memberWent: () => void this.mesh.loadMembers().catch(() => undefined),
      room: (kind, body) => {
        if (kind === "approval") this.mesh.approval((body as { approval: ApprovalInfo }).approval);
        this.onRoom?.(kind, body);
      },
    });
  }

  async start(): Promise<void> {
    this.renderShell();
    window.addEventListener("hashchange", () => this.go());
    for (const topic of ["connection", "key", "approvals"] as Topic[]) {
      this.unsubscribe.push(this.mesh.on(topic, () => this.renderStatus()));
    }
    this.go();
    await this.peer.start();
  }

  private go(): void {
    const [route, ...rest] = location.hash.replace(/^#\/?/, "").split("/");
    this.route = route in VIEWS || route in HIDDEN ? route : "lobby";
    this.arg = decodeURIComponent(rest.join("/"));
    for (const off of this.unsubscribe.splice(3)) off();
    this.mounted?.leave?.();
    this.onRoom = null;
    this.onReconnect = null;
    const view = HIDDEN[this.route] ?? VIEWS[this.route].view;
    for (const topic of view.topics) this.unsubscribe.push(this.mesh.on(topic, () => this.schedule(topic)));
    this.unsubscribe.push(this.mesh.on("messages", () => this.renderNav()));
    this.renderNav();
    this.dirty.clear();
    this.mounted = view.mount(this, this.main, this.arg);
  }

  /// Update the current view once per frame at most, with every topic that changed.
  private schedule(topic: Topic): void {
    const first = this.dirty.size === 0;
    this.dirty.add(topic);
    if (!first) return;
    requestAnimationFrame(() => {
      const topics = new Set(this.dirty);
      this.dirty.clear();
      this.mounted?.update(topics);
    });
  }

  navigate(route: string, arg = ""): void {
    location.hash = `#/${route}${arg ? `/${encodeURIComponent(arg)}` : ""}`;
  }

  private renderShell(): void {
    this.connectionBadge = h("span", { class: "connection", id: "connection" });
    this.nav = h("nav", { class: "tabs", aria: { label: "Views" } });
    this.banner = h("div", { class: "banner hidden", id: "banner" });
    this.asks = h("div", { class: "asks hidden", id: "asks" });
    this.main = h("main", { id: "main" });
    const status = h(
      "select",
      {
        id: "my-status",
        title: "Your status",
        on: {
          change: (e) => {
            const s = (e.target as HTMLSelectElement).value as Status;
            this.peer.setStatus(s).catch((err) => toast(`status: ${(err as Error).message}`, "error"));
          },
        },
      },
      ...(["idle", "working", "dnd"] as Status[]).map((s) => h("option", { value: s }, s)),
    );
    const header = h(
      "header",
      { class: "top" },
      h("div", { class: "brand" }, h("strong", null, "Plexus"), " ", h("span", { class: "mesh-name" }, this.peer.identity.meshName)),
      h(
        "div",
        { class: "me" },
        this.connectionBadge,
        h("span", { class: "whoami", id: "whoami" }, this.peer.identity.displayName),
        status,
        h("button", { class: "link", id: "logout", on: { click: () => void this.logout() } }, "Log out"),
      ),
    );
    replace(this.root, header, this.nav, this.banner, this.asks, this.main);
    this.renderStatus();
  }

  private renderNav(): void {
    const unread = [...this.mesh.unread.values()].reduce((a, b) => a + b, 0);
    replace(
      this.nav,
      ...Object.entries(VIEWS).map(([route, { label }]) =>
        h(
          "a",
          { href: `#/${route}`, class: route === this.route ? "active" : "", data: { route } },
          label,
          route === "messages" && unread > 0 ? badge(String(unread), "count") : null,
        ),
      ),
    );
  }

  private renderStatus(): void {
    const { state, detail } = this.mesh.connection;
    this.connectionBadge.className = `connection ${state}`;
    this.connectionBadge.textContent = state === "online" ? "online" : state;
    this.connectionBadge.title = detail;
    const notes: string[] = [];
    if (state === "removed") notes.push(detail);
    else if (state === "offline") notes.push(`Disconnected — ${detail}. Everything resumes from where it was.`);
    if (!this.peer.holdsMeshKey && state !== "removed") {
      notes.push("Waiting for the mesh key: a member who holds it must be online. Direct messages work already.");
    }
    this.banner.textContent = notes.join(" ");
    this.banner.classList.toggle("hidden", notes.length === 0);
    const asks = [...this.mesh.approvals.values()];
    replace(
      this.asks,
      asks.map((a) =>
        h(
          "a",
          { class: "ask", href: `#/room/${uuidString(a.session_id)}`, data: { approval: uuidString(a.id) } },
          `${a.member_name}'s agent asks permission — answer`,
        ),
      ),
    );
    this.asks.classList.toggle("hidden", asks.length === 0);
  }

  async logout(): Promise<void> {
    this.peer.stop();
    await db.forgetAll();
    this.onLogout();
  }
}
