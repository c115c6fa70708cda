-- notify.webhook: a canary's events reach a chat webhook; failures never stop a rollout.
local T = require "harness"
local notify = require "ecsplay.notify"

-- One loopback stub for the file; /quit stops it (and it exits by itself after 120 s, so
-- a failed test cannot leave it behind).
local STUB
local function start_stub()
  if not STUB then
    local pipe = io.popen("exec timeout 120 /usr/bin/python3 tests/wire/http_stub.py --port 0", "r")
    local port = assert(tonumber(pipe:read("l")), "http_stub.py did not report its port")
    STUB = { url = "http://127.0.0.1:" .. port, pipe = pipe }
  end
  require("ecsplay.http").request { url = STUB.url .. "/reset_stats" }
  return STUB
end

local function stats(stub)
  local r = assert(require("ecsplay.http").request { url = stub.url .. "/stats" })
  return require("ecsplay.json").decode(r.body)
end

T.test("text: one line naming the strategy", function()
  T.eq(notify.text { strategy = "canary", event = "step", message = "step 2/4: a=25 b=75" },
    "[canary] step 2/4: a=25 b=75")
  T.ok(notify.text { strategy = "canary", event = "abort", message = "gate failed" }:find(":x:", 1, true))
end)

T.test("bad options are clear errors", function()
  T.raises(function() notify.webhook {} end, "url = ")
  T.raises(function() notify.webhook { url = "http://x", format = "xml" } end, "format")
end)

T.test("a canary's step, abort, rollback and summary events are posted; gate lines are not", function()
  local stub = start_stub()
  local ok, err = pcall(function()
    local sent = {}
    local hook = notify.webhook { url = stub.url .. "/echo" }
    local function recording(ev) sent[#sent + 1] = ev.event return hook(ev) end
    -- drive the hook directly with the events a rollout emits
    for _, ev in ipairs {
      { event = "step", message = "step 1/4", strategy = "canary" },
      { event = "gate", message = "gate ok", strategy = "canary" },
      { event = "abort", message = "gate failed", strategy = "canary" },
      { event = "rollback", message = "rolling back", strategy = "canary" },
      { event = "summary", message = "rolled back", strategy = "canary", level = "warn" },
    } do recording(ev) end
    T.eq(#sent, 5)
    T.eq(stats(stub).requests, 4 + 1, "four webhook posts (not the gate line) plus this /stats")
  end)
  if not ok then error(err, 0) end
end)

T.test("an unreachable webhook is a warning, not a failure", function()
  local hook = notify.webhook { url = "http://127.0.0.1:9/hook", timeout = 1 }
  hook { event = "step", message = "x" } -- must not raise
  T.ok(true)
end)

T.test("a simulated canary with a webhook still promotes and posts its steps", function()
  local stub = start_stub()
  local out, rc = T.sh(T.bin .. " --simulate -e '"
    .. "local r = require(\"ecsplay.rollout\").canary { image = \"api:v2\", steps = { 50, 100 }, bake = \"1m\","
    .. " notify = require(\"ecsplay.notify\").webhook { url = \"" .. stub.url .. "/echo\" } }"
    .. " print(r.status)'")
  local st = stats(stub)
  T.eq(rc, 0, out)
  T.ok(out:find("succeeded", 1, true), out)
  -- step 1, step 2, promote, summary at least
  T.ok(st.requests >= 4 + 1, "webhook posts: " .. tostring(st.requests))
end)

T.test("stop the stub", function()
  T.eq(require("ecsplay.http").request({ url = STUB.url .. "/quit" }).status, 200)
  STUB.pipe:close()
end)
