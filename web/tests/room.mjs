// The session room in real Chromium at phone width, run by e2e/tests/web_room.rs: bo, in a
// browser on another node than the agent, watches ana's agent work (the MCP Python SDK client
// running `plexus mcp`, its hooks run by the harness as Claude Code runs them), takes the
// wheel, prompts it, and answers its permission request.

import { assertSealed, check, harness, join, log, newPage, run, see, shot } from "./lib.mjs";

const B = process.env.PLEXUS_WEB_B;
const ana = (...args) => harness({ do: "cli", args });
const hook = (event, input) => harness({ do: "hook", event, input });

await run(async () => {
  log("bo joins by invite on node B, at phone width");
  const code = (await ana("invite", "create", "--uses", "1")).code;
  const bo = await newPage("bo", { width: 390, height: 844 });
  await join(bo, B, code, "bo");
  const session = await harness({ do: "agent_session" });

  log("bo opens the agent's room from the lobby: the replay");
  await bo.click(`a.watch[data-room="${session}"]`);
  await see(bo, "#room-stream .entry.prompt", "fix the flaky login test");
  await see(bo, "#room-stream .entry.assistant", "Looking at the login test first.");
  await see(bo, "#room-viewers", "bo");

  log("live: a tool call, and hostile text shown as text");
  await hook("PreToolUse", { tool_name: "Bash", tool_input: { command: "cargo test login" } });
  await see(bo, "#room-stream .entry.tool_call", "cargo test login");
  const hostile = "<img src=x onerror=alert(1)><script>alert(2)</script>";
  await hook("UserPromptSubmit", { prompt: hostile });
  await see(bo, "#room-stream .entry.prompt .text", hostile);
  check((await bo.locator("#room-stream img").count()) === 0, "an entry was rendered as HTML");
  await assertSealed("fix the flaky login test");

  log("without a grant bo cannot drive; with one, bo takes the wheel and prompts");
  await bo.click("#wheel-take");
  await see(bo, "#toast", "drive");
  await ana("grant", "drive", "bo");
  await bo.click("#wheel-take");
  await see(bo, "#wheel-holder", "bo has the wheel");
  await bo.fill("#room-prompt", "please also run the integration tests");
  await bo.click("#room-send");
  check(await harness({ do: "agent_saw", text: "please also run the integration tests" }), "the agent got bo's prompt");

  log("bo is typing: the room shows it");
  await bo.fill("#room-prompt", "and then");
  await see(bo, "#room-viewers", "bo (typing");
  await bo.fill("#room-prompt", "");

  log("the agent asks permission while bo is in the lobby; bo answers from the phone");
  await bo.click('nav a[data-route="lobby"]');
  await harness({ do: "permission", input: { tool_name: "Bash", tool_input: { command: "git push origin fix-login" } } });
  await see(bo, "#asks .ask", "ana's agent asks permission");
  await shot(bo, "phone-asks");
  await bo.click("#asks .ask");
  await see(bo, ".approval .input", "git push origin fix-login");
  await shot(bo, "phone-room");
  const clicked = Date.now();
  await bo.click(".approval button.allow");
  const result = await harness({ do: "permission_result" });
  log(`approval round trip, click to hook exit: ${Date.now() - clicked} ms`);
  const out = JSON.parse(result.stdout);
  check(out.hookSpecificOutput.hookEventName === "PermissionRequest", `hook output ${result.stdout}`);
  check(out.hookSpecificOutput.decision.behavior === "allow", `hook output ${result.stdout}`);
  await see(bo, "#room-stream .entry.permission_decision", "allow by bo");
  check((await bo.locator(".approval").count()) === 0, "the answered request is still shown");
  await bo.locator("#asks.hidden").waitFor({ state: "attached" });
  await shot(bo, "phone-room-decided");
});
