// People: members and their roles, blocking and muting them, your groups, invites (admins
// create and revoke them; the invite is signed here with your member key), removing members
// (the mesh key rotates), the audit log (admins; its hash chain is recomputed here), and
// leaving the mesh.

import type { App, Mounted, View } from "../app";
import * as keys from "../keys";
import { ago, attempt, badge, form, h, replace, toast } from "../ui";
import { Bytes, Role, uuidString } from "../wire";

interface AuditPage {
  entries: keys.AuditEntry[];
  more: boolean;
  checkpoint_seq: number;
  checkpoint_hash: Bytes;
  head_seq: number;
}

function inviteCode(): string {
  // Unambiguous characters, as the CLI's codes.
  const alphabet = "ABCDEFGHJKMNPQRSTUVWXYZ23456789";
  return Array.from(crypto.getRandomValues(new Uint8Array(10)), (b) => alphabet[b % alphabet.length]).join("");
}

export const adminView: View = {
  topics: ["members", "presence", "invites", "groups", "controls", "key"],
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

    const auditRows = h("tbody", { id: "audit" });
    const auditResult = h("p", { id: "audit-result", class: "muted" });
    async function loadAudit(): Promise<void> {
      // Every page from the checkpoint, so the chain can be recomputed here.
      const entries: keys.AuditEntry[] = [];
      let page: AuditPage;
      do {
        const after = entries.length ? entries[entries.length - 1].seq : 0;
        page = await app.peer.call<AuditPage>("audit_list", { after, limit: 1000 });
        entries.push(...page.entries);
      } while (page.more && page.entries.length > 0);
      const broken = keys.auditChainBreak(app.peer.identity.meshId, { seq: page.checkpoint_seq, hash: page.checkpoint_hash }, entries);
      const end = entries.length ? entries[entries.length - 1].seq : page.checkpoint_seq;
      const verdict = broken ?? (end === page.head_seq ? null : `the chain ends at ${end} but its head says ${page.head_seq}`);
      auditResult.textContent = verdict
        ? `Audit chain broken: ${verdict}`
        : `Audit chain intact: ${entries.length} entries (from ${page.checkpoint_seq} to ${end}), recomputed in this browser.`;
      auditResult.className = verdict ? "audit-broken" : "muted";
      // Members who are gone are named by what they did while they were in.
      const names = new Map<string, string>();
      for (const e of entries) if (e.actor_member) names.set(uuidString(e.actor_member), e.actor_name);
      replace(
        auditRows,
        entries
          .slice(-50)
          .reverse()
          .map((e) =>
            h(
              "tr",
              { data: { seq: String(e.seq) } },
              h("td", { data: { label: "When" } }, ago(e.at_ms)),
              h("td", { data: { label: "Who" } }, e.actor_name),
              h("td", { data: { label: "Action" } }, h("code", null, e.action)),
              h("td", { data: { label: "Subject" } }, app.mesh.members.get(e.subject)?.display_name ?? names.get(e.subject) ?? e.subject),
            ),
          ),
      );
    }

    function controlButton(memberId: Bytes, kind: "block" | "mute", on: boolean): HTMLElement {
      const label = { block: ["Block", "Unblock"], mute: ["Mute", "Unmute"] }[kind][on ? 1 : 0];
      return h(
        "button",
        {
          type: "button",
          class: "link",
          data: { control: kind },
          on: { click: () => void attempt(label.toLowerCase(), () => app.mesh.setControl(memberId, kind, !on)) },
        },
        label,
      );
    }

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
                { class: "actions" },
                id === me
                  ? null
                  : [
                      controlButton(m.member_id, "mute", app.mesh.controls.muted.has(id)),
                      " ",
                      controlButton(m.member_id, "block", app.mesh.controls.blocked.has(id)),
                      " ",
                    ],
                removable
                  ? h(
                      "button",
                      {
                        type: "button",
                        class: "danger",
                        on: {
                          click: () => {
                            if (!confirm(`Remove ${m.display_name} from the mesh?`)) return;
                            // The removed member held the mesh key: rotate it now.
                            void attempt("remove", async () => {
                              await app.peer.call("member_remove", { member_id: m.member_id });
                              await app.peer.catchUpKeys();
                            }).then(() => app.mesh.loadMembers());
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
              h("h3", null, "Audit log"),
              auditResult,
              h(
                "button",
                { type: "button", id: "audit-verify", on: { click: () => void attempt("audit", loadAudit) } },
                "Recompute the chain",
              ),
              h(
                "table",
                { class: "table" },
                h("thead", null, h("tr", null, ["When", "Who", "Action", "Subject"].map((c) => h("th", null, c)))),
                auditRows,
              ),
            ]
          : null,
        h("h3", null, "You"),
        h(
          "p",
          { class: "muted" },
          `${app.peer.identity.displayName} (${app.peer.role}). Your keys live only in this browser; logging out forgets them. ` +
            `The mesh key is at epoch ${app.peer.identity.keyEpoch ?? 0}: it changes whenever a member goes.`,
        ),
        app.peer.role === "owner" ? null : leave,
      ),
    );
    render();
    if (admin()) {
      void app.mesh.loadInvites().catch(() => undefined);
      void loadAudit().catch(() => undefined);
    }
    return { update: render };
  },
};
