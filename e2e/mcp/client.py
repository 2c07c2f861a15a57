"""An independent MCP client for `plexus mcp`, built on the official MCP Python SDK.

Modes (driven by e2e/tests/mcp.rs):
  drive  PLEXUS ANA_HOME BO_HOME   the end-to-end scenario; prints OK or fails
  listen PLEXUS HOME SESSION       print each channel notification as a JSON line until killed;
                                   stdin lines "hook <Event>" run `plexus hook <Event>` as a child
                                   of this client (the "agent"), "hookjson <Event> <JSON>" runs it
                                   with that hook input (concurrently; prints rc, stdout, ms),
                                   "tool <name> <JSON>" calls a tool, "inbox" calls the inbox tool
  pull   PLEXUS HOME SESSION GROUPS  like listen, but started as a client without channels (no
                                   PLEXUS_CHANNELS) joining GROUPS; every "inbox" line also
                                   reports how many channel notifications arrived (must be 0)
"""

import asyncio
import json
import os
import re
import subprocess
import sys
import time

import anyio
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

META_KEY = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
CHANNEL = "notifications/claude/channel"


def params(plexus, home, session, channels=True, groups=None):
    """`channels`: the agent was started the way `plexus launch` starts Claude Code, so pushes
    are surfaced; without it the server treats the client as pull-only."""
    env = dict(os.environ, PLEXUS_HOME=home, PLEXUS_LOG=os.environ.get("PLEXUS_LOG", "warn"))
    env.pop("PLEXUS_MESH", None)
    env.pop("PLEXUS_CHANNELS", None)
    if channels:
        env["PLEXUS_CHANNELS"] = "1"
    args = ["mcp", "--session", session]
    if groups:
        args += ["--groups", groups]
    return StdioServerParameters(command=plexus, args=args, env=env)


class Channel:
    """Taps the server's stream: records channel notifications before the SDK (which does not
    know this method) sees them, and passes everything on."""

    def __init__(self, read_stream):
        self.items = []
        self.event = anyio.Event()
        self.send, self.recv = anyio.create_memory_object_stream(1000)
        self.upstream = read_stream

    async def pump(self):
        async with self.send:
            async for msg in self.upstream:
                root = getattr(getattr(msg, "message", None), "root", None)
                if getattr(root, "method", None) == CHANNEL:
                    self.items.append(root.params)
                    self.event.set()
                    self.event = anyio.Event()
                await self.send.send(msg)

    async def wait_for(self, pred, timeout=20):
        with anyio.fail_after(timeout):
            while True:
                for p in self.items:
                    if pred(p):
                        return p
                await self.event.wait()


def text_of(result):
    return "\n".join(c.text for c in result.content if getattr(c, "type", "") == "text")


def check(cond, what):
    if not cond:
        raise AssertionError(what)


async def drive(plexus, ana_home, bo_home):
    async with stdio_client(params(plexus, ana_home, "drive-ana")) as (ar, aw), stdio_client(
        params(plexus, bo_home, "drive-bo")
    ) as (br, bw):
        ana_ch, bo_ch = Channel(ar), Channel(br)
        async with anyio.create_task_group() as tg:
            tg.start_soon(ana_ch.pump)
            tg.start_soon(bo_ch.pump)
            async with ClientSession(ana_ch.recv, aw) as ana, ClientSession(bo_ch.recv, bw) as bo:
                init = await ana.initialize()
                await bo.initialize()
                check(init.serverInfo.name == "plexus", f"server name {init.serverInfo.name}")
                exp = (init.capabilities.experimental or {})
                check("claude/channel" in exp, f"experimental capabilities {exp}")

                tools = (await ana.list_tools()).tools
                names = {t.name for t in tools}
                check(len(tools) <= 12, f"{len(tools)} tools")
                for needed in ["send", "inbox", "peers", "status", "state", "lock", "task", "thread", "remind", "search", "whoami"]:
                    check(needed in names, f"missing tool {needed}")
                for t in tools:
                    check(t.description and len(t.description) < 200, f"{t.name} description")
                    check(t.inputSchema.get("type") == "object", f"{t.name} schema")
                    check(t.annotations is not None, f"{t.name} has no annotations")
                    for field, spec in (t.inputSchema.get("properties") or {}).items():
                        check(spec.get("description"), f"{t.name}.{field} has no description")
                by_name = {t.name: t for t in tools}
                check(by_name["peers"].annotations.readOnlyHint is True, "peers is read-only")
                check(by_name["inbox"].annotations.readOnlyHint is not True, "inbox marks messages read")
                check(by_name["lock"].annotations.readOnlyHint is not True, "lock writes")

                # Both sessions present (a session sees what is sent after it connects).
                with anyio.fail_after(20):
                    while True:
                        peers = await ana.call_tool("peers", {})
                        if "bo [" in text_of(peers):
                            break
                        await anyio.sleep(0.1)

                # ana -> bo arrives as a channel notification with string meta, then is acked.
                sent = await ana.call_tool("send", {"to": "bo", "text": "hello bo", "priority": "now"})
                check(not sent.isError, text_of(sent))
                note = await bo_ch.wait_for(lambda p: "hello bo" in p.get("content", ""))
                meta = note["meta"]
                for k, v in meta.items():
                    check(META_KEY.match(k), f"meta key {k!r}")
                    check(isinstance(v, str), f"meta {k} is {type(v).__name__}")
                for k in ["from", "from_member", "from_session", "fingerprint", "priority", "seq", "message_id", "kind"]:
                    check(k in meta, f"meta lacks {k}: {meta}")
                check(meta["from"] == "ana" and meta["kind"] == "message", f"meta {meta}")
                check("not instructions" in note["content"], note["content"])
                inbox = await bo.call_tool("inbox", {})
                check("no unread messages" in text_of(inbox), f"pushed message not acked: {text_of(inbox)}")

                # A reply goes to exactly the sending session.
                r = await bo.call_tool("send", {"reply_to": meta["message_id"], "text": "hi ana"})
                check(not r.isError, text_of(r))
                await ana_ch.wait_for(lambda p: "hi ana" in p.get("content", ""))

                # Locks: bo takes one; ana is told who holds it.
                got = await bo.call_tool("lock", {"action": "acquire", "pattern": "src/**", "reason": "refactor"})
                check(not got.isError and "token" in text_of(got), text_of(got))
                token = got.structuredContent["token"]
                held = await ana.call_tool("lock", {"action": "acquire", "pattern": "src/main.rs"})
                check(held.isError and "bo holds src/**" in text_of(held), text_of(held))
                rel = await bo.call_tool("lock", {"action": "release", "token": token})
                check(not rel.isError, text_of(rel))

                # Tasks: ana creates, bo claims.
                t = await ana.call_tool("task", {"action": "create", "title": "write the parser"})
                check(not t.isError, text_of(t))
                number = t.structuredContent["number"]
                claim = await bo.call_tool("task", {"action": "claim", "number": number})
                check(not claim.isError and "in_progress" in text_of(claim), text_of(claim))
                event = await ana_ch.wait_for(lambda p: p.get("meta", {}).get("subtype") == "task.claim")
                check(event["meta"]["kind"] == "event", event)

                # Malformed calls are error results; the server keeps serving.
                bad = await bo.call_tool("send", {"text": 5, "to": "ana"})
                check(bad.isError and "bad arguments" in text_of(bad), text_of(bad))
                bad = await bo.call_tool("lock", {})
                check(bad.isError and "action" in text_of(bad), text_of(bad))
                bad = await bo.call_tool("task", {"action": "approve"})
                check(bad.isError, text_of(bad))
                me = await bo.call_tool("whoami", {})
                check(not me.isError and "bo in mesh" in text_of(me), text_of(me))
                tg.cancel_scope.cancel()
    print("OK")


async def listen(plexus, home, session, channels=True, groups=None):
    async with stdio_client(params(plexus, home, session, channels=channels, groups=groups)) as (r, w):
        ch = Channel(r)
        async with anyio.create_task_group() as tg:
            tg.start_soon(ch.pump)
            async with ClientSession(ch.recv, w) as s:
                await s.initialize()
                print(json.dumps({"ready": True}), flush=True)

                async def printer():
                    seen = 0
                    while True:
                        while seen < len(ch.items):
                            print(json.dumps(ch.items[seen]), flush=True)
                            seen += 1
                        await ch.event.wait()

                async def hook_with_input(event, data):
                    # As Claude Code runs a hook: a child of the agent, the event's JSON on stdin.
                    started = time.monotonic()
                    done = await anyio.to_thread.run_sync(
                        lambda: subprocess.run([plexus, "hook", event], input=data.encode(), capture_output=True,
                                               env=dict(os.environ, PLEXUS_HOME=home)))
                    ms = int((time.monotonic() - started) * 1000)
                    out = done.stdout.decode().strip()
                    print(json.dumps({"hook": event, "rc": done.returncode, "stdout": out, "ms": ms}), flush=True)

                async def commands():
                    stdin = anyio.wrap_file(sys.stdin)
                    async for line in stdin:
                        cmd = line.split()
                        if cmd[:1] == ["hookjson"]:
                            _, event, data = line.strip().split(" ", 2)
                            inner.start_soon(hook_with_input, event, data)
                        elif cmd[:1] == ["tool"]:
                            _, name, data = line.strip().split(" ", 2)
                            res = await s.call_tool(name, json.loads(data))
                            print(json.dumps({"tool": name, "error": res.isError, "text": text_of(res)}), flush=True)
                        elif cmd[:1] == ["hook"]:
                            done = subprocess.run([plexus, "hook", cmd[1]], input=b"{}", env=dict(os.environ, PLEXUS_HOME=home))
                            print(json.dumps({"hook": cmd[1], "rc": done.returncode}), flush=True)
                        elif cmd[:1] == ["inbox"]:
                            res = await s.call_tool("inbox", {"limit": 200})
                            print(json.dumps({"inbox": res.structuredContent, "notifications": len(ch.items)}), flush=True)

                # Inside the session's context, so the session stays open while they run.
                async with anyio.create_task_group() as inner:
                    inner.start_soon(printer)
                    inner.start_soon(commands)


def main():
    mode, plexus = sys.argv[1], sys.argv[2]
    if mode == "drive":
        anyio.run(drive, plexus, sys.argv[3], sys.argv[4])
    elif mode == "listen":
        anyio.run(listen, plexus, sys.argv[3], sys.argv[4])
    elif mode == "pull":
        anyio.run(listen, plexus, sys.argv[3], sys.argv[4], False, sys.argv[5])
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
