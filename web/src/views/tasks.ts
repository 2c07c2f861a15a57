// The task board: todo, in progress, review, blocked, done. Each card offers the steps its
// status allows you (the broker decides; a refused step says why), and shows what it depends
// on. The board moves as the event stream reports each step, whoever took it.

import type { App, Mounted, View } from "../app";
import { ago, attempt, badge, form, h, replace } from "../ui";
import { Task, TaskStatus, withStringIds } from "../wire";

const COLUMNS: { status: TaskStatus; label: string }[] = [
  { status: "todo", label: "To do" },
  { status: "in_progress", label: "In progress" },
  { status: "review", label: "Review" },
  { status: "blocked", label: "Blocked" },
  { status: "done", label: "Done" },
];

async function step(app: App, task: Task, action: string, note?: string): Promise<void> {
  const r = await app.peer.call<unknown>("task_update", { number: task.number, action, note: note || undefined });
  const updated = withStringIds<Task>(r);
  app.mesh.tasks.set(updated.number, updated);
  app.mesh.emit("tasks");
}

function actions(app: App, t: Task): HTMLElement {
  const me = app.peer.memberId;
  const admin = app.peer.role !== "member";
  const mine = t.assignee === me;
  const manager = t.owner === me || admin;
  const button = (action: string, label: string, note?: () => string | undefined) =>
    h(
      "button",
      {
        type: "button",
        class: `step ${action}`,
        data: { action, task: String(t.number) },
        on: { click: () => void attempt(label, () => step(app, t, action, note?.())) },
      },
      label,
    );
  const noteInput = h("input", { class: "note", placeholder: "note / feedback", data: { task: String(t.number) } });
  const note = () => noteInput.value.trim();
  const out: HTMLElement[] = [];
  switch (t.status) {
    case "todo":
      out.push(button("claim", "Claim"));
      break;
    case "in_progress":
      if (mine) out.push(noteInput, button("submit", "Submit for review", note), button("release", "Release"));
      if (mine || manager) out.push(button("block", "Block", note));
      break;
    case "review":
      if (manager) out.push(noteInput, button("approve", "Approve", note), button("request_changes", "Request changes", note));
      break;
    case "blocked":
      if (mine || manager) out.push(button("unblock", "Unblock"));
      break;
  }
  if (manager && !["done", "cancelled"].includes(t.status)) out.push(button("cancel", "Cancel"));
  return h("div", { class: "actions" }, out);
}

function card(app: App, t: Task): HTMLElement {
  const deps = t.depends_on.map((n) => {
    const d = app.mesh.tasks.get(n);
    return badge(`needs #${n}${d?.status === "done" ? " ✓" : ""}`, d?.status === "done" ? "done" : "blocked");
  });
  return h(
    "article",
    { class: `task ${t.status}`, data: { task: String(t.number), status: t.status } },
    h("header", null, h("span", { class: "num" }, `#${t.number}`), " ", h("strong", { class: "title" }, t.title)),
    t.description ? h("p", { class: "description" }, t.description) : null,
    h(
      "div",
      { class: "meta" },
      t.assignee_name ? badge(t.assignee_name, "kind") : null,
      t.complexity ? badge(t.complexity, "") : null,
      t.tags.map((tag) => badge(tag, "tag")),
      deps,
      h("span", { class: "muted" }, `by ${t.owner_name}, ${ago(t.updated_at_ms)}`),
    ),
    t.feedback ? h("p", { class: "feedback" }, "Changes requested: ", t.feedback) : null,
    t.review_notes ? h("p", { class: "notes" }, "Notes: ", t.review_notes) : null,
    actions(app, t),
  );
}

export const tasksView: View = {
  topics: ["tasks", "members"],
  mount(app: App, root: HTMLElement): Mounted {
    let showCancelled = false;
    const board = h("div", { class: "board", id: "board" });
    const create = form(
      { class: "inline-form", id: "task-create" },
      async (f, el) => {
        const depends = f.depends
          .split(/[ ,#]+/)
          .filter(Boolean)
          .map(Number)
          .filter((n) => Number.isInteger(n) && n > 0);
        const tags = f.tags.split(",").map((s) => s.trim()).filter(Boolean);
        const assignee = [...app.mesh.members.values()].find((m) => m.display_name === f.assignee);
        const ok = await attempt("create task", async () => {
          const r = await app.peer.call<unknown>("task_create", {
            title: f.title.trim(),
            description: f.description.trim(),
            tags,
            depends_on: depends,
            assignee: assignee ? assignee.member_id : undefined,
          });
          const t = withStringIds<Task>(r);
          app.mesh.tasks.set(t.number, t);
          app.mesh.emit("tasks");
        });
        if (ok) el.reset();
      },
      h("input", { name: "title", placeholder: "New task", required: true, id: "task-title" }),
      h("input", { name: "description", placeholder: "Description" }),
      h("input", { name: "tags", placeholder: "tags, comma-separated" }),
      h("input", { name: "depends", placeholder: "depends on #" }),
      h("input", { name: "assignee", placeholder: "assign to (name)", autocomplete: "off" }),
      h("button", { type: "submit" }, "Create"),
    );
    const toggle = h("label", { class: "muted" }, h("input", { type: "checkbox", on: { change: (e) => {
      showCancelled = (e.target as HTMLInputElement).checked;
      render();
    } } }), " show cancelled");

    function render(): void {
      const tasks = [...app.mesh.tasks.values()].sort((a, b) => a.number - b.number);
      const columns = showCancelled ? [...COLUMNS, { status: "cancelled" as TaskStatus, label: "Cancelled" }] : COLUMNS;
      replace(
        board,
        columns.map((c) => {
          const inColumn = tasks.filter((t) => t.status === c.status);
          return h(
            "section",
            { class: "column", data: { column: c.status } },
            h("h3", null, c.label, " ", h("span", { class: "muted" }, String(inColumn.length))),
            inColumn.map((t) => card(app, t)),
          );
        }),
      );
    }

    replace(root, h("div", { class: "tasks" }, h("div", { class: "section-head" }, h("h2", null, "Tasks"), toggle), create, board));
    render();
    // A note being typed on a card is not wiped by a board update: it waits for the blur.
    let deferred = false;
    board.addEventListener("focusout", () => {
      if (deferred) {
        deferred = false;
        setTimeout(render, 0);
      }
    });
    return {
      update() {
        const typing = document.activeElement;
        if (typing instanceof HTMLInputElement && board.contains(typing) && typing.value) {
          deferred = true;
          return;
        }
        render();
      },
    };
  },
};
