// Conversations: with each member, each group and everyone. Messages are sealed here and opened
// here; the history is this browser's own (IndexedDB). A reply goes to exactly the session that
// wrote the message; each message you sent shows its delivery state per recipient, kept live
// while someone has yet to read it.

import type { App, Mounted, View } from "../app";
import * as db from "../db";
import { attempt, badge, form, h, replace, time, toast } from "../ui";
import { DeliveryState, Priority, RecipientState, Target, uuidBytes, uuidString } from "../wire";

interface Conversation {
  key: string;
  label: string;
  target: Target;
  online?: boolean;
}

function conversations(app: App): Conversation[] {
  const me = app.peer.memberId;
  const online = new Set([...app.mesh.peers.values()].map((p) => uuidString(p.member_id)));
  const out: Conversation[] = [{ key: "all", label: "Everyone", target: "all" }];
  for (const g of app.mesh.groups) out.push({ key: `group:${g.name}`, label: `@${g.name}`, target: { group: g.name } });
  const members = [...app.mesh.members.values()]
    .filter((m) => uuidString(m.member_id) !== me)
    .sort((a, b) => a.display_name.localeCompare(b.display_name));
  for (const m of members) {
    const id = uuidString(m.member_id);
    out.push({ key: `member:${id}`, label: m.display_name, target: { member: m.member_id }, online: online.has(id) });
  }
  return out;
}

/// Delivery states of messages sent from this page, by message id.
const states = new Map<string, RecipientState[]>();
const settled = (rs: RecipientState[] | undefined) => !!rs && rs.length > 0 && rs.every((r) => r.state === "read");

export const messagesView: View = {
  topics: ["members", "presence", "groups", "messages", "key"],
  mount(app: App, root: HTMLElement, arg: string): Mounted {
    const all = conversations(app);
    const current = all.find((c) => c.key === arg) ?? all[0];
    let replyTo: db.HistoryItem | null = null;
    const list = h("ul", { class: "conversations", id: "conversations" });
    const log = h("ol", { class: "log", id: "log", aria: { live: "polite" } });
    const replying = h("div", { class: "replying hidden", id: "replying" });
    const priority = h(
      "select",
      { name: "priority", id: "priority", title: "now interrupts; next waits until they pause; low waits in their inbox" },
      h("option", { value: "now" }, "now"),
      h("option", { value: "next", selected: true }, "next"),
      h("option", { value: "low" }, "low"),
    );
    const text = h("textarea", { name: "text", id: "compose", rows: 2, placeholder: `Message ${current.label}`, required: true });
    const compose = form(
      { class: "compose", id: "compose-form" },
      async (f, el) => {
        const body = f.text.trim();
        if (!body) return;
        const sent = await attempt("send", async () => {
          await send(app, current, body, f.priority as Priority, replyTo);
        });
        if (sent) {
          el.reset();
          setReply(null);
          await renderLog();
        }
      },
      replying,
      h("div", { class: "row" }, text, priority, h("button", { type: "submit", id: "send" }, "Send")),
    );
    text.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey) {
        e.preventDefault();
        compose.requestSubmit();
      }
    });

    function setReply(item: db.HistoryItem | null): void {
      replyTo = item;
      replying.classList.toggle("hidden", !item);
      replace(
        replying,
        item
          ? [
              `Replying to ${item.senderName}'s session: “${item.text.slice(0, 80)}” `,
              h("button", { type: "button", class: "link", on: { click: () => setReply(null) } }, "cancel"),
            ]
          : [],
      );
    }

    replace(
      root,
      h(
        "div",
        { class: "messages" },
        h("aside", { class: "side" }, h("h2", null, "Conversations"), list),
        h("section", { class: "conversation" }, h("h2", { id: "conversation-title" }, current.label), log, compose),
      ),
    );

    function renderList(): void {
      replace(
        list,
        conversations(app).map((c) => {
          const unread = app.mesh.unread.get(c.key) ?? 0;
          return h(
            "li",
            { class: c.key === current.key ? "active" : "" },
            h(
              "a",
              { href: `#/messages/${encodeURIComponent(c.key)}`, data: { conversation: c.key } },
              c.online !== undefined ? h("span", { class: `dot ${c.online ? "idle" : "off"}` }) : null,
              c.label,
              unread > 0 ? badge(String(unread), "count") : null,
            ),
          );
        }),
      );
    }

    async function renderLog(): Promise<void> {
      const items = await db.history(current.key);
      const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
      replace(
        log,
        items.length === 0
          ? h("li", { class: "empty" }, "No messages yet.")
          : items.map((item) =>
              h(
                "li",
                { class: `msg ${item.fromMe ? "mine" : ""}`, data: { id: item.id } },
                h(
                  "div",
                  { class: "head" },
                  h("strong", null, item.senderName),
                  " ",
                  h("span", { class: "muted", title: new Date(item.sentAtMs).toLocaleString() }, time(item.sentAtMs)),
                  item.priority !== "next" ? badge(item.priority, item.priority) : null,
                  item.subtype === "reminder" ? badge("reminder", "kind") : null,
                  item.replyTo ? badge("reply", "kind") : null,
                  !item.fromMe
                    ? h("button", { class: "link reply", type: "button", on: { click: () => setReply(item) } }, "reply")
                    : null,
                ),
                // Peer content: a text node, never markup.
                h("div", { class: "body" }, item.text),
                item.fromMe ? deliveryLine(states.get(item.id)) : null,
              ),
            ),
      );
      if (atBottom || items.length < 30) log.scrollTop = log.scrollHeight;
      // Seen now: tell the senders.
      const unread = items.filter((i) => !i.fromMe && !i.read && i.seq !== undefined);
      if (unread.length > 0 && document.visibilityState === "visible") {
        for (const i of unread) await db.addHistory({ ...i, read: true });
        await app.peer.markRead(unread.map((i) => i.seq as number));
      }
      app.mesh.unread.delete(current.key);
      renderList();
    }

    // Delivery states of what was sent from this conversation and is not read by everyone yet.
    let polling = true;
    async function pollStates(): Promise<void> {
      if (!polling || !root.isConnected) return;
      const items = (await db.history(current.key)).filter((i) => i.fromMe && Date.now() - i.sentAtMs < 3_600_000);
      let changed = false;
      for (const item of items) {
        if (settled(states.get(item.id))) continue;
        try {
          const r = await app.peer.call<{ recipients: RecipientState[] }>("message_status", { id: uuidBytes(item.id) });
          const before = JSON.stringify(states.get(item.id) ?? []);
          states.set(item.id, r.recipients);
          if (JSON.stringify(r.recipients) !== before) changed = true;
        } catch {
          /* offline: next round */
        }
      }
      if (changed) await renderLog();
      setTimeout(() => void pollStates(), 1500);
    }

    renderList();
    void renderLog();
    void pollStates();
    app.onHistory = (conversation) => {
      if (conversation === current.key) void renderLog();
    };
    return {
      update(topics) {
        if (!root.isConnected) {
          polling = false;
          return;
        }
        renderList();
        if (topics.has("messages")) void renderLog();
      },
    };
  },
};

function deliveryLine(rs: RecipientState[] | undefined): HTMLElement {
  if (!rs) return h("div", { class: "delivery muted" }, "sent");
  if (rs.length === 0) return h("div", { class: "delivery muted" }, "nobody to deliver to yet");
  return h(
    "div",
    { class: "delivery" },
    rs.map((r) => h("span", { class: `state ${r.state as DeliveryState}`, title: r.state }, `${r.display_name}: ${r.state}`)),
  );
}

async function send(app: App, c: Conversation, text: string, priority: Priority, replyTo: db.HistoryItem | null): Promise<void> {
  let target = c.target;
  const sealTo: { session?: Uint8Array; member?: Uint8Array } = {};
  let replyId: Uint8Array | undefined;
  if (replyTo) {
    // The broker re-targets a reply to the session that sent the original.
    const session = app.mesh.peers.get(replyTo.senderSession);
    if (!session) {
      toast("that session is not online any more: the message goes to the member instead");
    } else {
      target = { session: session.session_id };
      sealTo.session = session.session_pubkey;
      replyId = uuidBytes(replyTo.id);
    }
  }
  if (target !== "all" && "member" in target) {
    const m = app.mesh.members.get(uuidString(target.member));
    sealTo.member = m?.pubkey;
  }
  const sent = await app.peer.send(target, text, priority, sealTo, replyId);
  const me = app.peer.identity;
  await db.addHistory({
    id: sent.id,
    seq: sent.seq,
    conversation: c.key,
    fromMe: true,
    senderName: me.displayName,
    senderMember: app.peer.memberId,
    senderSession: app.peer.sessionId,
    text,
    priority,
    sentAtMs: Date.now(),
    replyTo: replyTo?.id ?? null,
    read: true,
  });
}
