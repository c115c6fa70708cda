-- Resume and rollback of blue_green and ecs_native after a kill -9 mid-shift: a real `ecsplay`
-- client against a real `ecsplay sim serve` is killed once production traffic has moved, then
-- `ecsplay resume JOURNAL` must finish the rollout on the side the journal's "plan" step chose
-- (not on whichever side the moved traffic now suggests), and `ecsplay rollback JOURNAL` must put
-- blue back at 100 %. The world is read back from the server (GET /_sim/world). The cases run at
-- once, each with its own server (wall-clock waits); the file takes about half a minute.
local T = require "harness"
local L = dofile "tests/scenarios/interrupt_lib.lua"
local sched = require "ecsplay.sched"

local BLUE = { ["api-stable"] = 100, ["api-canary"] = 0 }
local GREEN = { ["api-stable"] = 0, ["api-canary"] = 100 }
local BG = { "tests/scenarios/resume_blue_green.lua", "keep_blue=4s" }
local NATIVE = { "tests/scenarios/resume_ecs_native.lua", "bake=4s" }

local procs = {}

-- Waits until the client's output contains `text`.
local function wait_output(p, text, timeout)
  return L.poll(function()
    local out = L.read(p.dir .. "/out." .. p.name) or ""
    if out:find(text, 1, true) then return out end
    local rc = L.read(p.dir .. "/rc." .. p.name)
    if rc then error("the run ended (rc " .. rc:gsub("%s", "") .. ") before printing " .. text .. ":\n" .. out, 0) end
    return nil
  end, timeout or 60, "`" .. text .. "` in the output")
end

local function command(r, name, args, timeout) return L.command(r, name, args, procs, timeout) end

-- Starts `playbook`, waits for `reached(p, dir)`, kills the client with SIGKILL, then `after(r)`.
local function killed_case(playbook, reached, after)
  local dir = L.tmpdir()
  local srv, p
  local ok, res = pcall(function()
    srv = L.serve(dir, 60)
    procs[#procs + 1] = srv
    p = L.start(dir, "run", srv, playbook)
    procs[#procs + 1] = p
    reached(p, dir)
    L.kill(p, "KILL")
    local r = { dir = dir, srv = srv }
    r.rc, r.out = L.wait_exit(p, 30)
    r.journal_path = L.journal_file(dir)
    r.before = L.state(L.world(srv))
    r = after(r) or r
    r.journal = L.journal(r.journal_path)
    return r
  end)
  L.reap(p)
  L.stop(srv)
  os.execute("rm -rf " .. L.q(dir))
  if not ok then error(res, 0) end
  return res
end

-- blue_green: killed once the swap to green is journaled (during keep_blue).
local function bg_reached(_, dir) L.wait_journal(dir, "done", "swap", 90) end
-- ecs_native: killed while ECS pauses with 10 % on green (production traffic split).
local function native_reached(p) wait_output(p, "paused at PRODUCTION_TRAFFIC_SHIFT (green 10%)", 90) end

local function resume(r)
  r.rs_rc, r.rs_out = command(r, "resume", { "resume", r.journal_path }, 90)
  r.after = L.state(L.world(r.srv))
end

local function rollback(r)
  r.rb_rc, r.rb_out = command(r, "rollback", { "rollback", r.journal_path }, 90)
  -- the ECS rollback has finished when `ecsplay rollback` returns; give the simulated world
  -- a moment to settle its weights, then read it back
  r.after = L.poll(function()
    local s = L.state(L.world(r.srv))
    if s.weights["api-stable"] == 100 then return s end
    return nil
  end, 20, "api-stable back at 100%")
end

local function count(lines, t, key)
  local n = 0
  for _, l in ipairs(lines) do if l.t == t and l.key == key then n = n + 1 end end
  return n
end

local tasks = {}
local function start_all()
  if tasks.bg_resume then return end
  tasks.bg_resume = sched.spawn(killed_case, BG, bg_reached, resume)
  tasks.bg_rollback = sched.spawn(killed_case, BG, bg_reached, rollback)
  tasks.native_resume = sched.spawn(killed_case, NATIVE, native_reached, resume)
  tasks.native_rollback = sched.spawn(killed_case, NATIVE, native_reached, rollback)
end

local function check_bg_killed(r)
  T.eq(r.rc, 137, "killed by SIGKILL: " .. r.out)
  T.eq(r.before.weights, GREEN, "production swapped to green when killed")
  T.eq({ r.before.canary.td, r.before.canary.desired }, { "api:2", 4 }, "green runs the new version")
  T.eq(r.before.api.desired, 4, "blue still running when killed")
end

local function check_native_killed(r)
  T.eq(r.rc, 137, "killed by SIGKILL: " .. r.out)
  T.eq(r.before.weights, { ["api-stable"] = 90, ["api-canary"] = 10 }, "production split when killed")
end

T.test("blue_green: kill -9 after the swap, `ecsplay resume` finishes on the journaled green", function()
  start_all()
  local r = tasks.bg_resume:join()
  check_bg_killed(r)
  T.eq(r.rs_rc, 0, r.rs_out)
  T.ok(r.rs_out:find("resuming run", 1, true), r.rs_out)
  T.ok(r.rs_out:find("blue_green: succeeded, api-canary now serves api:2", 1, true), r.rs_out)
  T.ok(not r.rs_out:find("is blue; deploying onto", 1, true), "roles swapped on resume:\n" .. r.rs_out)
  T.eq(r.after.weights, GREEN, "production on green")
  T.eq({ r.after.canary.td, r.after.canary.desired }, { "api:2", 4 }, "green serves the new version")
  T.eq({ r.after.api.td, r.after.api.desired }, { "api:1", 0 }, "blue scaled to zero, not redeployed")
  T.eq(L.has(r.journal, "end").status, "succeeded")
  T.eq(L.has(r.journal, "done", "plan").result.blue, "api", "the plan names blue")
  T.eq(count(r.journal, "do", "register"), 1, "register journaled once")
  T.eq(count(r.journal, "do", "swap"), 1, "swap journaled once")
end)

T.test("blue_green: kill -9 after the swap, `ecsplay rollback` puts blue back at 100%", function()
  start_all()
  local r = tasks.bg_rollback:join()
  check_bg_killed(r)
  T.eq(r.rb_rc, 0, r.rb_out)
  T.ok(r.rb_out:find("rolled back: stable state restored", 1, true), r.rb_out)
  T.eq(r.after.weights, BLUE, "production back on blue")
  T.eq({ r.after.api.td, r.after.api.desired }, { "api:1", 4 }, "blue")
  T.eq({ r.after.canary.td, r.after.canary.desired }, { "api:1", 0 }, "green back as it was")
  T.eq(L.has(r.journal, "end").status, "rolled_back")
end)

T.test("ecs_native: kill -9 at the 10% pause, `ecsplay resume` finishes the deployment", function()
  start_all()
  local r = tasks.native_resume:join()
  check_native_killed(r)
  T.eq(r.rs_rc, 0, r.rs_out)
  T.ok(r.rs_out:find("resuming run", 1, true), r.rs_out)
  T.ok(r.rs_out:find("ecs_native: succeeded, api runs api:2 after 2 pause(s)", 1, true), r.rs_out)
  T.eq(r.after.weights, GREEN, "production on the alternate group")
  T.eq({ r.after.api.td, r.after.api.desired }, { "api:2", 4 }, "api runs the new version")
  T.eq(L.has(r.journal, "end").status, "succeeded")
  T.eq(L.has(r.journal, "done", "plan").result.old_td:match("task%-definition/(.+)$"), "api:1",
    "the plan keeps the previous task definition")
  T.eq(count(r.journal, "do", "deploy"), 1, "UpdateService journaled once")
  T.eq(count(r.journal, "do", "register"), 1, "register journaled once")
end)

T.test("ecs_native: kill -9 at the 10% pause, `ecsplay rollback` puts blue back at 100%", function()
  start_all()
  local r = tasks.native_rollback:join()
  check_native_killed(r)
  T.eq(r.rb_rc, 0, r.rb_out)
  T.ok(r.rb_out:find("rolled back: stable state restored", 1, true), r.rb_out)
  T.eq(r.after.weights, BLUE, "production back on blue")
  T.eq(r.after.api.td, "api:1", "api back on the previous task definition")
  T.eq(L.has(r.journal, "end").status, "rolled_back")
end)

T.test("no server or client is left running", function()
  start_all()
  for _, t in pairs(tasks) do t:result() end
  for _, p in ipairs(procs) do
    T.ok(not (p.pid and L.alive(p.pid)), "process " .. tostring(p.pid) .. " still running")
  end
end)
