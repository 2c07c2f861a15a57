// Start: a browser that holds an identity opens the app; one that does not gets in by an invite
// code (it becomes a new member) or by linking to the member its person already is on the CLI
// (`plexus link`). Keys are made here and never leave the browser.

import "./style.css";
import { App } from "./app";
import * as db from "./db";
import * as keys from "./keys";
import { attempt, form, h, replace, toast } from "./ui";
import { decodeBody, decodeFrame, encodeRequest, newUuid, Role, unhex, uuidBytes } from "./wire";

const root = document.getElementById("app") as HTMLElement;

/// One anonymous op on a connection of its own (no hello).
function anonymous<T>(op: string, body: unknown): Promise<T> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`);
    ws.binaryType = "arraybuffer";
    const timer = setTimeout(() => {
      ws.close();
      reject(new Error("the broker did not answer"));
    }, 15_000);
    ws.onopen = () => ws.send(encodeRequest(1, op, body));
    ws.onerror = () => reject(new Error("cannot reach the broker"));
    ws.onmessage = (e) => {
      clearTimeout(timer);
      ws.close();
      const frame = decodeFrame(new Uint8Array(e.data as ArrayBuffer));
      if (!("res" in frame)) return reject(new Error("unexpected answer"));
      if (frame.res.err) reject(new Error(frame.res.err.message));
      else resolve((frame.res.ok ? decodeBody(frame.res.ok) : {}) as T);
    };
  });
}

async function joinByInvite(code: string, name: string): Promise<db.Identity> {
  const member = keys.signingPair();
  const claim = keys.boxPair();
  const memberId = newUuid();
  const claimed = await anonymous<{
    mesh_id: Uint8Array;
    mesh_name: string;
    member_id: Uint8Array;
    role: Role;
    issuer_pubkey: Uint8Array;
    invite_signature: Uint8Array;
    expires_at_ms: number;
    max_uses: number;
  }>("invite_claim", {
    code,
    member_id: memberId,
    member_pubkey: member.publicKey,
    claim_pubkey: claim.publicKey,
    display_name: name,
    signature: keys.sign(member, keys.claimBytes(code, memberId, member.publicKey, claim.publicKey)),
  });
  // The invite must be signed by the member the broker says issued it.
  const capability = keys.inviteBytes(claimed.mesh_id, code, claimed.role, claimed.max_uses, claimed.expires_at_ms);
  if (!keys.verify(claimed.issuer_pubkey, capability, claimed.invite_signature)) {
    throw new Error("the invite's signature does not verify");
  }
  const session = keys.boxPair();
  return {
    meshId: claimed.mesh_id,
    meshName: claimed.mesh_name,
    memberId,
    memberSecret: member.secretKey,
    displayName: name,
    role: claimed.role,
    sessionId: newUuid(),
    sessionSecret: session.secretKey,
    meshKey: null,
    claimSecret: claim.secretKey,
    keyCommitment: null,
  };
}

interface LinkBundle {
  v: number;
  mesh_id: string;
  mesh_name: string;
  member_id: string;
  display_name: string;
  role: Role;
  member_secret: string;
  mesh_key?: string | null;
  key_epoch?: number;
  retired_mesh_keys?: Record<string, string>;
  key_commitment?: string | null;
}

/// Offer a link and wait for the person to approve it on the CLI.
async function link(show: (code: string) => void, cancelled: () => boolean): Promise<db.Identity | null> {
  const linkKey = keys.boxPair();
  const code = keys.linkCode(linkKey.publicKey);
  await anonymous("link_offer", { code, link_pubkey: linkKey.publicKey });
  show(code);
  const deadline = Date.now() + 10 * 60_000;
  while (Date.now() < deadline && !cancelled()) {
    await new Promise((r) => setTimeout(r, 1000));
    const r = await anonymous<{ sealed?: Uint8Array | null }>("link_fetch", { code });
    if (!r.sealed) continue;
    const bundle = JSON.parse(keys.fromUtf8.decode(keys.openAnonymous(linkKey, r.sealed))) as LinkBundle;
    const member = keys.signingFromSecret(unhex(bundle.member_secret));
    const session = keys.boxPair();
    return {
      meshId: uuidBytes(bundle.mesh_id),
      meshName: bundle.mesh_name,
      memberId: uuidBytes(bundle.member_id),
      memberSecret: member.secretKey,
      displayName: bundle.display_name,
      role: bundle.role,
      sessionId: newUuid(),
      sessionSecret: session.secretKey,
      meshKey: bundle.mesh_key ? unhex(bundle.mesh_key) : null,
      keyEpoch: bundle.key_epoch ?? 0,
      retiredKeys: Object.fromEntries(
        Object.entries(bundle.retired_mesh_keys ?? {}).map(([epoch, key]) => [Number(epoch), unhex(key)]),
      ),
      claimSecret: null,
      keyCommitment: bundle.key_commitment ? unhex(bundle.key_commitment) : null,
    };
  }
  return null;
}

function signIn(): void {
  let linking = false;
  const linkArea = h("div", { id: "link-area" });
  const invite = form(
    { class: "stack-form", id: "join-form" },
    async (f) => {
      await attempt("join", async () => {
        const identity = await joinByInvite(f.code.trim().toUpperCase(), f.name.trim());
        await db.saveIdentity(identity);
        await enter(identity);
      });
    },
    h("label", { for: "invite-code" }, "Invite code"),
    h("input", { id: "invite-code", name: "code", required: true, autocomplete: "off", placeholder: "K7QX2M9RTA" }),
    h("label", { for: "display-name" }, "Your name"),
    h("input", { id: "display-name", name: "name", required: true, autocomplete: "nickname", placeholder: "ana" }),
    h("button", { type: "submit", id: "join" }, "Join the mesh"),
  );
  const startLink = h(
    "button",
    {
      type: "button",
      id: "start-link",
      on: {
        click: () => {
          if (linking) return;
          linking = true;
          startLink.disabled = true;
          void attempt("link", async () => {
            const identity = await link(
              (code) =>
                replace(
                  linkArea,
                  h("p", null, "On a machine where you use Plexus, run:"),
                  h("pre", { class: "command" }, `plexus link ${keys.displayCode(code)}`),
                  h("p", { class: "code", id: "link-code" }, keys.displayCode(code)),
                  h("p", { class: "muted" }, "Waiting for your approval there… (valid ten minutes)"),
                ),
              () => !linking,
            );
            if (!identity) throw new Error("the link expired; start again");
            await db.saveIdentity(identity);
            await enter(identity);
          }).finally(() => {
            linking = false;
            startLink.disabled = false;
          });
        },
      },
    },
    "Link to my CLI identity",
  );
  replace(
    root,
    h(
      "div",
      { class: "signin" },
      h("h1", null, "Plexus"),
      h("p", { class: "muted" }, "Agents and people, one team. Your keys are made in this browser and never leave it."),
      h("div", { class: "cards" }, h("section", { class: "card" }, h("h2", null, "Join with an invite"), invite), h(
        "section",
        { class: "card" },
        h("h2", null, "Already a member on the CLI?"),
        h("p", { class: "muted" }, "Be the same member here: this browser shows a code, you approve it with plexus link."),
        startLink,
        linkArea,
      )),
    ),
  );
}

async function enter(identity: db.Identity): Promise<void> {
  const app = new App(identity, root, () => {
    location.hash = "";
    signIn();
  });
  await app.start();
}

async function boot(): Promise<void> {
  await keys.ready();
  const identity = await db.loadIdentity();
  if (identity) await enter(identity);
  else signIn();
}

boot().catch((e) => {
  toast(`could not start: ${(e as Error).message}`, "error");
});
