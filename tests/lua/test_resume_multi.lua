-- `ecsplay resume` of a playbook with several rollouts (issue 12, item 5): playbooks/multi_service.lua
-- (a house canary and a CodeDeploy rollout in parallel, each journaling to its own file) is
-- killed with SIGKILL after each journal line of the run in turn (tests/scenarios/journal_faults.lua
-- counts the lines of both journals together), then `ecsplay resume` of its first journal must
-- finish both rollouts: exit 0, every journal ended "succeeded", and the world read back from the
-- server exactly as a clean run leaves it (services, task definitions, weights, one CodeDeploy
-- deployment, nothing in progress). Killed after the last line, resume says the run ended (exit 2).
-- Each case gets its own `sim serve --lockstep` (simulated time moves only while the client
-- waits, so a run takes about a second).
local T = require "harness"
local J = dofile "tests/scenarios/journal_lib.lua"
local L = J.L
local json = require "ecsplay.json"
local sched = require "ecsplay.sched"

local function same(a, b) return json.encode(a) == json.encode(b) end

local WRAPPER = "tests/scenarios/journal_faults.lua"
local PLAYBOOK = "playbook=playbooks/multi_service.lua"

-- The journals' lines of changes (the run report's step and gate lines aside, as the wrapper counts).
local function count_lines(dir)
  local n = 0
  for _, f in ipairs(J.journals(dir)) do
    for _, l in ipairs(L.journal(f)) do
      if l.t ~= "step" and l.t ~= "gate" then n = n + 1 end
    end
  end
  return n
end

-- The world as the test compares it: what the two rollouts touch.
local function snapshot(srv)
  local w = L.world(srv)
  local s = { services = {}, weights = {}, deployments = {} }
  for _, svc in ipairs(w.services) do
    local in_flight = 0
    for _, d in ipairs(svc.deployments or {}) do
      if d.rollout_state == "IN_PROGRESS" then in_flight = in_flight + 1 end
    end
    s.services[svc.name] = { td = svc.task_definition:match("task%-definition/(.+)$"), desired = svc.desired,
      running = svc.running, in_flight = in_flight, task_sets = #(svc.task_sets or {}) }
  end
  for _, l in ipairs(w.listeners) do
    for _, r in ipairs(l.rules) do s.weights[l.port .. "/" .. r.priority] = r.weights end
  end
  for _, d in ipairs(w.codedeploy_deployments or {}) do s.deployments[#s.deployments + 1] = d.status end
  return s
end

local function ended(dir)
  local out = {}
  for _, f in ipairs(J.journals(dir)) do out[#out + 1] = J.ended(f) or "(none)" end
  return out
end

local baseline
local function clean_run()
  if baseline then return baseline end
  baseline = J.with_server(function(dir, srv)
    local rc, out = J.ecsplay(dir, "clean", srv, { WRAPPER, PLAYBOOK })
    return { rc = rc, out = out, lines = count_lines(dir), world = snapshot(srv), ended = ended(dir),
      files = #J.journals(dir) }
  end)
  return baseline
end

T.test("a clean run: two journals, both succeeded; the world it leaves is the reference", function()
  local b = clean_run()
  T.eq(b.rc, 0, b.out)
  T.eq(b.files, 2, "one journal per rollout")
  T.eq(b.ended, { "succeeded", "succeeded" })
  T.eq(b.world.services.api.td, "api:2")
  T.eq(b.world.services.app.td, "app:2")
  T.eq(b.world.deployments, { "Succeeded" })
  T.ok(b.lines >= 25, "journal lines: " .. b.lines)
end)

-- One case: kill after line n, resume the first journal still open.
local function killed_then_resumed(n)
  return J.with_server(function(dir, srv)
    local r = {}
    r.rc, r.out = J.ecsplay(dir, "run", srv, { WRAPPER, PLAYBOOK }, { ECSPLAY_TEST_JOURNAL_FAULT = "kill:" .. n })
    J.forget_clients(srv)
    local pending
    for _, f in ipairs(J.journals(dir)) do
      if not J.ended(f) and not pending then pending = f end
    end
    r.resumed = pending or J.journals(dir)[1]
    r.rs_rc, r.rs_out = J.ecsplay(dir, "resume", nil, { "resume", r.resumed })
    r.world = snapshot(srv)
    r.ended = ended(dir)
    return r
  end)
end

-- The cases, PARALLEL at a time.
local PARALLEL = 3

T.test("kill -9 after each journal line, then `ecsplay resume`: both rollouts finish as a clean run", function()
  local b = clean_run()
  local failures, results = {}, {}
  for first = 1, b.lines, PARALLEL do
    local tasks = {}
    for n = first, math.min(first + PARALLEL - 1, b.lines) do
      tasks[#tasks + 1] = { n = n, task = sched.spawn(killed_then_resumed, n) }
    end
    for _, t in ipairs(tasks) do results[t.n] = t.task:join() end
  end
  for n = 1, b.lines do
    local r = results[n]
    local want_rc = n == b.lines and 2 or 0
    local why
    if r.rc ~= 137 then why = "the run was not killed (exit " .. tostring(r.rc) .. ")"
    elseif r.rs_rc ~= want_rc then why = "resume exited " .. tostring(r.rs_rc) .. ", want " .. want_rc
    elseif not same(r.world, b.world) then
      why = "world differs: " .. json.encode(r.world) .. " vs " .. json.encode(b.world)
    elseif not same(r.ended, { "succeeded", "succeeded" }) then why = "journals ended " .. json.encode(r.ended)
    end
    if why then
      failures[#failures + 1] = string.format("line %d: %s\n%s", n, why, r.rs_out:sub(-1500))
    end
  end
  T.eq(#failures, 0, table.concat(failures, "\n---\n"))
end)

-- Killed between the group's `rollout` line and the second rollout's start line, with that
-- rollout's journal left empty (the file created, its start line not yet on disk):
-- `ecsplay resume` of the EMPTY journal finds the run through the group's first journal
-- (which names it), resumes the other rollout where it stopped and starts this one over in
-- the same file (start line first); both finish as in a clean run.
T.test("a rollout's journal left empty, then `ecsplay resume` of that empty journal: the run is found and "
  .. "finishes as a clean run", function()
  local b = clean_run()
  -- killed once the group's `rollout` line is on disk (which line number that is depends on
  -- how the two rollouts' lines interleave, which the answers' timing decides)
  local found = J.with_server(function(dir, srv)
    local r = {}
    r.rc, r.out = J.ecsplay(dir, "run", srv, { WRAPPER, PLAYBOOK }, { ECSPLAY_TEST_JOURNAL_FAULT = "kill:rollout" })
    J.forget_clients(srv)
    local files = J.journals(dir)
    r.killed_files = #files
    if r.rc ~= 137 or #files ~= 1 then return r end
    local lines = L.journal(files[1])
    r.last = lines[#lines]
    if not (r.last and r.last.t == "rollout") then return r end
    -- the second rollout's journal as a kill mid-creation leaves it: empty
    local empty = dir .. "/runs/" .. r.last.journal
    L.write(empty, "")
    r.empty, r.root = empty, files[1]
    r.rs_rc, r.rs_out = J.ecsplay(dir, "resume", nil, { "resume", empty })
    r.world = snapshot(srv)
    r.ended = ended(dir)
    r.files = #J.journals(dir)
    r.empty_lines = L.journal(empty)
    return r
  end)
  T.eq(found.rc, 137, "killed after the `rollout` line: " .. tostring(found.out))
  T.eq(found.killed_files, 1, "the second rollout's journal not yet created when killed")
  T.eq(found.last and found.last.t, "rollout", "the group journal's last line")
  T.eq(found.rs_rc, 0, found.rs_out)
  T.ok(found.rs_out:find("is empty (its rollout was stopped before its first line); resuming the run", 1, true),
    found.rs_out)
  T.eq(found.files, 2, "no third journal: the empty one was started over")
  T.eq(found.empty_lines[1] and found.empty_lines[1].t, "start", "the once-empty journal starts with its start line")
  T.eq(found.ended, { "succeeded", "succeeded" })
  T.ok(same(found.world, b.world), "world differs: " .. json.encode(found.world) .. " vs " .. json.encode(b.world))
end)
