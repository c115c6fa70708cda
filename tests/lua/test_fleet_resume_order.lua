-- `ecsplay resume` of a fleet: the outcomes its journals record count before any member that
-- never started is started. The killed run is a fleet that got as far as its first members
-- (their journals ended; the later members never started, as a kill -9 between them leaves it);
-- the resume runs the whole fleet again with those journals queued, as `ecsplay resume` does
-- (rollout/journal.lua: context.resume by rollout name). The replay of the member that failed is
-- slow (its look-ups each answered 10 simulated minutes late, as under throttling): before, a member
-- that never started took the slot of one that replayed at once and shifted traffic, was
-- promoted, and only then did the journaled failure abort the fleet (abort_all) or spend its
-- budget (max_failures) — starting what the killed run had already ruled out.
local T = require "harness"
local R = require "rollout_sim"
local W = require "fleet_world"
local rollout = require "ecsplay.rollout"
local revert = require "ecsplay.rollout.revert"
local journal = require "ecsplay.rollout.journal"
local context = require "ecsplay.context"
local sched = require "ecsplay.sched"
local errors = require "ecsplay.errors"
local ecs = require "ecsplay.ecs"
local elbv2 = require "ecsplay.elbv2"
local aws = require "ecsplay.aws"

local real_getenv = os.getenv

local tmpdir = T.tmpdir

-- The journals written in dir (ECSPLAY_RUNS_DIR itself, as these tests set it; journal_lib's
-- J.journals reads a `sim serve` case's dir/runs).
local function journals_in(dir) return T.files(dir .. "/*.jsonl") end

--[[ A fresh world of n pairs whose transport notes every change naming svc<i> (calls other than
     Describe/List/Get, by the pair their request names) and, while `slow` names a pair, answers
     each look-up naming that pair 10 simulated minutes late. ]]
local function world(n)
  local sim = R.fresh(W.scenario(n))
  local X = { changes = {}, slow = nil }
  local creds = sim:credentials()
  aws.configure {
    region = sim.world.region, endpoint_url = "https://simulator.ecsplay.invalid",
    access_key = creds.access_key, secret_key = creds.secret_key,
    -- each member's look-ups its own (not batched with another's), so that one can be slow
    batching = false,
    transport = function(req)
      local op = W.operation_of(req):match("%.(%w+)$") or "?"
      local body = req.body or ""
      local pair = body:match("svc(%d+)")
      local reads = op:match("^Describe") or op:match("^List") or op:match("^Get")
      if pair and not reads then X.changes[pair] = (X.changes[pair] or 0) + 1 end
      -- (10 minutes keeps the signature, made before, within its 15 minutes)
      if reads and X.slow and (body .. " "):find("svc" .. X.slow .. "%D") then sched.sleep(600) end
      return sim:transport(req)
    end,
  }
  return X
end

-- Runs fn with journals in `dir` (ECSPLAY_RUNS_DIR) → R.call's code, message, result, error.
local function journaled(dir, fn)
  os.getenv = function(k) if k == "ECSPLAY_RUNS_DIR" then return dir end return real_getenv(k) end -- luacheck: ignore
  local code, msg, res, raw = R.call(fn)
  os.getenv = real_getenv -- luacheck: ignore
  return code, msg, res, raw
end

-- What `ecsplay resume` sets up: every journal of the run queued by its rollout's name.
local function queue_journals(dir)
  context.resume = {}
  for _, path in ipairs(journals_in(dir)) do
    local state = journal.read(path)
    local name = state.start.name
    context.resume[name] = context.resume[name] or {}
    table.insert(context.resume[name], state)
  end
end

local function statuses(summary)
  local out = {}
  for i, m in ipairs(summary.members) do out[i] = m.status end
  return out
end

--[[ The promise after the resumed run: no ECS deployment in progress, and no target group with
     traffic and no healthy target. ]]
local function settled(n)
  for i = 1, n do
    for _, name in ipairs { "svc" .. i, "svc" .. i .. "-canary" } do
      local svc = ecs.describe_services({ cluster = "production", services = { name } }).services[1]
        for _, d in ipairs(svc.deployments or {}) do
        T.ok(d.rolloutState ~= "IN_PROGRESS" and d.rolloutState ~= "PENDING",
          name .. ": a deployment left " .. tostring(d.rolloutState))
      end
    end
    for side, weight in pairs(W.weights(i)) do
      if weight > 0 then
        local tg = elbv2.describe_target_groups({ Names = { ("svc%d-%s"):format(i, side) } }).TargetGroups[1]
        local healthy = 0
        for _, h in ipairs(elbv2.describe_target_health({ TargetGroupArn = tg.TargetGroupArn })
          .TargetHealthDescriptions or {}) do
          if h.TargetHealth.State == "healthy" then healthy = healthy + 1 end
        end
        T.ok(healthy > 0, ("svc%d-%s has weight %d and no healthy target"):format(i, side, weight))
      end
    end
  end
end

local function fleet(members, opts, bad)
  return rollout.fleet { members, limit = 2, max_failures = opts.max_failures, on_failure = opts.on_failure,
    name = function(i) return "svc" .. i end,
    run = function(i) return W.canary(i, bad[i] and "api:broken" or "api:v2") end,
    undo = function(i, report) revert.succeeded(report, "the fleet failed: putting back svc" .. i) end,
  }
end

local function reset()
  context.resume, context.journal_group = nil, nil
end

T.test("abort_all, a journaled failure: the resume starts no member that never started", function()
  local X = world(4)
  local dir = tmpdir()
  reset()
  -- the killed run: svc1 and svc2 started; svc2 failed and the fleet stopped svc1; killed before
  -- svc3 and svc4 (never started)
  local code, msg = journaled(dir, function() return fleet({ 1, 2 }, {}, { [2] = true }) end)
  T.eq(code, 1, msg)
  local ended = {}
  for _, path in ipairs(journals_in(dir)) do
    local st = journal.read(path)
    ended[st.start.name] = st.ended
  end
  T.eq(ended, { svc1 = "rolled_back", svc2 = "rolled_back" })
  X.changes = {}
  -- the resume: svc2's replay is slow
  queue_journals(dir)
  X.slow = 2
  local rcode, rmsg, _, raw = journaled(dir, function() return fleet({ 1, 2, 3, 4 }, {}, { [2] = true }) end)
  X.slow = nil
  reset()
  T.eq(rcode, 1, rmsg)
  T.ok(errors.is(raw, "rollout") and raw.code == "FleetFailed", rmsg)
  T.eq(statuses(raw.report), { "rolled_back", "failed", "not_started", "not_started" })
  T.eq(raw.report.counts, { succeeded = 0, failed = 1, rolled_back = 1, not_started = 2 })
  T.eq(raw.report.budget_spent, true)
  T.ok(rmsg:find("fleet failed: 1 failure(s), budget 0; 1 failed, 1 rolled back, 2 not started", 1, true), rmsg)
  -- svc3 and svc4: nothing sent that changes them, no new task definition, no new deployment
  T.eq(X.changes, {}, "changes the resumed run made")
  for i = 1, 4 do
    T.eq(W.td(i), "api:1", "svc" .. i .. " runs the version it ran before")
    T.eq(W.weights(i), { stable = 100, canary = 0 }, "svc" .. i .. "'s traffic on stable")
  end
  for i = 3, 4 do
    local canary = R.service("svc" .. i .. "-canary")
    T.eq({ canary.td, canary.desired, canary.deployments }, { "api:1", 0, 1 }, "svc" .. i .. "'s canary untouched")
    T.eq(R.service("svc" .. i).deployments, 1, "svc" .. i .. ": no new deployment")
  end
  T.eq(#journals_in(dir), 2, "no journal for a member that never started")
  settled(4)
  os.execute("rm -rf " .. dir)
end)

T.test("max_failures = 1, continue, one journaled failure: it spends the budget first; the next failure "
  .. "stops the starts", function()
  local X = world(4)
  local dir = tmpdir()
  reset()
  -- the killed run: svc1 failed (within the budget), killed before svc2 started
  local opts = { max_failures = 1, on_failure = "continue" }
  local code, msg = journaled(dir, function() return fleet({ 1 }, opts, { [1] = true }) end)
  T.eq(code, 0, msg)
  X.changes = {}
  queue_journals(dir)
  X.slow = 1
  local bad = { [1] = true, [3] = true }
  local rcode, rmsg, _, raw = journaled(dir, function() return fleet({ 1, 2, 3, 4 }, opts, bad) end)
  X.slow = nil
  reset()
  T.eq(rcode, 1, rmsg)
  T.ok(errors.is(raw, "rollout") and raw.code == "FleetFailed", rmsg)
  -- the journaled failure is the one the budget tolerates; svc3's spends it: svc4 never starts
  T.eq(statuses(raw.report), { "failed", "succeeded", "failed", "not_started" })
  T.eq(raw.report.budget_spent, true)
  T.eq(X.changes["1"], nil, "svc1 only replayed")
  T.eq(X.changes["4"], nil, "svc4 never started")
  T.eq({ W.td(1), W.td(3), W.td(4) }, { "api:1", "api:1", "api:1" }, "svc1, svc3, svc4 on their version")
  T.ok(W.td(2) ~= "api:1", "continue keeps svc2's success: " .. W.td(2))
  T.eq(R.service("svc4-canary").deployments, 1, "svc4: no new deployment")
  settled(4)
  os.execute("rm -rf " .. dir)
end)

-- End to end: playbooks/fleet.lua (n=4, limit=2, svc2 api:bad) against `sim serve --lockstep`,
-- killed with SIGKILL the moment svc2's end line (failed, rolled back) is on disk: svc1 is
-- mid-flight (the fleet was about to stop it), svc3 and svc4 never started. `ecsplay resume`:
-- svc2's failure is replayed, svc1 resumes and is stopped at once (abort_all), svc3 and svc4
-- never start; every journal ends rolled back, nothing left in progress.
T.test("kill -9 after the failed member's end line, then `ecsplay resume`: the mid-flight member is "
  .. "rolled back, the others never start", function()
  local J = dofile "tests/scenarios/journal_lib.lua"
  local journal_file = require "ecsplay.rollout.journal_file"
  J.with_server(function(dir, srv)
    local rc, out = J.ecsplay(dir, "run", srv, { "tests/scenarios/kill_at_line.lua", "playbook=playbooks/fleet.lua",
      "n=4", "bad=2", "limit=2", "bake=1m" }, { ECSPLAY_TEST_KILL_AT = "svc2|end" })
    T.eq(rc, 137, "killed by SIGKILL:\n" .. out)
    J.forget_clients(srv)
    local paths = J.journals(dir)
    T.eq(#paths, 2, "svc3 and svc4 never started")
    local by = {}
    for _, p in ipairs(paths) do
      local st = journal_file.read(p)
      by[st.start.name] = { path = p, state = st }
    end
    T.eq(by.svc2.state.ended, "rolled_back")
    rc, out = J.ecsplay(dir, "resume", nil, { "resume", by.svc2.path })
    T.eq(rc, 1, out)
    T.ok(out:find("fleet: svc2     failed", 1, true), out)
    T.ok(out:find("fleet: svc3     not_started", 1, true), out)
    T.ok(out:find("fleet: svc4     not_started", 1, true), out)
    T.ok(not out:find("fleet: starting svc3", 1, true) and not out:find("fleet: starting svc4", 1, true), out)
    T.eq(#J.journals(dir), 2, "no journal for svc3 or svc4")
    for name, j in pairs(by) do
      T.eq(journal_file.read(j.path).ended, "rolled_back", name .. "'s journal ended")
    end
    local w = J.L.world(srv)
    for _, svc in ipairs(w.services) do
      if svc.name:match("^svc%d") then
        T.eq(svc.task_definition:match("task%-definition/(.+)$"), "api:1", svc.name .. " on the version it ran before")
        if not svc.name:find("canary", 1, true) then T.ok(svc.running > 0, svc.name .. " runs tasks") end
        for _, d in ipairs(svc.deployments or {}) do
          T.ok(d.rollout_state ~= "IN_PROGRESS", svc.name .. ": a deployment left in progress")
        end
      end
    end
    for _, l in ipairs(w.listeners) do
      for _, r in ipairs(l.rules) do
        for tg, weight in pairs(r.weights or {}) do
          -- traffic only on a stable group, whose service runs (its targets)
          if weight > 0 and tostring(tg):match("^svc%d") then
            T.ok(tostring(tg):find("stable", 1, true), "traffic on " .. tostring(tg))
          end
        end
      end
    end
  end, "playbooks/scenarios/fleet.lua")
end)
