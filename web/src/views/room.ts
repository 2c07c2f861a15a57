// A session room: one agent session's stream (replayed from the log, then live), who is
// watching and typing, the wheel (take, request, pass, release), a prompt box for its holder,
// and the agent's permission requests with Allow / Deny for those who may answer them.
// Everything from the agent is rendered as text.

import type { App, Mounted, View } from "../app";
import { badge, h, replace, time, toast } from "../ui";
import { ApprovalInfo, Bytes, uuidBytes, uuidString } from "../wire";

interface EntryBody {
  text?: string;
  tool?: string;
  input?: string;
  cwd?: string;
  by?: string;
  approval?: Bytes;
  outcome?: string;
  truncated?: boolean;
}

interface Entry {
  session_id: Bytes;
  seq: number;
  kind: string;
  at_ms: number;
  nonce: Bytes;
  ciphertext: Bytes;
}

interface Viewer {
  member_id: Bytes;
  display_name: string;
  typing: boolean;
}

interface Wheel {
  holder_member: Bytes;
  holder_name: string;
  holder_session: Bytes;
  token: number;
  since_ms: number;
  requested_by?: string | null;
}

interface RoomState {
  session_id: Bytes;
  member_id: Bytes;
  member_name: string;
  online: boolean;
  head: number;
  viewers: Viewer[];
  wheel?: Wheel | null;
  pending: ApprovalInfo[];
}

const LABELS: Record<string, string> = {
  session_start: "started",
  session_end: "ended",
  prompt: "prompt",
  assistant: "agent",
  tool_call: "tool",
  tool_result: "result",
  status: "status",
  permission_request: "asks",
  permission_decision: "decision",
  notice: "notice",
  dropped: "dropped",
};

/// How often at most the room hears "typing".
const TYPING_EVERY_MS = 3000;

export const roomView: View = {
  topics: ["presence"],
  mount(app: App, root: HTMLElement, arg: string): Mounted {
    const sessionId = arg;
    const session = uuidBytes(sessionId);
    const head = h("div", { class: "room-head", id: "room-head" });
    const viewers = h("p", { class: "viewers muted", id: "room-viewers" });
    const wheelBox = h("div", { class: "wheel", id: "room-wheel" });
    const approvals = h("div", { class: "approvals", id: "room-approvals" });
    const log = h("ol", { class: "stream", id: "room-stream" });
    const input = h("textarea", { id: "room-prompt", rows: 2, placeholder: "Prompt the agent (needs the wheel)" });
    const send = h("button", { id: "room-send", type: "submit" }, "Send");
    const composer = h(
      "form",
      {
        class: "composer",
        on: {
          submit: (e) => {
            e.preventDefault();
            void sendPrompt();
          },
        },
      },
      input,
      send,
    );
    replace(root, h("div", { class: "room" }, head, viewers, wheelBox, approvals, log, composer));

    let state: RoomState | null = null;
    let last = 0;
    let lastTyping = 0;
    const decided = new Map<string, ApprovalInfo>();

    const me = () => uuidString(app.peer.identity.memberId);
    const agent = () => app.mesh.peers.get(sessionId);

    function entryRow(e: Entry): HTMLElement {
      const b = app.peer.openMeshJson<EntryBody>(e.nonce, e.ciphertext);
      const label = LABELS[e.kind] ?? e.kind;
      let text: string;
      if (!b) text = "[cannot open yet: the mesh key has not arrived]";
      else if (e.kind === "tool_call") text = `${b.tool ?? ""} ${b.input ?? ""}`;
      else if (e.kind === "tool_result") text = `${b.tool ?? ""} → ${b.text ?? ""}`;
      else if (e.kind === "permission_request") text = `${b.tool ?? ""} ${b.input ?? ""}`;
      else if (e.kind === "permission_decision") text = `${b.outcome ?? ""} by ${b.by ?? "nobody"}${b.text ? `: ${b.text}` : ""}`;
      else if (e.kind === "status") text = b.outcome ?? "";
      else text = b.text ?? "";
      return h(
        "li",
        { class: `entry ${e.kind}`, data: { seq: String(e.seq), kind: e.kind } },
        h("span", { class: "at muted" }, time(e.at_ms)),
        " ",
        badge(label, e.kind),
        " ",
        h("span", { class: "text" }, text),
        b?.truncated ? h("span", { class: "muted" }, " (cut)") : null,
      );
    }

    function append(e: Entry): void {
      if (e.seq <= last) return;
      last = e.seq;
      const stick = log.scrollTop + log.clientHeight >= log.scrollHeight - 40;
      log.append(entryRow(e));
      if (stick) log.scrollTop = log.scrollHeight;
    }

    function holdsWheel(): boolean {
      return !!state?.wheel && uuidString(state.wheel.holder_member) === me();
    }

    function wheel(action: string, to?: Bytes): void {
      app.peer
        .call<RoomState>("wheel", { session_id: session, action, to })
        .then(render)
        .catch((e) => toast(`wheel: ${(e as Error).message}`, "error"));
    }

    function render(s: RoomState): void {
      state = s;
      const a = agent();
      replace(
        head,
        h("h2", null, `${s.member_name}'s session`, " ", badge(s.online ? "online" : "offline", s.online ? "idle" : "offline")),
        a?.profile.summary ? h("p", { class: "summary" }, a.profile.summary) : null,
        a?.profile.cwd ? h("code", { class: "cwd" }, a.profile.cwd) : null,
      );
      viewers.textContent = s.viewers.length
        ? `Watching: ${s.viewers.map((v) => (v.typing ? `${v.display_name} (typing…)` : v.display_name)).join(", ")}`
        : "";
      const w = s.wheel;
      const mine = holdsWheel();
      const others = s.viewers.filter((v) => uuidString(v.member_id) !== me());
      replace(
        wheelBox,
        h(
          "span",
          { id: "wheel-holder" },
          w ? `${w.holder_name} has the wheel (token ${w.token})${w.requested_by ? ` · ${w.requested_by} asks for it` : ""}` : "The wheel is free",
        ),
        " ",
        !w || (!mine && uuidString(s.member_id) === me())
          ? h("button", { id: "wheel-take", on: { click: () => wheel("take") } }, "Take the wheel")
          : null,
        w && !mine ? h("button", { id: "wheel-request", on: { click: () => wheel("request") } }, "Ask for it") : null,
        mine ? h("button", { id: "wheel-release", on: { click: () => wheel("release") } }, "Release") : null,
        mine
          ? others.map((v) =>
              h("button", { class: "link", data: { pass: v.display_name }, on: { click: () => wheel("pass", v.member_id) } }, `Pass to ${v.display_name}`),
            )
          : null,
      );
      input.disabled = !mine;
      send.disabled = !mine;
      renderApprovals();
    }

    function renderApprovals(): void {
      const pending = state?.pending ?? [];
      replace(
        approvals,
        pending.map((p) => {
          const id = uuidString(p.id);
          const b = app.peer.openMeshJson<EntryBody>(p.nonce, p.ciphertext);
          const reason = h("input", { placeholder: "Reason (optional)", class: "reason" });
          const decide = (allow: boolean) =>
            app.peer
              .call<ApprovalInfo>("approval_decide", {
                id: p.id,
                allow,
                ...(reason.value ? (({ nonce, ciphertext }) => ({ reason_nonce: nonce, reason_ciphertext: ciphertext }))(app.peer.sealMesh(reason.value)) : {}),
              })
              .then((info) => {
                decided.set(id, info);
                toast(`${allow ? "allowed" : "denied"}`);
              })
              .catch((e) => toast(`decision: ${(e as Error).message}`, "error"));
          return h(
            "div",
            { class: "approval card", data: { approval: id } },
            h("strong", null, `${p.member_name}'s agent asks to use ${b?.tool ?? "a tool"}`),
            h("pre", { class: "input" }, b?.input ?? ""),
            b?.cwd ? h("code", { class: "cwd" }, b.cwd) : null,
            h("div", { class: "actions" }, reason, h("button", { class: "allow", on: { click: () => void decide(true) } }, "Allow"), h("button", { class: "deny", on: { click: () => void decide(false) } }, "Deny")),
          );
        }),
      );
    }

    async function sendPrompt(): Promise<void> {
      const text = input.value.trim();
      const a = agent();
      if (!text || !state?.wheel || !holdsWheel()) return;
      if (!a) {
        toast("the agent session is offline", "error");
        return;
      }
      try {
        const sealed = app.peer.sealToSession(a.session_pubkey, text);
        await app.peer.call("session_prompt", {
          session_id: session,
          token: state.wheel.token,
          id: crypto.getRandomValues(new Uint8Array(16)),
          nonce: sealed.nonce,
          ciphertext: sealed.ciphertext,
        });
        input.value = "";
        toast("prompt sent");
      } catch (e) {
        toast(`prompt: ${(e as Error).message}`, "error");
      }
    }

    input.addEventListener("input", () => {
      const now = Date.now();
      if (now - lastTyping < TYPING_EVERY_MS) return;
      lastTyping = now;
      void app.peer.call("room_typing", { session_id: session }).catch(() => undefined);
    });

    async function attach(): Promise<void> {
      try {
        render(await app.peer.call<RoomState>("room_attach", { session_id: session }));
        for (;;) {
          const page = await app.peer.call<{ entries: Entry[]; more: boolean }>("stream_read", { session_id: session, after: last, limit: 500 });
          for (const e of page.entries) append(e);
          if (!page.more) break;
        }
      } catch (e) {
        toast(`room: ${(e as Error).message}`, "error");
      }
    }

    app.onRoom = (kind, body) => {
      if (kind === "stream") {
        const e = (body as { entry: Entry }).entry;
        if (uuidString(e.session_id) === sessionId) append(e);
      } else if (kind === "room") {
        const s = body as RoomState;
        if (uuidString(s.session_id) === sessionId) render(s);
      } else if (kind === "approval") {
        const info = (body as { approval: ApprovalInfo }).approval;
        if (uuidString(info.session_id) !== sessionId || !state) return;
        state.pending = state.pending.filter((p) => uuidString(p.id) !== uuidString(info.id));
        if (info.allowed === null || info.allowed === undefined) state.pending.push(info);
        renderApprovals();
      }
    };
    app.onReconnect = () => void attach();
    void attach();

    return {
      update() {
        if (state) render(state);
      },
      leave() {
        void app.peer.call("room_detach", { session_id: session }).catch(() => undefined);
      },
    };
  },
};
