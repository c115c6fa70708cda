-- Forward steps that survive a throttle (issue 8, item 5): a throttled weight shift is retried
-- with the same budget as its undo (rollout/actions.lua's retry_budget), bounded by the step's
-- deadline, instead of being abandoned after the SDK's three attempts while the rollback then
-- waits the same throttle out. In process, on the virtual clock (`--simulate`), in the default
-- world: playbooks/canary.lua shifts to 50 % (step 3) at +17 min.
local T = require "harness"
local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
package.path = here .. "/?.lua;" .. package.path
local R = require "rollout_sim"
local scenario = require "ecsplay.sim.scenario"
local traffic = require "ecsplay.rollout.traffic"
local actions = require "ecsplay.rollout.actions"

local SCENARIO = "tests/scenarios/throttle_modify_rule.lua"
local HOME = { ["api-stable"] = 100, ["api-canary"] = 0 }

local function minutes(clock) -- "[10:18:07]" → minutes after 10:00
  local h, m, s = clock:match("(%d+):(%d+):(%d+)")
  return (tonumber(h) - 10) * 60 + tonumber(m) + tonumber(s) / 60
end

-- The time of the first output line matching `pattern`, in minutes after 10:00.
local function when(out, pattern)
  for line in out:gmatch("[^\n]+") do
    if line:find(pattern) then
      local clock = line:match("^%[(%d+:%d+:%d+)%]")
      if clock then return minutes(clock) end
    end
  end
  return nil
end

local function run(faults, args)
  local sim = R.fresh(scenario.check({ faults = faults }, "throttle test"))
  local code, err = R.playbook("playbooks/canary.lua", args or {})
  local hits = {}
  for i, f in ipairs(sim.faults:list()) do hits[i] = f.hits end
  sim.faults:clear()
  return { code = code, err = err, hits = hits, weights = R.weights(), api = R.service("api"),
    canary = R.service("api-canary") }
end

T.test("the forward budget is the undo's", function()
  T.eq(traffic.retry_budget, actions.retry_budget)
  T.ok(traffic.retry_budget >= 120, "long enough for a two-minute throttle")
end)

T.test("ModifyRule throttled for two minutes mid-canary (CLI): the shift waits, the rollout promotes", function()
  local out, rc = T.sh(T.bin .. " --simulate=" .. SCENARIO .. " playbooks/canary.lua")
  T.eq(rc, 0, out)
  T.ok(out:find("canary: succeeded", 1, true), out)
  T.ok(not out:find("rolling back", 1, true), out)
  -- the step-3 shift was throttled from its first try (+17 min) until the window closed
  -- (+19 min), then took effect within one backoff (20 s at most)
  local throttled = when(out, "ModifyRule: Throttling")
  T.ok(throttled and throttled >= 17 and throttled < 17.1, "first throttle at +" .. tostring(throttled) .. " min\n" .. out)
  local step3 = when(out, "step 3/4")
  T.ok(step3 and step3 >= 19 and step3 <= 19 + 21 / 60, "step 3 took effect at +" .. tostring(step3) .. " min\n" .. out)
  T.ok(when(out, "step 4/4") > step3, "the canary went on to step 4")
  T.ok(out:find("weight shift", 1, true), "the forward retries are logged\n" .. out)
end)

T.test("the same in process: promoted, the world read back, the fault met more than the SDK's tries", function()
  local sim = R.fresh(scenario.load(SCENARIO))
  local code, err = R.playbook("playbooks/canary.lua", {})
  local hits = sim.faults:list()[1].hits
  sim.faults:clear()
  T.eq(code, 0, err)
  T.ok(hits > 3, "ModifyRule throttled " .. hits .. " times: more than the SDK's 3 attempts")
  T.eq(R.weights(), HOME, "rule weights")
  T.eq({ R.service("api").td, R.service("api").desired }, { "api:2", 4 }, "stable runs the new version")
  T.eq(R.service("api-canary").desired, 0, "canary scaled to zero")
end)

T.test("a throttle longer than the budget: the shift gives up at its deadline, rolled back to 100/0", function()
  -- throttled from +17 to +25 min: the step-3 shift (+17) gives up at +17 + budget (+22), the
  -- rollback's own retries get through once the window closes
  local r = run { { service = "elbv2", operation = "ModifyRule", error = "Throttling", from = 1020, to = 1500 } }
  T.eq(r.code, 1, r.err)
  T.ok(r.err:find("Throttling", 1, true), r.err)
  T.ok(r.err:find("gave up at its deadline", 1, true), r.err)
  -- how long it tried, written as a duration ("5m2s")
  local spent = require("ecsplay.duration").parse(r.err:match("tries in (%w+), gave up") or "")
  T.ok(spent and spent >= traffic.retry_budget and spent <= traffic.retry_budget + 3, r.err)
  T.eq(r.weights, HOME, "rule weights")
  T.eq({ r.api.td, r.api.desired }, { "api:1", 4 }, "stable untouched")
  T.eq({ r.canary.td, r.canary.desired }, { "api:1", 0 }, "canary back")
end)

T.test("the step deadline: the shift's retries stop when it passes", function()
  R.fresh(scenario.check({ faults = { { service = "elbv2", operation = "ModifyRule", error = "Throttling" } } },
    "deadline test"))
  local sched = require "ecsplay.sched"
  local rule = traffic.resolve(nil, {
    (traffic.target_group_arn("api-stable")), (traffic.target_group_arn("api-canary")) }, "rule")
  local tgs = {}
  for arn in pairs(traffic.get(rule)) do tgs[#tgs + 1] = arn end
  local start = sched.now()
  local ok, e = pcall(traffic.set, rule, { [tgs[1]] = 50, [tgs[2]] = 50 }, { deadline = start + 45 })
  T.ok(not ok, "expected the shift to fail")
  T.ok(tostring(e):find("Throttling", 1, true), tostring(e))
  -- no try starts after the deadline; the last one's own SDK attempts take up to 1 + 2 s
  T.ok(sched.now() - start <= 45 + 3, "gave up by the deadline: " .. (sched.now() - start) .. " s")
  T.ok(sched.now() - start >= 20, "kept trying: " .. (sched.now() - start) .. " s")
  R.sim.faults:clear()
end)

T.test("a non-transient error on the shift is not retried: one try, rolled back", function()
  local r = run { { service = "elbv2", operation = "ModifyRule", error = "AccessDenied", status = 403,
    times = 1, from = 1020 } }
  T.eq(r.hits, { 1 })
  T.eq(r.code, 1, r.err)
  T.ok(r.err:find("AccessDenied", 1, true), r.err)
  T.eq(r.weights, HOME, "rule weights")
end)
