-- rollout.fleet: a concurrency limit, a failure budget, abort_all rolling back the members that
-- had shifted (in flight: cancelled, their own rollback; promoted: undo=) and never starting the
-- rest, continue, the summary of every member, and bad options.
local T = require "harness"
local R = require "rollout_sim"
local W = require "fleet_world"
local rollout = require "ecsplay.rollout"
local actions = require "ecsplay.rollout.actions"
local errors = require "ecsplay.errors"
local sched = require "ecsplay.sched"

local function statuses(summary)
  local out = {}
  for i, m in ipairs(summary.members) do out[i] = m.status end
  return out
end

-- Puts a promoted pair back on the task definition it ran before (what a playbook's undo= does).
local function undo_pair(i, report)
  actions.run { op = "update_service", cluster = "production", service = "svc" .. i,
    taskDefinition = report.previous_task_definition, wait = { timeout = 900 } }
end

T.test("abort_all: a failure mid-fleet rolls back the shifted members and never starts the rest", function()
  R.fresh(W.scenario(5))
  local started = {}
  local code, err, _, raw = R.call(function()
    return rollout.fleet { { 1, 2, 3, 4, 5 }, limit = 2,
      run = function(i)
        started[#started + 1] = i
        return W.canary(i, i == 3 and "api:broken" or "api:v2")
      end,
      name = function(i) return "svc" .. i end,
      undo = function(i, report) undo_pair(i, report) end,
    }
  end)
  T.eq(code, 1, err)
  T.ok(errors.is(raw, "rollout") and raw.code == "FleetFailed", err)
  local s = raw.report
  T.eq(statuses(s), { "rolled_back", "rolled_back", "failed", "rolled_back", "not_started" })
  T.eq(started, { 1, 2, 3, 4 }, "svc5 never started")
  T.eq(s.counts, { succeeded = 0, failed = 1, rolled_back = 3, not_started = 1 })
  for i = 1, 5 do
    T.eq(W.weights(i), { stable = 100, canary = 0 }, "svc" .. i .. " all traffic on stable")
    T.eq(W.td(i), "api:1", "svc" .. i .. " runs the old version")
    T.eq(R.service(("svc%d-canary"):format(i)).desired, 0, "svc" .. i .. "'s canary scaled in")
  end
  T.ok(s.members[4].error:find("stopped by the fleet: svc3 failed", 1, true), s.members[4].error)
  T.ok(s.members[3].error:find("rolled back", 1, true), s.members[3].error)
end)

T.test("continue: failures within max_failures let the fleet finish; the one past it stops new starts", function()
  R.fresh(W.scenario(5))
  local bad = { [2] = true, [4] = true }
  local function fleet(max_failures)
    return rollout.fleet { { 1, 2, 3, 4, 5 }, limit = 1, max_failures = max_failures, on_failure = "continue",
      run = function(i) return W.canary(i, bad[i] and "api:broken" or "api:v2", { steps = { 100 }, bake = "1m" }) end,
      name = function(i) return "svc" .. i end }
  end
  local code, err, _, raw = R.call(function() return fleet(1) end)
  T.eq(code, 1, err)
  T.eq(statuses(raw.report), { "succeeded", "failed", "succeeded", "failed", "not_started" })
  T.eq(W.td(1), "api:2", "continue keeps what succeeded")
  T.eq(W.td(5), "api:1", "svc5 never started")
  T.eq(raw.report.budget_spent, true)
end)

T.test("the summary names every member: status, duration, error, report", function()
  R.fresh(W.scenario(3))
  local t0 = sched.now()
  local s = rollout.fleet { { 1, 2, 3 }, max_failures = 1, on_failure = "continue",
    run = function(i) return W.canary(i, i == 2 and "api:broken" or "api:v2", { steps = { 100 }, bake = "1m" }) end,
    name = function(i) return "svc" .. i end }
  T.eq(s.status, "succeeded", "one failure is within the budget")
  T.eq(s.counts, { succeeded = 2, failed = 1, rolled_back = 0, not_started = 0 })
  T.eq(statuses(s), { "succeeded", "failed", "succeeded" })
  for i, m in ipairs(s.members) do
    T.eq(m.name, "svc" .. i)
    T.ok(type(m.duration) == "number" and m.duration > 0 and m.duration <= sched.now() - t0, "duration")
  end
  T.eq(s.members[1].report.status, "succeeded")
  T.eq(s.members[1].error, nil)
  T.ok(s.members[2].error and s.members[2].error:find("5xx", 1, true), tostring(s.members[2].error))
  T.eq(s.members[2].report, nil)
end)

T.test("members as { name=, run= } tables and bad options", function()
  R.fresh(W.scenario(1))
  local s = rollout.fleet { { { name = "one", run = function() return { status = "succeeded" } end },
    function() return 42 end } }
  T.eq(s.members[1].name, "one")
  T.eq(s.members[2].name, "member 2")
  T.eq(s.members[2].report, 42)
  local e = T.raises(function() rollout.fleet { { 1 }, run = print, on_failure = "abort-all" } end,
    "did you mean \"abort_all\"")
  T.ok(errors.is(e, "bad_input") and e.field == "on_failure")
  e = T.raises(function() rollout.fleet { { 1 }, run = print, limt = 2 } end, "limit")
  T.eq(e.field, "limt")
  e = T.raises(function() rollout.fleet { { 1 } } end, "run")
  T.ok(errors.is(e, "bad_input"))
  T.raises(function() rollout.fleet { { 1 }, run = print, max_failures = -1 } end, "max_failures")
end)
