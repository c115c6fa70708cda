-- The run journal after a kill -9: a real `ecsplay` canary against a real `ecsplay sim serve`
-- is killed at each step and during the promotion, then `ecsplay rollback JOURNAL` restores
-- the stable state, or `ecsplay resume JOURNAL` finishes the rollout, with no --endpoint-url:
-- both reach the server through the config the journal's start line recorded. The world is
-- read back from the server. Then the journal's edges: a torn last line, a run that already
-- ended, a missing file, a second rollback. The kill -9 cases run at once (wall-clock waits),
-- each with its own server; the file takes about a minute.
local T = require "harness"
local L = dofile "tests/scenarios/interrupt_lib.lua"
local sched = require "ecsplay.sched"

local POINTS = {
  { label = "step 1/4", key = "weight:1", canary = 10 },
  { label = "step 2/4", key = "weight:2", canary = 25 },
  { label = "step 3/4", key = "weight:3", canary = 50 },
  { label = "step 4/4", key = "weight:4", canary = 100 },
  { label = "the promotion", key = "promote", canary = 100 },
}
local HOME = { ["api-stable"] = 100, ["api-canary"] = 0 }
local PLAYBOOK = { "tests/scenarios/interrupt_canary.lua", "bake=3s" }

local procs = {}

-- Starts a canary, waits for `key` done in its journal, kills it with SIGKILL, then `after`.
local function killed_case(key, after)
  local dir = L.tmpdir()
  local srv, p
  local ok, res = pcall(function()
    srv = L.serve(dir, 60)
    procs[#procs + 1] = srv
    p = L.start(dir, "run", srv, PLAYBOOK)
    procs[#procs + 1] = p
    L.wait_journal(dir, "done", key, 90)
    L.kill(p, "KILL")
    local r = { dir = dir, srv = srv }
    r.rc, r.out = L.wait_exit(p, 30)
    r.journal_path = L.journal_file(dir)
    r.before = L.state(L.world(srv))
    return after(r)
  end)
  L.reap(p)
  L.stop(srv)
  os.execute("rm -rf " .. L.q(dir))
  if not ok then error(res, 0) end
  return res
end

local function command(r, name, args, timeout) return L.command(r, name, args, procs, timeout) end

local function rollback_case(point)
  return killed_case(point.key, function(r)
    r.rb_rc, r.rb_out = command(r, "rollback", { "rollback", r.journal_path })
    r.after = L.state(L.world(r.srv))
    r.journal = L.journal(r.journal_path)
    r.raw = L.read(r.journal_path)
    r.rb2_rc, r.rb2_out = command(r, "rollback2", { "rollback", r.journal_path })
    return r
  end)
end

local function resume_case(point)
  return killed_case(point.key, function(r)
    r.rs_rc, r.rs_out = command(r, "resume", { "resume", r.journal_path }, 90)
    r.after = L.state(L.world(r.srv))
    r.journal = L.journal(r.journal_path)
    r.rs2_rc, r.rs2_out = command(r, "resume2", { "resume", r.journal_path })
    return r
  end)
end

-- kill -9 at step 2, the journal's last line torn in half, rollback with explicit options.
local function torn_case()
  return killed_case("weight:2", function(r)
    local text = L.read(r.journal_path)
    r.torn_from = #text
    L.write(r.journal_path, text:sub(1, #text - 12))
    r.rb_rc, r.rb_out = command(r, "rollback", { "rollback", "--endpoint-url", r.srv.url,
      "--region", "us-east-1", r.journal_path })
    r.after = L.state(L.world(r.srv))
    r.journal = L.journal(r.journal_path)
    r.text = L.read(r.journal_path)
    r.rb2_rc, r.rb2_out = command(r, "rollback2", { "rollback", r.journal_path })
    return r
  end)
end

local tasks = {}
local function start_all()
  if tasks.torn then return end
  for i, point in ipairs(POINTS) do
    tasks["rollback" .. i] = sched.spawn(rollback_case, point)
    tasks["resume" .. i] = sched.spawn(resume_case, point)
  end
  tasks.torn = sched.spawn(torn_case)
end

local function check_killed(r, point)
  T.eq(r.rc, 137, "killed by SIGKILL: " .. r.out)
  T.ok(not r.out:find("rolled back", 1, true), "a killed run cannot roll back:\n" .. r.out)
  if point.key == "promote" then
    T.eq(r.before.api.td, "api:2", "stable updated when killed")
  else
    T.eq(r.before.weights["api-canary"], point.canary, "canary weight when killed")
  end
end

for i, point in ipairs(POINTS) do
  T.test("kill -9 at " .. point.label .. ", then `ecsplay rollback JOURNAL`: stable restored", function()
    start_all()
    local r = tasks["rollback" .. i]:join()
    check_killed(r, point)
    T.eq(r.rb_rc, 0, r.rb_out)
    T.ok(r.rb_out:find("rolled back: stable state restored", 1, true), r.rb_out)
    T.eq(r.after.weights, HOME, "rule weights")
    T.eq({ r.after.canary.desired, r.after.canary.td }, { 0, "api:1" }, "canary service")
    T.eq({ r.after.api.desired, r.after.api.td }, { 4, "api:1" }, "stable service")
    T.eq(L.has(r.journal, "end").status, "rolled_back")
    -- a second rollback: nothing to do
    T.eq(r.rb2_rc, 0, r.rb2_out)
    T.ok(r.rb2_out:find("nothing to roll back", 1, true), r.rb2_out)
  end)
  T.test("kill -9 at " .. point.label .. ", then `ecsplay resume JOURNAL`: promoted", function()
    start_all()
    local r = tasks["resume" .. i]:join()
    check_killed(r, point)
    T.eq(r.rs_rc, 0, r.rs_out)
    T.ok(r.rs_out:find("canary: succeeded", 1, true), r.rs_out)
    T.ok(r.rs_out:find("resuming run", 1, true), r.rs_out)
    T.eq(r.after.weights, HOME, "rule weights")
    T.eq({ r.after.api.desired, r.after.api.td }, { 4, "api:2" }, "stable service runs the new version")
    T.eq(r.after.canary.desired, 0, "canary scaled to zero")
    T.eq(L.has(r.journal, "end").status, "succeeded")
    -- the register step was not repeated: one new task definition only
    local registers = 0
    for _, l in ipairs(r.journal) do if l.t == "do" and l.key == "register" then registers = registers + 1 end end
    T.eq(registers, 1, "register journaled once")
    -- resuming a finished run: exit 2, says so
    T.eq(r.rs2_rc, 2, r.rs2_out)
    T.ok(r.rs2_out:find("already ended (succeeded)", 1, true), r.rs2_out)
  end)
end

T.test("a torn last line: rollback drops it, restores stable, and the journal reads back", function()
  start_all()
  local r = tasks.torn:join()
  check_killed(r, POINTS[2])
  T.eq(r.rb_rc, 0, r.rb_out)
  T.ok(r.rb_out:find("dropped a torn last line", 1, true), r.rb_out)
  T.eq(r.after.weights, HOME, "rule weights")
  T.eq({ r.after.canary.desired, r.after.canary.td }, { 0, "api:1" }, "canary service")
  T.eq(r.after.api.td, "api:1")
  -- every line of the repaired journal decodes (nothing glued to the fragment)
  local n = 0
  for line in r.text:gmatch("([^\n]*)\n") do
    n = n + 1
    T.ok(require("ecsplay.json").decode(line), "journal line " .. n .. " does not decode: " .. line)
  end
  T.eq(r.text:sub(-1), "\n")
  T.eq(L.has(r.journal, "end").status, "rolled_back")
  T.eq(r.rb2_rc, 0, r.rb2_out)
  T.ok(r.rb2_out:find("nothing to roll back", 1, true), r.rb2_out)
end)

T.test("resume of a run that already ended: exit 2, says so; rollback of a rolled-back run: exit 0", function()
  local dir = L.tmpdir()
  local out, rc = T.sh("ECSPLAY_RUNS_DIR=" .. dir .. "/runs " .. L.BIN .. " --simulate playbooks/canary.lua image=api:flaky")
  T.eq(rc, 1, out)
  local j = L.journal_file(dir)
  T.ok(j, "journal written")
  out, rc = T.sh(L.BIN .. " resume " .. j)
  T.eq(rc, 2, out)
  T.ok(out:find(j .. ": the run already ended (rolled_back); nothing to resume", 1, true), out)
  out, rc = T.sh(L.BIN .. " rollback " .. j)
  T.eq(rc, 0, out)
  T.ok(out:find("nothing to roll back in " .. j, 1, true), out)
  os.execute("rm -rf " .. L.q(dir))
end)

T.test("a missing journal: exit 2, the message names the file", function()
  local path = "/tmp/ecsplay-no-such-dir/run-that-never-was.jsonl"
  for _, cmd in ipairs { "rollback", "resume" } do
    local out, rc = T.sh(L.BIN .. " " .. cmd .. " " .. path)
    T.eq(rc, 2, cmd .. ": " .. out)
    T.ok(out:find("cannot read journal " .. path, 1, true), out)
  end
end)

T.test("rollback/resume usage: no journal, or an unknown option: exit 2", function()
  local out, rc = T.sh(L.BIN .. " rollback")
  T.eq(rc, 2, out)
  T.ok(out:find("usage: ecsplay rollback", 1, true), out)
  out, rc = T.sh(L.BIN .. " resume --bogus x.jsonl")
  T.eq(rc, 2, out)
  T.ok(out:find("unexpected argument --bogus", 1, true), out)
end)

T.test("the journal's start line records the playbook, its arguments and the endpoint, no secrets", function()
  start_all()
  local r = tasks.rollback1:join()
  local start = r.journal[1]
  T.eq(start.t, "start")
  T.eq(start.playbook, L.ROOT .. "/tests/scenarios/interrupt_canary.lua")
  T.eq(start.args, { bake = "3s" })
  T.eq(start.config, { endpoint_url = r.srv.url, region = "us-east-1" })
  T.ok(not r.raw:find("simulator-secret-key", 1, true), "the secret key is in the journal")
  T.ok(not r.raw:find("AKIDSIMULATOR", 1, true), "the access key is in the journal")
end)

T.test("no server or client is left running", function()
  start_all()
  for _, t in pairs(tasks) do t:result() end
  for _, p in ipairs(procs) do
    T.ok(not (p.pid and L.alive(p.pid)), "process " .. tostring(p.pid) .. " still running")
  end
end)
