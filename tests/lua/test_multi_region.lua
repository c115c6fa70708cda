-- playbooks/multi_region.lua on a three-Region simulated world: waves, the soak between them,
-- and a failure in the second Region rolling back the first and never starting the third.
local T = require "harness"
local R = require "rollout_sim"
local aws = require "ecsplay.aws"
local undo = require "ecsplay.undo"
local context = require "ecsplay.context"
local scenario = require "ecsplay.sim.scenario"

local REGIONS = { "us-east-1", "eu-west-1", "ap-southeast-1" }
local ARGS = { bake = "2m", soak = "3m" }

-- eu-west-1's api-5xx-high always breaching: its canary fails at its first alarm measurement
local function breaching_alarm(aws_setup, where)
  if where.region == "eu-west-1" then
    aws_setup.cloudwatch.put_metric_alarm { AlarmName = "api-5xx-high", Namespace = "AWS/ApplicationELB",
      MetricName = "HTTPCode_Target_5XX_Count", Statistic = "Sum", Period = 60, EvaluationPeriods = 1,
      Threshold = -1, ComparisonOperator = "GreaterThanThreshold", TreatMissingData = "breaching" }
  end
end

-- What the runner does when a playbook fails: its on_abort handlers, newest first.
local function run_aborts()
  return undo.run(context.aborts, { exec = function(e) e.fn("test") end,
    describe = function(e) return e.name end })
end

-- Each Region's api: { td =, weights = }, read through a session of that Region.
local function state(region)
  local s = aws.session { region = region }
  return s:run(function()
    local families = s.ecs.list_task_definitions { familyPrefix = "api" }.taskDefinitionArns
    return { td = R.service("api").td, canary = R.service("api-canary").desired, weights = R.weights(),
      revisions = #families }
  end)
end

local HOME = { ["api-stable"] = 100, ["api-canary"] = 0 }

T.test("three waves: every Region promoted in order, each in its own world", function()
  R.fresh(scenario.check({ regions = REGIONS }, "three regions"))
  local code, err, out = R.playbook("playbooks/multi_region.lua", ARGS)
  T.eq(code, 0, err)
  T.ok(out:find("multi_region: us-east-1 succeeded, eu-west-1 succeeded, ap-southeast-1 succeeded", 1, true), out)
  for _, region in ipairs(REGIONS) do
    local st = state(region)
    T.eq(st.td, "api:2", region .. " runs the new version")
    T.eq(st.revisions, 2, region .. ": api:1 and its own api:2, nothing registered twice")
  end
end)

T.test("a failure in the second Region rolls back the first and never starts the third", function()
  R.fresh(scenario.check({ regions = REGIONS, setup = breaching_alarm }, "eu-west-1 alarm"))
  local code, err = R.playbook("playbooks/multi_region.lua", ARGS)
  T.eq(code, 1, err)
  T.ok(err:find("api in eu-west-1 rolled back", 1, true), err)
  -- us-east-1 was promoted (api:2) before eu-west-1 started: its on_abort puts it back
  T.eq(state("us-east-1").td, "api:2", "us-east-1 promoted before the failure")
  local failures = run_aborts()
  T.eq(#failures, 0, failures[1] and failures[1].text)
  local east, west, south = state("us-east-1"), state("eu-west-1"), state("ap-southeast-1")
  T.eq({ east.td, east.weights, east.canary }, { "api:1", HOME, 0 }, "us-east-1 rolled back")
  T.eq({ west.td, west.weights, west.canary }, { "api:1", HOME, 0 }, "eu-west-1 rolled back by its canary")
  T.eq({ south.td, south.weights, south.revisions }, { "api:1", HOME, 1 }, "ap-southeast-1 never started")
end)

T.test("a soak that fails stops the waves after the promoted one", function()
  -- the alarm goes off at +18 min, after us-east-1's promotion (+17): its soak fails
  R.fresh(scenario.check({ regions = REGIONS,
    alarms = { ["api-5xx-high"] = { ["then"] = { at = "18m", state = "ALARM" } } } }, "soak"))
  local code, err = R.playbook("playbooks/multi_region.lua", ARGS)
  T.eq(code, 1, err)
  T.ok(err:find("soak after wave", 1, true), err)
  T.eq(state("us-east-1").td, "api:2", "us-east-1 promoted (its on_abort puts it back)")
  T.eq(state("eu-west-1").revisions, 1, "eu-west-1 never started")
end)

T.test("Regions of one wave go out as a fleet: a failure in one stops the other at once", function()
  -- eu-west-1's canary fails at its first alarm measurement; ap-southeast-1, in the same wave,
  -- must not go on to be promoted (it did, for 11 minutes, when the wave was ecsplay.map)
  R.fresh(scenario.check({ regions = REGIONS, setup = breaching_alarm }, "eu-west-1 alarm"))
  local code, err = R.playbook("playbooks/multi_region.lua",
    { bake = "2m", soak = "3m", waves = "us-east-1,eu-west-1+ap-southeast-1" })
  T.eq(code, 1, err)
  T.ok(err:find("wave 2 (eu-west-1 + ap-southeast-1) failed", 1, true), err)
  T.ok(err:find("api in ap-southeast-1: stopped by the fleet", 1, true), err)
  -- before the run's on_abort handlers: the wave-mate rolled itself back, never promoted
  local south = state("ap-southeast-1")
  T.eq({ south.td, south.weights, south.canary }, { "api:1", HOME, 0 }, "ap-southeast-1 stopped and rolled back")
  T.eq(state("us-east-1").td, "api:2", "wave 1 promoted (its on_abort puts it back)")
  local failures = run_aborts()
  T.eq(#failures, 0, failures[1] and failures[1].text)
  T.eq(state("us-east-1").td, "api:1", "us-east-1 rolled back")
end)

T.test("a bad Region in waves= is bad input before wave 1 changes anything", function()
  for waves, want in pairs {
    ["us-east-1,eu-west1"] = "waves: eu%-west1: .*did you mean \"eu%-west%-1\"",
    ["us-east-1,mars-north-1"] = "waves: mars%-north%-1: unknown Region",
    ["us-east-1,eu-central-1"] = "waves: eu%-central%-1: cannot read cluster production there",
    ["us-east-1,eu-west-1+us-east-1"] = "waves: us%-east%-1: listed twice %(wave 1 and wave 2%)",
  } do
    R.fresh(scenario.check({ regions = REGIONS }, "three regions"))
    local code, err = R.playbook("playbooks/multi_region.lua", { waves = waves })
    T.eq(code, 2, err)
    T.ok(err:find(want), err)
    T.eq(state("us-east-1").revisions, 1, waves .. ": us-east-1 untouched")
  end
end)
