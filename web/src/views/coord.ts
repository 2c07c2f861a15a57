// Locks, threads, shared state, reminders and memory: each a list kept live from the event
// stream, with the forms a person needs. What the broker refuses is shown with its reason.

import type { App, Mounted, View } from "../app";
import { ago, attempt, badge, duration, form, h, replace, time } from "../ui";
import { Memory, Priority, Target, Thread, ThreadPost, uuidBytes, uuidString, withStringIds } from "../wire";

// ---------------------------------------------------------------------------------------------
// Locks

const locks: View = {
  topics: ["locks"],
  mount(app: App, root: HTMLElement): Mounted {
    const held = h("tbody", { id: "locks-held" });
    const queue = h("ul", { class: "compact", id: "locks-queue" });
    const acquire = form(
      { class: "inline-form", id: "lock-acquire" },
      async (f, el) => {
        const ok = await attempt("lock", () =>
          app.peer.call("lock_acquire", {
            pattern: f.pattern.trim(),
            reason: f.reason.trim() || undefined,
            ttl_ms: Math.max(1, Number(f.ttl) || 10) * 60_000,
          }),
        );
        if (ok) {
          el.reset();
          await app.mesh.loadLocks();
        }
      },
      h("input", { name: "pattern", placeholder: "path or glob, e.g. docs/**", required: true }),
      h("input", { name: "reason", placeholder: "why" }),
      h("label", null, "for ", h("input", { name: "ttl", type: "number", min: "1", value: "10", title: "minutes" }), " min"),
      h("button", { type: "submit" }, "Lock"),
    );
    function render(): void {
      const now = Date.now();
      const admin = app.peer.role !== "member";
      replace(
        held,
        app.mesh.locks.length === 0
          ? h("tr", null, h("td", { class: "empty" }, "No locks held."))
          : app.mesh.locks.map((l) => {
              const mine = l.holder_member === app.peer.memberId;
              const release = async (force: boolean) => {
                const reason = force ? (prompt(`Force-release ${l.holder_name}'s lock on ${l.pattern}? Reason:`) ?? null) : "";
                if (reason === null) return;
                if (
                  await attempt("release", () =>
                    app.peer.call("lock_release", { token: l.token, force, reason: reason || undefined }),
                  )
                ) {
                  await app.mesh.loadLocks();
                }
              };
              return h(
                "tr",
                { data: { token: String(l.token), pattern: l.pattern } },
                h("td", { data: { label: "Pattern" } }, h("code", null, l.pattern), l.mode === "shared" ? badge("shared", "") : null),
                h("td", { data: { label: "Holder" } }, l.holder_name),
                h("td", { data: { label: "Why" } }, l.reason ?? ""),
                h("td", { data: { label: "Held" } }, ago(l.acquired_at_ms, now)),
                h("td", { data: { label: "Expires in" } }, duration(l.expires_at_ms - now)),
                h(
                  "td",
                  null,
                  mine
                    ? h("button", { type: "button", class: "release", on: { click: () => void release(false) } }, "Release")
                    : admin
                      ? h("button", { type: "button", class: "force danger", on: { click: () => void release(true) } }, "Force-release")
                      : null,
                ),
              );
            }),
      );
      replace(
        queue,
        app.mesh.waiters.length === 0
          ? h("li", { class: "empty" }, "Nobody is waiting.")
          : app.mesh.waiters.map((w) =>
              h("li", null, h("code", null, w.pattern), ` ${w.name} waiting since ${time(w.since_ms)}, gives up in ${duration(w.deadline_ms - now)}`),
            ),
      );
    }
    replace(
      root,
      h(
        "div",
        { class: "locks" },
        h("h2", null, "Locks"),
        acquire,
        h(
          "table",
          { class: "table" },
          h("thead", null, h("tr", null, ["Pattern", "Holder", "Why", "Held", "Expires in", ""].map((c) => h("th", null, c)))),
          held,
        ),
        h("h3", null, "Waiting"),
        queue,
      ),
    );
    render();
    const tick = setInterval(() => (root.isConnected ? render() : clearInterval(tick)), 15_000);
    return { update: render };
  },
};

// ---------------------------------------------------------------------------------------------
// Threads

function memberChecklist(app: App, name: string): HTMLElement {
  const others = [...app.mesh.members.values()].filter((m) => uuidString(m.member_id) !== app.peer.memberId);
  return h(
    "fieldset",
    { class: "checks" },
    h("legend", null, "Waiting on"),
    others.map((m) =>
      h("label", null, h("input", { type: "checkbox", name, value: uuidString(m.member_id) }), " ", m.display_name),
    ),
  );
}

function checked(formEl: HTMLFormElement, name: string): Uint8Array[] {
  return [...formEl.querySelectorAll<HTMLInputElement>(`input[name="${name}"]:checked`)].map((i) => uuidBytes(i.value));
}

const threads: View = {
  topics: ["threads", "members"],
  mount(app: App, root: HTMLElement, arg: string): Mounted {
    let mine = false;
    const list = h("ul", { class: "threads", id: "threads" });
    const detail = h("section", { class: "thread-detail", id: "thread-detail" });
    const open = form(
      { class: "stack-form", id: "thread-open" },
      async (f, el) => {
        const ok = await attempt("open thread", async () => {
          const r = await app.peer.call<unknown>("thread_open", {
            topic: f.topic.trim(),
            body: f.body.trim(),
            waiting_on: checked(el, "waiting"),
            priority: f.priority as Priority,
          });
          const t = withStringIds<Thread>(r);
          app.mesh.threads.set(t.number, t);
          app.mesh.emit("threads");
        });
        if (ok) el.reset();
      },
      h("input", { name: "topic", placeholder: "Topic", required: true }),
      h("textarea", { name: "body", placeholder: "Question", required: true, rows: 2 }),
      memberChecklist(app, "waiting"),
      h("select", { name: "priority" }, ["next", "now", "low"].map((p) => h("option", { value: p }, p))),
      h("button", { type: "submit" }, "Open thread"),
    );
    const filter = h("label", null, h("input", { type: "checkbox", on: { change: (e) => {
      mine = (e.target as HTMLInputElement).checked;
      renderList();
    } } }), " waiting on me");

    function renderList(): void {
      const me = app.peer.memberId;
      const items = [...app.mesh.threads.values()]
        .filter((t) => !mine || (t.waiting_on.includes(me) && !t.resolved))
        .sort((a, b) => Number(a.resolved) - Number(b.resolved) || b.updated_at_ms - a.updated_at_ms);
      replace(
        list,
        items.length === 0
          ? h("li", { class: "empty" }, "No threads.")
          : items.map((t) =>
              h(
                "li",
                { class: t.resolved ? "resolved" : "", data: { thread: String(t.number) } },
                h("a", { href: `#/threads/${t.number}` }, `#${t.number} `, t.topic),
                " ",
                t.resolved ? badge("resolved", "done") : t.waiting_on.includes(me) ? badge("waiting on you", "now") : null,
                h("span", { class: "muted" }, ` ${t.posts} posts · ${ago(t.updated_at_ms)}`),
              ),
            ),
      );
    }

    async function renderDetail(): Promise<void> {
      const number = Number(arg);
      if (!number) {
        replace(detail, h("p", { class: "muted" }, "Pick a thread."));
        return;
      }
      try {
        const r = withStringIds<{ thread: Thread; posts: ThreadPost[] }>(await app.peer.call("thread_get", { number }));
        const waiting = r.thread.waiting_on.map((id) => app.mesh.memberName(id)).join(", ");
        replace(
          detail,
          h("h3", null, `#${r.thread.number} `, r.thread.topic),
          h("p", { class: "muted" }, r.thread.resolved ? "resolved" : `waiting on ${waiting || "nobody"}`),
          h(
            "ol",
            { class: "posts" },
            r.posts.map((p) => h("li", null, h("strong", null, p.author_name), " ", h("span", { class: "muted" }, time(p.at_ms)), h("div", { class: "body" }, p.body))),
          ),
          r.thread.resolved
            ? null
            : form(
                { class: "stack-form", id: "thread-reply" },
                async (f, el) => {
                  if (await attempt("reply", () => app.peer.call("thread_reply", { number, body: f.body.trim() }))) {
                    el.reset();
                    await renderDetail();
                  }
                },
                h("textarea", { name: "body", placeholder: "Reply", required: true, rows: 2 }),
                h(
                  "div",
                  { class: "row" },
                  h("button", { type: "submit" }, "Reply"),
                  h(
                    "button",
                    {
                      type: "button",
                      on: {
                        click: () =>
                          void attempt("resolve", () => app.peer.call("thread_resolve", { number })).then(() => renderDetail()),
                      },
                    },
                    "Resolve",
                  ),
                ),
              ),
        );
      } catch (e) {
        replace(detail, h("p", { class: "error" }, (e as Error).message));
      }
    }

    replace(
      root,
      h(
        "div",
        { class: "threads-view" },
        h("aside", { class: "side" }, h("div", { class: "section-head" }, h("h2", null, "Threads"), filter), list, h("h3", null, "New thread"), open),
        detail,
      ),
    );
    renderList();
    void renderDetail();
    return {
      update(topics) {
        renderList();
        if (topics.has("threads") && !detail.contains(document.activeElement)) void renderDetail();
      },
    };
  },
};

// ---------------------------------------------------------------------------------------------
// Shared state

const state: View = {
  topics: ["state"],
  mount(app: App, root: HTMLElement): Mounted {
    const rows = h("tbody", { id: "state-rows" });
    const set = form(
      { class: "inline-form", id: "state-set" },
      async (f, el) => {
        const expect = f.expect.trim() === "" ? undefined : Number(f.expect);
        if (await attempt("set", () => app.peer.call("state_set", { key: f.key.trim(), value: f.value, expect_version: expect }))) {
          el.reset();
        }
      },
      h("input", { name: "key", placeholder: "key", required: true }),
      h("input", { name: "value", placeholder: "value" }),
      h("input", { name: "expect", type: "number", min: "0", placeholder: "only at version", title: "0 = only if it does not exist" }),
      h("button", { type: "submit" }, "Set"),
    );
    function render(): void {
      const entries = [...app.mesh.state.values()].sort((a, b) => a.key.localeCompare(b.key));
      replace(
        rows,
        entries.length === 0
          ? h("tr", null, h("td", { class: "empty" }, "No shared state yet."))
          : entries.map((e) =>
              h(
                "tr",
                { data: { key: e.key } },
                h("td", { data: { label: "Key" } }, h("code", null, e.key)),
                h("td", { data: { label: "Value" } }, h("code", { class: "value" }, e.value)),
                h("td", { data: { label: "Version" } }, String(e.version)),
                h("td", { data: { label: "By" } }, `${e.updated_by_name}, ${ago(e.updated_at_ms)}`),
                h(
                  "td",
                  null,
                  h(
                    "button",
                    {
                      type: "button",
                      class: "link",
                      on: { click: () => void attempt("delete", () => app.peer.call("state_delete", { key: e.key, expect_version: e.version })) },
                    },
                    "delete",
                  ),
                ),
              ),
            ),
      );
    }
    replace(
      root,
      h(
        "div",
        null,
        h("h2", null, "Shared state"),
        h("p", { class: "muted" }, "Readable by whoever runs the broker: no secrets here."),
        set,
        h("table", { class: "table" }, h("thead", null, h("tr", null, ["Key", "Value", "Version", "Updated", ""].map((c) => h("th", null, c)))), rows),
      ),
    );
    render();
    return { update: render };
  },
};

// ---------------------------------------------------------------------------------------------
// Reminders

function describeTarget(app: App, t: unknown): string {
  if (t === "all") return "everyone";
  const o = t as { member?: string | Uint8Array; group?: string };
  if (o.group) return `@${o.group}`;
  if (o.member) return app.mesh.memberName(typeof o.member === "string" ? o.member : uuidString(o.member));
  return "?";
}

const reminders: View = {
  topics: ["reminders", "members", "groups", "key"],
  mount(app: App, root: HTMLElement): Mounted {
    const list = h("tbody", { id: "reminder-rows" });
    const to = h("select", { name: "to" });
    const create = form(
      { class: "stack-form", id: "remind-create" },
      async (f, el) => {
        let schedule: unknown;
        if (f.cron.trim()) schedule = { kind: "cron", expr: f.cron.trim(), tz: f.tz.trim() || "UTC" };
        else if (f.at) schedule = { kind: "at", at_ms: new Date(f.at).getTime() };
        else schedule = { kind: "in", after_ms: Math.round(Number(f.minutes || "0") * 60_000) };
        let target: Target;
        let memberKey: Uint8Array | null = null;
        if (f.to.startsWith("group:")) target = { group: f.to.slice(6) };
        else {
          const m = app.mesh.members.get(f.to);
          if (!m) return;
          target = { member: m.member_id };
          memberKey = m.pubkey;
        }
        const ok = await attempt("remind", async () => {
          const sealed = app.peer.sealReminder(target, memberKey, f.text);
          await app.peer.call("remind_create", {
            schedule,
            target,
            priority: f.priority,
            sealing: sealed.sealing,
            nonce: sealed.nonce,
            ciphertext: sealed.ciphertext,
            label: f.label.trim() || undefined,
          });
          await app.mesh.loadReminders();
        });
        if (ok) el.reset();
      },
      h("input", { name: "text", placeholder: "Remind of… (sealed end to end)", required: true }),
      h(
        "div",
        { class: "row" },
        h("label", null, "in ", h("input", { name: "minutes", type: "number", min: "0", value: "30" }), " min"),
        h("label", null, "or at ", h("input", { name: "at", type: "datetime-local" })),
        h("label", null, "or cron ", h("input", { name: "cron", placeholder: "0 9 * * MON-FRI" })),
        h("input", { name: "tz", placeholder: "time zone", value: Intl.DateTimeFormat().resolvedOptions().timeZone }),
      ),
      h(
        "div",
        { class: "row" },
        h("label", null, "to ", to),
        h("select", { name: "priority" }, ["next", "now", "low"].map((p) => h("option", { value: p }, p))),
        h("input", { name: "label", placeholder: "label (visible to the broker)" }),
        h("button", { type: "submit" }, "Add reminder"),
      ),
    );
    function render(): void {
      replace(
        to,
        h("option", { value: app.peer.memberId }, "me"),
        [...app.mesh.members.values()]
          .filter((m) => uuidString(m.member_id) !== app.peer.memberId)
          .map((m) => h("option", { value: uuidString(m.member_id) }, m.display_name)),
        app.mesh.groups.map((g) => h("option", { value: `group:${g.name}` }, `@${g.name}`)),
      );
      replace(
        list,
        app.mesh.reminders.length === 0
          ? h("tr", null, h("td", { class: "empty" }, "No reminders."))
          : app.mesh.reminders.map((r) =>
              h(
                "tr",
                { data: { reminder: String(r.number) } },
                h("td", { data: { label: "#" } }, `#${r.number}`),
                h("td", { data: { label: "Label" } }, r.label ?? h("span", { class: "muted" }, "(sealed)")),
                h("td", { data: { label: "To" } }, describeTarget(app, r.target)),
                h("td", { data: { label: "When" } }, r.schedule.kind === "cron" ? `${r.schedule.expr} (${r.schedule.tz})` : r.next_fire_at_ms ? new Date(r.next_fire_at_ms).toLocaleString() : "done"),
                h("td", { data: { label: "By" } }, r.creator_name),
                h(
                  "td",
                  null,
                  r.cancelled
                    ? "cancelled"
                    : h(
                        "button",
                        {
                          type: "button",
                          class: "link",
                          on: { click: () => void attempt("cancel", () => app.peer.call("remind_cancel", { number: r.number })).then(() => app.mesh.loadReminders()) },
                        },
                        "cancel",
                      ),
                ),
              ),
            ),
      );
    }
    replace(
      root,
      h(
        "div",
        null,
        h("h2", null, "Reminders"),
        create,
        h("table", { class: "table" }, h("thead", null, h("tr", null, ["#", "Label", "To", "When", "By", ""].map((c) => h("th", null, c)))), list),
      ),
    );
    render();
    void app.mesh.loadReminders().catch(() => undefined);
    return { update: render };
  },
};

// ---------------------------------------------------------------------------------------------
// Memory and search

const memory: View = {
  topics: ["memory"],
  mount(app: App, root: HTMLElement): Mounted {
    const results = h("ul", { class: "results", id: "search-results" });
    const recent = h("ul", { class: "results", id: "memories" });
    const search = form(
      { class: "inline-form", id: "search" },
      async (f) => {
        await attempt("search", async () => {
          const r = withStringIds<{ hits: { kind: string; number: number; title: string; snippet: string }[] }>(
            await app.peer.call("search", { query: f.query, limit: 30 }),
          );
          replace(
            results,
            r.hits.length === 0
              ? h("li", { class: "empty" }, "Nothing found.")
              : r.hits.map((hit) =>
                  h(
                    "li",
                    null,
                    badge(hit.kind, "kind"),
                    ` #${hit.number} `,
                    h("strong", null, hit.title),
                    // The snippet marks matches as **bold**; shown as text, the marks removed.
                    h("div", { class: "muted" }, hit.snippet.replace(/\*\*/g, "")),
                  ),
                ),
          );
        });
      },
      h("input", { name: "query", placeholder: "Search memory, tasks and threads", required: true }),
      h("button", { type: "submit" }, "Search"),
    );
    const remember = form(
      { class: "stack-form", id: "remember" },
      async (f, el) => {
        const ok = await attempt("remember", async () => {
          const m = withStringIds<Memory>(
            await app.peer.call("remember", { body: f.body, tags: f.tags.split(",").map((s) => s.trim()).filter(Boolean) }),
          );
          app.mesh.memories.set(m.number, m);
          app.mesh.emit("memory");
        });
        if (ok) el.reset();
      },
      h("textarea", { name: "body", placeholder: "Something the team should know (readable by the broker)", required: true, rows: 2 }),
      h("div", { class: "row" }, h("input", { name: "tags", placeholder: "tags, comma-separated" }), h("button", { type: "submit" }, "Remember")),
    );
    function render(): void {
      const items = [...app.mesh.memories.values()].sort((a, b) => b.at_ms - a.at_ms);
      replace(
        recent,
        items.length === 0
          ? h("li", { class: "empty" }, "Memories made while you are here appear here; search finds the rest.")
          : items.map((m) =>
              h(
                "li",
                null,
                h("strong", null, `#${m.number}`),
                " ",
                m.body,
                " ",
                m.tags.map((t) => badge(t, "tag")),
                h("span", { class: "muted" }, ` ${m.author_name}, ${ago(m.at_ms)} `),
                h(
                  "button",
                  { type: "button", class: "link", on: { click: () => void attempt("forget", () => app.peer.call("forget", { number: m.number })) } },
                  "forget",
                ),
              ),
            ),
      );
    }
    replace(root, h("div", null, h("h2", null, "Memory"), search, results, h("h3", null, "Remember"), remember, recent));
    render();
    return { update: render };
  },
};

export const coordViews = { locks, threads, state, reminders, memory };
