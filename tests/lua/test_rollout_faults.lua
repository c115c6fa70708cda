-- Throttling, 5xx and dropped connections injected on the ELBv2 and CloudWatch calls of a
-- canary (playbooks/canary.lua, in process on a virtual clock, scenario faults): the rollout
-- promotes or rolls back cleanly and never stops half-shifted. Every case reads the world
-- back: the rule exactly 100/0 on stable, the services where the outcome says, and the
-- fault's hit count, so a fault that never fired cannot pass for one that was survived.
--
-- The canary's timeline in the default world (bake 5m, gates every 1m, and each step's verdict
-- waiting 3 more minutes for CloudWatch to publish the bake's last period): canary ready and
-- step 1 (10%) at +60 s, step 2 at +540 s, step 3 at +1020 s, step 4 at +1500 s, promotion at
-- +1980 s, traffic home at about +2040 s. api:flaky fails its gates at step 2 (+720 s: the
-- api-5xx-high alarm, once CloudWatch has published step 2's first minute, 2 minutes late).
local T = require "harness"
local R = require "rollout_sim"
local scenario = require "ecsplay.sim.scenario"

local HOME = { ["api-stable"] = 100, ["api-canary"] = 0 }

local function run(faults, args)
  local sim = R.fresh(scenario.check({ faults = faults }, "faults test"))
  local code, err, out = R.playbook("playbooks/canary.lua", args or {})
  local r = { code = code, err = err, out = out, hits = {} }
  for i, f in ipairs(sim.faults:list()) do r.hits[i] = f.hits end
  sim.faults:clear() -- the world is read back through the same API
  r.weights = R.weights()
  r.api, r.canary = R.service("api"), R.service("api-canary")
  return r
end

local function promoted(r)
  T.eq(r.code, 0, r.err)
  T.ok(r.out:find("canary: succeeded", 1, true), r.out)
  T.eq(r.weights, HOME, "rule weights")
  T.eq({ r.api.td, r.api.desired }, { "api:2", 4 }, "stable runs the new version")
  T.eq(r.canary.desired, 0, "canary scaled to zero")
end

local function rolled_back(r, pattern)
  T.eq(r.code, 1, r.err)
  if pattern then T.ok(r.err:find(pattern), r.err) end
  T.eq(r.weights, HOME, "rule weights")
  T.eq({ r.api.td, r.api.desired }, { "api:1", 4 }, "stable untouched")
  T.eq({ r.canary.td, r.canary.desired }, { "api:1", 0 }, "canary back")
end

T.test("ModifyRule throttled twice: the SDK retries, the canary promotes", function()
  local r = run { { service = "elbv2", operation = "ModifyRule", error = "Throttling", times = 2 } }
  T.eq(r.hits, { 2 })
  promoted(r)
end)

T.test("ModifyRule throttled beyond the SDK's retries at step 2: the shift is tried again, promoted", function()
  -- from +480 s: the first ModifyRule after that is step 2's; 5 throttles outlast the SDK's
  -- 3 attempts, and the shift's own retries (traffic.set, the budget of its undo) get through
  -- once the fault is spent (tests/lua/test_throttled_shift.lua: a two-minute throttle)
  local r = run { { service = "elbv2", operation = "ModifyRule", error = "Throttling", times = 5, from = 480 } }
  T.eq(r.hits, { 5 })
  promoted(r)
end)

T.test("ModifyRule answering 503 for a minute around step 2: rolled back or promoted, never half-way", function()
  -- step 2's change (its answer is the read-back) fails for the whole window
  local r = run { { service = "elbv2", operation = "ModifyRule", status = 503, from = 535, to = 595 } }
  T.ok(r.hits[1] > 0, "the fault never fired")
  T.eq(r.weights, HOME, "rule weights")
  if r.code == 0 then promoted(r) else rolled_back(r, "ServiceUnavailable") end
end)

T.test("ModifyRule 503 twice: retried, promoted", function()
  local r = run { { service = "elbv2", operation = "ModifyRule", status = 503, times = 2, from = 535 } }
  T.eq(r.hits, { 2 })
  promoted(r)
end)

T.test("GetMetricData 503 for two minutes during step 2: the gates ride it out, promoted", function()
  -- step 2's first period (+540 s to +600 s) is readable from +780 s: the gates query from then on
  local r = run { { service = "cloudwatch", operation = "GetMetricData", status = 503, from = 780, to = 900 } }
  T.ok(r.hits[1] > 0, "the fault never fired")
  promoted(r)
end)

T.test("GetMetricData 503 from step 2 on: the gates give up, rolled back to 100/0", function()
  local r = run { { service = "cloudwatch", operation = "GetMetricData", status = 503, from = 580 } }
  T.ok(r.hits[1] > 0, "the fault never fired")
  rolled_back(r)
end)

T.test("a dropped connection on ModifyRule: retried, promoted", function()
  local r = run { { service = "elbv2", operation = "ModifyRule", drop = true, times = 1, from = 480 } }
  T.eq(r.hits, { 1 })
  promoted(r)
end)

T.test("ModifyRule unreachable for 2 minutes as a gate fails: the rollback keeps trying, 100/0", function()
  -- api:flaky fails its gates at step 2 (+720 s); every ModifyRule connection is dropped from
  -- +715 s to +835 s, so the rollback's first tries fail and a later one moves traffic home
  local r = run({ { service = "elbv2", operation = "ModifyRule", drop = true, from = 715, to = 835 } },
    { image = "api:flaky" })
  T.ok(r.hits[1] >= 6, "the rollback met the fault: " .. r.hits[1] .. " hits")
  rolled_back(r, "GateFailed")
end)

T.test("ModifyRule answering 503 for 2 minutes as a gate fails: rolled back to 100/0", function()
  local r = run({ { service = "elbv2", operation = "ModifyRule", status = 503, from = 715, to = 835 } },
    { image = "api:flaky" })
  T.ok(r.hits[1] >= 6, "the rollback met the fault: " .. r.hits[1] .. " hits")
  rolled_back(r, "GateFailed")
end)

T.test("three throttles in a row on every ELBv2 call: promoted or rolled back, never half-way", function()
  -- 3 in a row exhaust the SDK's standard mode on whichever call meets them first (here a
  -- DescribeTargetHealth while the canary starts); either way the rule ends at 100/0
  local r = run { { service = "elbv2", operation = "*", error = "Throttling", times = 3, from = 60 } }
  T.eq(r.hits, { 3 })
  if r.code == 0 then promoted(r) else rolled_back(r, "Throttling") end
end)

T.test("two throttles on every ELBv2 call at each step: retried, promoted", function()
  local faults = {}
  for _, t in ipairs { 60, 540, 1020, 1500, 1980 } do
    faults[#faults + 1] = { service = "elbv2", operation = "*", error = "Throttling", times = 2, from = t }
  end
  local r = run(faults)
  T.eq(r.hits, { 2, 2, 2, 2, 2 })
  promoted(r)
end)
