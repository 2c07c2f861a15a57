// The lobby: who is doing what. Machines and their sessions (status, summary, working
// directory, agent kind, last activity), the people online, and beside them the mesh's locks,
// open tasks and latest activity. Rows are patched in place as presence changes, so a mesh of
// hundreds of sessions stays cheap to watch.

import type { App, Mounted, View } from "../app";
import { ago, badge, h, replace } from "../ui";
import { PeerInfo, uuidString } from "../wire";

/// A person at a browser or a terminal (the CLI says `human`), not an agent.
function isPerson(p: PeerInfo): boolean {
  const kind = p.profile.agent_kind;
  return !kind || kind === "browser" || kind === "human";
}

function sessionRow(app: App, p: PeerInfo): HTMLElement {
  const id = uuidString(p.session_id);
  const me = id === app.peer.sessionId;
  const kind = p.profile.agent_kind === "human" ? "terminal" : (p.profile.agent_kind ?? "");
  return h(
    "li",
    { class: `session ${p.status}`, data: { session: id } },
    h("span", { class: `dot ${p.status}`, title: p.status }),
    h(
      "div",
      { class: "who" },
      h(
        "a",
        { class: "name", href: `#/messages/member:${uuidString(p.member_id)}` },
        p.display_name,
        me ? " (you)" : "",
      ),
      " ",
      badge(p.status, p.status),
      kind ? badge(kind, "kind") : null,
      p.profile.agent_model ? badge(p.profile.agent_model, "kind") : null,
    ),
    p.profile.summary ? h("div", { class: "summary" }, p.profile.summary) : null,
    h(
      "div",
      { class: "meta" },
      isPerson(p) ? null : h("a", { class: "watch", href: `#/room/${id}`, data: { room: id } }, "Watch"),
      p.profile.cwd ? h("code", { class: "cwd" }, p.profile.cwd) : null,
      h("span", { class: "since", title: new Date(p.status_since_ms).toLocaleString() }, `${p.status} ${ago(p.status_since_ms)}`),
    ),
  );
}

export const lobbyView: View = {
  topics: ["presence", "members", "locks", "tasks", "activity", "groups"],
  mount(app: App, root: HTMLElement): Mounted {
    let group = "";
    const filter = h("select", { id: "group-filter", title: "Show sessions in a group" });
    filter.addEventListener("change", () => {
      group = filter.value;
      renderFleet();
    });
    const counts = h("p", { class: "counts", id: "lobby-counts" });
    const people = h("ul", { class: "sessions", id: "people" });
    const machines = h("div", { id: "machines" });
    const locks = h("ul", { class: "compact", id: "lobby-locks" });
    const tasks = h("ul", { class: "compact", id: "lobby-tasks" });
    const activity = h("ul", { class: "compact activity", id: "lobby-activity" });
    replace(
      root,
      h(
        "div",
        { class: "lobby" },
        h(
          "section",
          { class: "fleet" },
          h("div", { class: "section-head" }, h("h2", null, "Sessions"), h("label", null, "Group ", filter)),
          counts,
          h("h3", null, "People online"),
          people,
          h("h3", null, "Machines"),
          machines,
        ),
        h(
          "aside",
          { class: "side" },
          h("h3", null, h("a", { href: "#/locks" }, "Locks")),
          locks,
          h("h3", null, h("a", { href: "#/tasks" }, "Open tasks")),
          tasks,
          h("h3", null, "Activity"),
          activity,
        ),
      ),
    );

    // Rows by session id, so a presence change touches one row.
    const rows = new Map<string, HTMLElement>();
    const visible = (p: PeerInfo) => !group || (p.profile.groups ?? []).some((g) => g.name === group || g.name.startsWith(`${group}/`));

    function renderFleet(): void {
      rows.clear();
      app.mesh.changed.clear();
      const all = [...app.mesh.peers.values()].filter(visible);
      const humans = all.filter(isPerson).sort((a, b) => a.display_name.localeCompare(b.display_name));
      const agents = all.filter((p) => !isPerson(p));
      replace(people, humans.length ? humans.map((p) => row(p)) : h("li", { class: "empty" }, "nobody"));
      const byHost = new Map<string, PeerInfo[]>();
      for (const p of agents) {
        const host = p.profile.host ?? "unknown machine";
        byHost.set(host, [...(byHost.get(host) ?? []), p]);
      }
      replace(
        machines,
        byHost.size === 0
          ? h("p", { class: "empty" }, "No agent sessions online.")
          : [...byHost.entries()]
              .sort(([a], [b]) => a.localeCompare(b))
              .map(([host, sessions]) =>
                h(
                  "div",
                  { class: "machine", data: { host } },
                  h("h4", null, host, " ", h("span", { class: "muted" }, `${sessions.length} session${sessions.length === 1 ? "" : "s"}`)),
                  h("ul", { class: "sessions" }, sessions.sort((a, b) => a.display_name.localeCompare(b.display_name)).map((p) => row(p))),
                ),
              ),
      );
      renderCounts();
    }

    /// Where a session's row sits (its section and machine).
    function place(p: PeerInfo): string {
      return isPerson(p) ? "people" : `machine:${p.profile.host ?? ""}`;
    }

    function row(p: PeerInfo): HTMLElement {
      const el = sessionRow(app, p);
      el.dataset.place = place(p);
      rows.set(uuidString(p.session_id), el);
      return el;
    }

    function renderCounts(): void {
      const all = [...app.mesh.peers.values()];
      const working = all.filter((p) => p.status === "working").length;
      counts.textContent = `${all.length} online · ${working} working · ${app.mesh.members.size} members`;
    }

    /// Apply presence: patch the rows of sessions that changed in place; rebuild when a session
    /// came, went, or moved to another machine or kind.
    function patchPresence(): boolean {
      const changed = [...app.mesh.changed];
      app.mesh.changed.clear();
      for (const id of changed) {
        const p = app.mesh.peers.get(id);
        const old = rows.get(id);
        if (!p || !old || !visible(p)) return false;
        if (old.dataset.place !== place(p)) return false;
        old.replaceWith(row(p));
      }
      renderCounts();
      return true;
    }

    function renderFilter(): void {
      const names = [...new Set(app.mesh.groups.map((g) => g.name))].sort();
      replace(filter, h("option", { value: "" }, "all"), names.map((n) => h("option", { value: n, selected: n === group }, `@${n}`)));
    }

    function renderSide(): void {
      const now = Date.now();
      replace(
        locks,
        app.mesh.locks.length === 0
          ? h("li", { class: "empty" }, "none held")
          : app.mesh.locks.map((l) =>
              h("li", null, h("code", null, l.pattern), " ", h("span", { class: "muted" }, `${l.holder_name}, ${ago(l.acquired_at_ms, now)}`)),
            ),
      );
      const open = [...app.mesh.tasks.values()].filter((t) => ["todo", "in_progress", "review", "blocked"].includes(t.status));
      replace(
        tasks,
        open.length === 0
          ? h("li", { class: "empty" }, "nothing open")
          : open
              .sort((a, b) => a.number - b.number)
              .slice(0, 12)
              .map((t) => h("li", null, `#${t.number} `, t.title, " ", badge(t.status.replace("_", " "), t.status))),
      );
      replace(
        activity,
        app.mesh.activity.length === 0
          ? h("li", { class: "empty" }, "quiet so far")
          : app.mesh.activity.slice(0, 15).map((a) => h("li", null, h("span", { class: "muted" }, ago(a.at, now)), " ", a.summary)),
      );
    }

    renderFilter();
    renderFleet();
    renderSide();
    return {
      update(topics) {
        if (topics.has("groups")) renderFilter();
        if (topics.has("presence") || topics.has("members") || topics.has("groups")) {
          if (topics.has("groups") || topics.has("members") || !patchPresence()) renderFleet();
        }
        if (topics.has("locks") || topics.has("tasks") || topics.has("activity")) renderSide();
      },
    };
  },
};
