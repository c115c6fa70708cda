-- SIGINT and SIGTERM delivered to a real `ecsplay` process running a canary through curl
-- against a real `ecsplay sim serve`, at each step and during the promotion: exit 130/143,
-- the output says it rolled back, and the world read back from the server (GET /_sim/world)
-- has the rule at 100% stable / 0% canary, the canary service at desired 0 on its old task
-- definition, and the stable service on its old task definition.
--
-- The client waits in wall-clock seconds (the 15 s readiness polls, the bakes), so the ten
-- cases run at once, each with its own server, from scheduler tasks; the whole file takes
-- about 35 s. Each case waits for the journal (fsynced before each change) to show the step
-- done before signalling, and checks afterwards that the run never reached the next step.
local T = require "harness"
local L = dofile "tests/scenarios/interrupt_lib.lua"
local sched = require "ecsplay.sched"

local POINTS = {
  { label = "step 1/4", key = "weight:1", next = "weight:2" },
  { label = "step 2/4", key = "weight:2", next = "weight:3" },
  { label = "step 3/4", key = "weight:3", next = "weight:4" },
  { label = "step 4/4", key = "weight:4", next = "promote" },
  { label = "the promotion", key = "promote", next = "home" },
}
local SIGNALS = {
  { name = "INT", code = 130, word = "SIGINT" },
  { name = "TERM", code = 143, word = "SIGTERM" },
}

local procs = {}   -- every server and client started, for the final check

local function run_case(point, sig)
  local dir = L.tmpdir()
  local srv, p
  local ok, res = pcall(function()
    srv = L.serve(dir, 60)
    procs[#procs + 1] = srv
    p = L.start(dir, "run", srv, { "tests/scenarios/interrupt_canary.lua", "bake=3s" })
    procs[#procs + 1] = p
    L.wait_journal(dir, "done", point.key, 90)
    local before = L.state(L.world(srv))
    L.kill(p, sig.name)
    local rc, out = L.wait_exit(p, 60)
    return { rc = rc, out = out, before = before, after = L.state(L.world(srv)),
      journal = L.journal(L.journal_file(dir)) }
  end)
  L.reap(p)
  L.stop(srv)
  os.execute("rm -rf " .. L.q(dir))
  if not ok then error(res, 0) end
  return res
end

local cases = {}
local function start_all()
  if #cases > 0 then return end
  for _, point in ipairs(POINTS) do
    for _, sig in ipairs(SIGNALS) do
      cases[#cases + 1] = { point = point, sig = sig, task = sched.spawn(run_case, point, sig) }
    end
  end
end

local HOME = { ["api-stable"] = 100, ["api-canary"] = 0 }

for i = 1, #POINTS * #SIGNALS do
  local point, sig = POINTS[(i - 1) // 2 + 1], SIGNALS[(i - 1) % 2 + 1]
  T.test(string.format("SIG%s at %s: exit %d, rolled back, world home", sig.name, point.label, sig.code),
    function()
      start_all()
      local r = cases[i].task:join()
      T.eq(r.rc, sig.code, r.out)
      T.ok(r.out:find("interrupted by " .. sig.word .. "; rolled back", 1, true), r.out)
      T.ok(r.out:find("rolled back, stable version serving all traffic", 1, true), r.out)
      -- the signal landed where meant: that step done, the next never begun
      T.ok(L.has(r.journal, "done", point.key), "journal lacks done " .. point.key)
      T.ok(not L.has(r.journal, "do", point.next), "the run went on to " .. point.next .. ":\n" .. r.out)
      T.eq(L.has(r.journal, "end").status, "rolled_back")
      if point.key == "promote" then
        T.eq(r.before.api.td, "api:2", "stable was updated before the signal")
      else
        T.ok(r.before.weights["api-canary"] > 0, "canary had traffic before the signal")
      end
      -- the world read back from the server
      T.eq(r.after.weights, HOME, "rule weights")
      T.eq({ r.after.canary.desired, r.after.canary.td }, { 0, "api:1" }, "canary service")
      T.eq({ r.after.api.desired, r.after.api.td }, { 4, "api:1" }, "stable service")
    end)
end

T.test("no server or client is left running", function()
  start_all()
  for _, c in ipairs(cases) do c.task:result() end
  for _, p in ipairs(procs) do
    T.ok(not (p.pid and L.alive(p.pid)), "process " .. tostring(p.pid) .. " still running")
  end
end)
