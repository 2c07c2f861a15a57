// People: members and their roles, your groups, invites (admins create and revoke them; the
// invite is signed here with your member key), removing members, and leaving the mesh.

import type { App, Mounted, View } from "../app";
import { ago, attempt, badge, form, h, replace, toast } from "../ui";
import { Role, uuidString } from "../wire";

function inviteCode(): string {
  // Unambiguous characters, as the CLI's codes.
  const alphabet = "ABCDEFGHJKMNPQRSTUVWXYZ23456789";
  return Array.from(crypto.getRandomValues(new Uint8Array(10)), (b) => alphabet[b % alphabet.length]).join("");
}

export const adminView: View = {
  topics: ["members", "presence", "invites", "groups"],
  mount(app: App, root: HTMLElement): Mounted {
    const members = h("tbody", { id: "members" });
    const invites = h("tbody", { id: "invites" });
    const groups = h("p", { id: "my-groups" });
    const created = h("div", { class: "invite-made", id: "invite-made" });
    const admin = () => app.peer.role !== "member";

    const invite = form(
      { class: "inline-form", id: "invite-create" },
      async (f) => {
        const code = inviteCode();
        const role = f.role as Role;
        const uses = Math.max(1, Number(f.uses) || 1);
        const expires = Date.now() + Math.max(1, Number(f.hours) || 24) * 3_600_000;
        const groupList = f.groups.split(",").map((g) => g.trim().replace(/^@/, "")).filter(Boolean);
        const ok = await attempt("invite", () =>
          app.peer.call("invite_create", {
            code,
            role,
            max_uses: uses,
            expires_at_ms: expires,
            signature: app.peer.signInvite(code, role, uses, expires),
            groups: groupList,
          }),
        );
        if (ok) {
          replace(
            created,
            "Invite ",
            h("code", { class: "code", id: "new-invite" }, code),
            ` — open ${location.origin} and join with it, or: plexus join ${code} --broker ${location.origin.replace(/^http/, "ws")} --name <name>`,
          );
          await app.mesh.loadInvites();
        }
      },
      h("select", { name: "role" }, h("option", { value: "member" }, "member"), h("option", { value: "admin" }, "admin")),
      h("label", null, h("input", { name: "uses", type: "number", min: "1", value: "1" }), " uses"),
      h("label", null, h("input", { name: "hours", type: "number", min: "1", value: "24" }), " hours"),
      h("input", { name: "groups", placeholder: "groups, e.g. eng" }),
      h("button", { type: "submit" }, "Create invite"),
    );

    const join = form(
      { class: "inline-form", id: "group-join" },
      async (f, el) => {
        if (await attempt("join group", () => app.peer.call("group_join", { name: f.name.trim().replace(/^@/, "") }))) {
          el.reset();
          await app.mesh.loadGroups();
        }
      },
      h("input", { name: "name", placeholder: "group, e.g. eng/backend", required: true }),
      h("button", { type: "submit" }, "Join group"),
    );

    function render(): void {
      const online = new Set([...app.mesh.peers.values()].map((p) => uuidString(p.member_id)));
      const me = app.peer.memberId;
      replace(
        members,
        [...app.mesh.members.values()]
          .sort((a, b) => a.display_name.localeCompare(b.display_name))
          .map((m) => {
            const id = uuidString(m.member_id);
            const removable = admin() && id !== me && m.role !== "owner" && (m.role !== "admin" || app.peer.role === "owner");
            return h(
              "tr",
              { data: { member: id } },
              h("td", { data: { label: "Name" } }, h("span", { class: `dot ${online.has(id) ? "idle" : "off"}` }), m.display_name, id === me ? " (you)" : ""),
              h("td", { data: { label: "Role" } }, badge(m.role, m.role)),
              h("td", { data: { label: "Joined" } }, ago(m.joined_at_ms)),
              h(
                "td",
                null,
                removable
                  ? h(
                      "button",
                      {
                        type: "button",
                        class: "danger",
                        on: {
                          click: () => {
                            if (!confirm(`Remove ${m.display_name} from the mesh?`)) return;
                            void attempt("remove", () => app.peer.call("member_remove", { member_id: m.member_id })).then(() =>
                              app.mesh.loadMembers(),
                            );
                          },
                        },
                      },
                      "Remove",
                    )
                  : null,
              ),
            );
          }),
      );
      const mine = app.mesh.groups.filter((g) => g.members.some((m) => m.member_id === me));
      replace(
        groups,
        mine.length === 0 ? "You are in no group." : "Your groups: ",
        mine.map((g) =>
          h(
            "span",
            { class: "group" },
            `@${g.name} `,
            h(
              "button",
              {
                type: "button",
                class: "link",
                on: { click: () => void attempt("leave group", () => app.peer.call("group_leave", { name: g.name })).then(() => app.mesh.loadGroups()) },
              },
              "leave",
            ),
            " ",
          ),
        ),
      );
      replace(
        invites,
        app.mesh.invites.map((i) =>
          h(
            "tr",
            { data: { invite: i.code } },
            h("td", { data: { label: "Code" } }, h("code", null, i.code)),
            h("td", { data: { label: "Role" } }, i.role),
            h("td", { data: { label: "Used" } }, `${i.uses}/${i.max_uses}`),
            h("td", { data: { label: "Expires" } }, new Date(i.expires_at_ms).toLocaleString()),
            h(
              "td",
              null,
              i.revoked
                ? "revoked"
                : h(
                    "button",
                    {
                      type: "button",
                      class: "link",
                      on: { click: () => void attempt("revoke", () => app.peer.call("invite_revoke", { code: i.code })).then(() => app.mesh.loadInvites()) },
                    },
                    "revoke",
                  ),
            ),
          ),
        ),
      );
    }

    const leave = h(
      "button",
      {
        type: "button",
        class: "danger",
        id: "leave-mesh",
        on: {
          click: () => {
            if (!confirm("Leave this mesh for good? Coming back takes a new invite.")) return;
            void attempt("leave", async () => {
              await app.peer.call("mesh_leave", {});
              toast("you left the mesh");
              await app.logout();
            });
          },
        },
      },
      "Leave mesh",
    );

    replace(
      root,
      h(
        "div",
        { class: "people" },
        h("h2", null, "Members"),
        h("table", { class: "table" }, h("thead", null, h("tr", null, ["Name", "Role", "Joined", ""].map((c) => h("th", null, c)))), members),
        h("h3", null, "Groups"),
        groups,
        join,
        admin()
          ? [
              h("h3", null, "Invites"),
              invite,
              created,
              h(
                "table",
                { class: "table" },
                h("thead", null, h("tr", null, ["Code", "Role", "Used", "Expires", ""].map((c) => h("th", null, c)))),
                invites,
              ),
            ]
          : null,
        h("h3", null, "You"),
        h(
          "p",
          { class: "muted" },
          `${app.peer.identity.displayName} (${app.peer.role}). Your keys live only in this browser; logging out forgets them.`,
        ),
        app.peer.role === "owner" ? null : leave,
      ),
    );
    render();
    if (admin()) void app.mesh.loadInvites().catch(() => undefined);
    return { update: render };
  },
};
