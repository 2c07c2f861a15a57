// The web app's end-to-end scenario in real Chromium, run by e2e/tests/web.rs. Two people join
// in two browser contexts on different broker nodes; carol, the owner, is on the CLI. Requests
// to the harness (CLI commands as carol, killing and restarting a node, searching the database)
// are JSON lines on stdout, answered on stdin; everything else we print goes to stderr.

import { allowDialogs, assertSealed, check, harness, join, log, newPage, run, see, shot, view } from "./lib.mjs";

const A = process.env.PLEXUS_WEB_A;
const B = process.env.PLEXUS_WEB_B;

const carol = (...args) => harness({ do: "cli", peer: "carol", args });

async function conversation(page, name) {
  await view(page, "messages");
  await page.click(`#conversations a:has-text("${name}")`);
}

async function send(page, text, priority = "next") {
  await page.fill("#compose", text);
  await page.selectOption("#priority", priority);
  await page.click("#send");
  await see(page, "#log .msg.mine .body", text);
}

// ---------------------------------------------------------------------------------------------
// The scenario

await run(async () => {
  log("two people join by invite, on different nodes");
  const anaInvite = (await carol("invite", "create", "--uses", "1")).code;
  const benInvite = (await carol("invite", "create", "--uses", "1", "--role", "admin")).code;
  const ana = await newPage("ana");
  const ben = await newPage("ben");
  await join(ana, A, anaInvite, "ana");
  await join(ben, B, benInvite, "ben");

  log("they see each other and carol in the lobby");
  await see(ana, "#people .session", "ben");
  await see(ana, "#people .session", "carol");
  await see(ben, "#people .session", "ana");
  await see(ben, "#people .session", "ben (you)");
  await harness({ do: "agent", host: "build-box", kind: "claude-code", model: "opus", status: "working", summary: "refactoring the auth module", cwd: "/src/api" });
  await harness({ do: "agent", host: "laptop", kind: "codex", status: "idle", summary: "waiting for review", cwd: "/src/web" });
  await see(ana, "#machines .machine", "build-box");
  await see(ana, "#machines .machine", "laptop");
  await carol("status", "set", "working", "--summary", "reviewing the parser");
  await see(ana, ".session.working", "reviewing the parser");
  await shot(ana, "desktop-lobby");
  // Back to idle: `next` messages to carol are held while she works.
  await carol("status", "set", "idle");

  log("messages: browser to browser, browser to CLI, CLI to browser, to everyone");
  await conversation(ana, "ben");
  await send(ana, "hello ben, from ana", "now");
  await conversation(ben, "ana");
  await see(ben, "#log .body", "hello ben, from ana");
  await see(ana, "#log .delivery", "ben: read");
  await conversation(ben, "carol");
  await send(ben, "ben to carol on the cli");
  check(await harness({ do: "follower_saw", text: "ben to carol on the cli" }), "carol's CLI got ben's message");
  await carol("send", "ana", "carol to ana from the cli", "--priority", "now");
  await conversation(ana, "carol");
  await see(ana, "#log .body", "carol to ana from the cli");
  await conversation(ana, "Everyone");
  await send(ana, "hello everyone, sealed with the mesh key");
  await conversation(ben, "Everyone");
  await see(ben, "#log .body", "hello everyone, sealed with the mesh key");
  check(await harness({ do: "follower_saw", text: "hello everyone, sealed with the mesh key" }), "carol got the broadcast");
  for (const text of ["hello ben, from ana", "ben to carol on the cli", "carol to ana from the cli", "hello everyone, sealed with the mesh key"]) {
    await assertSealed(text);
  }

  log("a hostile body is shown as text");
  const hostile = "<img src=x onerror=alert(1)><script>alert(2)</script>";
  await carol("send", "ana", hostile, "--priority", "now");
  await conversation(ana, "carol");
  await see(ana, "#log .body", "<img src=x onerror=alert(1)>");
  check((await ana.locator("#log img, #log script").count()) === 0, "markup from a message became elements");
  const shown = await ana.locator("#log .msg .body").last().textContent();
  check(shown === hostile, `the body was altered: ${shown}`);
  await conversation(ana, "ben");
  await shot(ana, "desktop-messages");

  log("the task board: created in the browser, claimed and submitted on the CLI, approved in the browser");
  await view(ana, "tasks");
  await ana.fill("#task-title", "Write the parser");
  await ana.click("#task-create button[type=submit]");
  const card = ana.locator('[data-column="todo"] article.task', { hasText: "Write the parser" });
  await card.waitFor();
  const number = await card.getAttribute("data-task");
  await carol("task", "create", "<script>alert(3)</script> literal title", "--depends-on", number);
  await see(ana, '[data-column="todo"] .title', "<script>alert(3)</script> literal title");
  await carol("task", "claim", number);
  await ana.locator(`[data-column="in_progress"] article[data-task="${number}"]`).waitFor();
  await carol("task", "submit", number, "--notes", "parser done, tests green");
  await ana.locator(`[data-column="review"] article[data-task="${number}"]`).waitFor();
  await shot(ana, "desktop-tasks");
  await ana.click(`article[data-task="${number}"] button[data-action="approve"]`);
  await ana.locator(`[data-column="done"] article[data-task="${number}"]`).waitFor();
  check(await harness({ do: "follower_saw", text: `approved task #${number}` }), "carol saw the approval");

  log("a lock taken on the CLI appears live; an admin force-releases it");
  await view(ben, "locks");
  await carol("lock", "acquire", "docs/**", "-r", "rewriting the docs");
  const row = ben.locator('tr[data-pattern="docs/**"]');
  await row.waitFor();
  await see(ben, 'tr[data-pattern="docs/**"]', "rewriting the docs");
  await shot(ben, "desktop-locks");
  allowDialogs("making room for the release");
  await row.locator("button.force").click();
  await row.waitFor({ state: "detached" });
  allowDialogs(null);
  check(await harness({ do: "follower_saw", text: "force-released your lock on docs/**" }), "carol was told");

  log("a person is removed: the mesh key rotates and everyone left reads and writes under the new one");
  const danInvite = (await carol("invite", "create", "--uses", "1")).code;
  const dan = await newPage("dan");
  await join(dan, A, danInvite, "dan");
  const removed = await carol("member", "remove", "dan");
  check(removed.key_epoch === 1 && removed.rotation_due === false, `the key did not rotate: ${JSON.stringify(removed)}`);
  await dan.locator("#connection.removed").waitFor();
  await dan.close();
  await conversation(ana, "Everyone");
  await send(ana, "after dan left, under the new key");
  await conversation(ben, "Everyone");
  await see(ben, "#log .body", "after dan left, under the new key");
  check(await harness({ do: "follower_saw", text: "after dan left, under the new key" }), "carol's CLI opened it");
  await carol("send", "*", "carol, under the new key too");
  await see(ana, "#log .body", "carol, under the new key too");
  await see(ben, "#log .body", "carol, under the new key too");
  const epochs = await harness({ do: "mesh_key_epochs" });
  check(epochs.at(-1) === 1 && epochs.at(-2) === 1, `the last bodies were not sealed at epoch 1: ${epochs}`);
  await assertSealed("after dan left, under the new key");

  log("the audit log is recomputed in an admin's browser, and a tampered row is named");
  await view(ben, "admin");
  await see(ben, "#audit-result", "Audit chain intact");
  await ben.locator('#members tr[data-member]', { hasText: "dan" }).waitFor({ state: "detached" });
  await see(ben, ".people p.muted", "epoch 1");
  await see(ben, "#audit code", "key.rotated");
  await see(ben, "#audit code", "member.removed");
  await shot(ben, "desktop-people");
  await harness({ do: "tamper_audit", seq: 2 });
  await ben.click("#audit-verify");
  await see(ben, "#audit-result.audit-broken", "entry 2");
  await harness({ do: "untamper_audit" });
  await ben.click("#audit-verify");
  await see(ben, "#audit-result", "Audit chain intact");

  log("ana blocks carol: nothing from her arrives until ana lifts it");
  await view(ana, "admin");
  const carolRow = ana.locator("#members tr", { hasText: "carol" });
  await carolRow.locator('button[data-control="block"]', { hasText: "Block" }).click();
  await carolRow.locator('button[data-control="block"]', { hasText: "Unblock" }).waitFor();
  await carol("send", "ana", "while ana blocks carol", "--priority", "now");
  await carolRow.locator('button[data-control="block"]', { hasText: "Unblock" }).click();
  await carolRow.locator('button[data-control="block"]', { hasText: "Block" }).waitFor();
  await carol("send", "ana", "after ana unblocked carol", "--priority", "now");
  await conversation(ana, "carol");
  await see(ana, "#log .body", "after ana unblocked carol");
  check((await ana.locator("#log .body", { hasText: "while ana blocks carol" }).count()) === 0, "a blocked message was shown");

  log("the browser reconnects after its node is killed and resumes from its cursor");
  await conversation(ana, "carol");
  await harness({ do: "kill", node: 0 });
  await ana.locator("#connection.offline, #connection.connecting").first().waitFor();
  for (const i of [1, 2, 3]) await carol("send", "ana", `while you were away ${i}`, "--priority", "now");
  await harness({ do: "restart", node: 0 });
  await ana.locator("#connection.online").waitFor({ timeout: 60_000 });
  for (const i of [1, 2, 3]) {
    await see(ana, "#log .body", `while you were away ${i}`);
    const copies = await ana.locator("#log .body", { hasText: `while you were away ${i}` }).count();
    check(copies === 1, `message ${i} shown ${copies} times`);
  }

  log("phone width");
  await ana.setViewportSize({ width: 390, height: 844 });
  await view(ana, "lobby");
  await shot(ana, "phone-lobby");
  await conversation(ana, "carol");
  await shot(ana, "phone-messages");
  await view(ana, "tasks");
  await shot(ana, "phone-tasks");
  await view(ana, "admin");
  await see(ana, "#members tr", "carol");
  await shot(ana, "phone-people");

  log("a browser linked to carol's CLI identity, then logged out");
  const device = await newPage("device");
  await device.goto(B);
  await device.click("#start-link");
  const code = (await device.locator("#link-code").textContent()).trim();
  await carol("link", code, "--yes");
  await device.locator("#connection.online").waitFor();
  check((await device.locator("#whoami").textContent()) === "carol", "the linked browser is carol");
  await conversation(ben, "carol");
  await send(ben, "to carol, wherever she is");
  await conversation(device, "ben");
  await see(device, "#log .body", "to carol, wherever she is");
  await device.click("#logout");
  await device.locator("#join-form").waitFor();
  const databases = await device.evaluate(async () => (await indexedDB.databases()).map((d) => d.name));
  check(!databases.includes("plexus"), `the keys were not forgotten: ${databases}`);
  await device.reload();
  await device.locator("#join-form").waitFor();

});
