// Building DOM. Every string becomes a text node: peer content (message bodies, task titles,
// summaries, names) is never parsed as HTML, and nothing here touches innerHTML.

export type Child = Node | string | number | null | undefined | false | Child[];

type Handler = (e: Event) => void;

export interface Props {
  class?: string;
  id?: string;
  title?: string;
  type?: string;
  value?: string;
  placeholder?: string;
  name?: string;
  href?: string;
  for?: string;
  min?: string;
  max?: string;
  rows?: number;
  disabled?: boolean;
  checked?: boolean;
  selected?: boolean;
  required?: boolean;
  autocomplete?: string;
  role?: string;
  data?: Record<string, string>;
  aria?: Record<string, string>;
  on?: Record<string, Handler>;
}

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Props | null = null,
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  if (props) {
    for (const [k, v] of Object.entries(props)) {
      if (v === undefined || v === null || v === false) continue;
      switch (k) {
        case "class":
          el.className = v as string;
          break;
        case "data":
          for (const [dk, dv] of Object.entries(v as Record<string, string>)) el.dataset[dk] = dv;
          break;
        case "aria":
          for (const [ak, av] of Object.entries(v as Record<string, string>)) el.setAttribute(`aria-${ak}`, av);
          break;
        case "on":
          for (const [ev, fn] of Object.entries(v as Record<string, Handler>)) el.addEventListener(ev, fn);
          break;
        case "value":
          (el as HTMLInputElement).value = v as string;
          break;
        case "checked":
        case "selected":
        case "disabled":
        case "required":
          (el as unknown as Record<string, boolean>)[k] = v as boolean;
          break;
        default:
          el.setAttribute(k, String(v));
      }
    }
  }
  append(el, children);
  return el;
}

function append(el: Node, children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

/// Replace an element's children.
export function replace(el: Element, ...children: Child[]): void {
  el.replaceChildren();
  append(el, children);
}

/// "3 min ago", "2 h ago", or a date.
export function ago(ms: number, now = Date.now()): string {
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 45) return "just now";
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86_400) return `${Math.round(s / 3600)} h ago`;
  return new Date(ms).toLocaleDateString();
}

/// "in 4 min", "2 h 5 min".
export function duration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  const m = Math.round(s / 60);
  if (m < 60) return `${m} min`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

export function time(ms: number): string {
  return new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

let toastTimer: ReturnType<typeof setTimeout> | null = null;

/// A short message at the bottom of the screen (errors say what failed).
export function toast(text: string, kind: "info" | "error" = "info"): void {
  let el = document.getElementById("toast");
  if (!el) {
    el = h("div", { id: "toast", role: "status" });
    document.body.appendChild(el);
  }
  el.className = `toast ${kind}`;
  el.textContent = text;
  if (toastTimer) clearTimeout(toastTimer);
  toastTimer = setTimeout(() => el?.classList.add("hidden"), kind === "error" ? 6000 : 3000);
}

/// Run an action from a button or form, showing its error instead of losing it.
export async function attempt(what: string, action: () => Promise<unknown>): Promise<boolean> {
  try {
    await action();
    return true;
  } catch (e) {
    toast(`${what}: ${(e as Error).message}`, "error");
    return false;
  }
}

/// A form whose submit runs `onSubmit` with its named fields.
export function form(
  props: Props,
  onSubmit: (fields: Record<string, string>, el: HTMLFormElement) => void | Promise<void>,
  ...children: Child[]
): HTMLFormElement {
  const el = h("form", props, ...children);
  el.addEventListener("submit", (e) => {
    e.preventDefault();
    const fields: Record<string, string> = {};
    new FormData(el).forEach((v, k) => (fields[k] = typeof v === "string" ? v : ""));
    void onSubmit(fields, el);
  });
  return el;
}

export function badge(text: string, kind = ""): HTMLSpanElement {
  return h("span", { class: `badge ${kind}` }, text);
}
