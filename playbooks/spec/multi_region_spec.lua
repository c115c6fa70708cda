-- playbooks/multi_region.lua: a canary per Region, wave by wave, with a soak between waves.
local testing = require "ecsplay.testing"

local PLAYBOOK = testing.relative("../multi_region.lua")
local REGIONS = { "us-east-1", "eu-west-1", "ap-southeast-1" }
local ARGS = { bake = "2m", soak = "3m" }
local HOME = { ["api-stable"] = 100, ["api-canary"] = 0 }

-- The Regions in the order the new version was registered in them.
local function wave_order(world)
  local order = {}
  for _, c in ipairs(world:calls { operation = "RegisterTaskDefinition" }) do order[#order + 1] = c.region end
  return order
end

describe("playbooks/multi_region.lua", function()
  it("promotes api:v2 in us-east-1, then eu-west-1, then ap-southeast-1", function()
    local r = testing.run(PLAYBOOK, ARGS, { scenario = testing.relative("../scenarios/multi_region.lua") })
    assert.equals(0, r.code)
    assert.equals(3, #r.reports)
    for _, rep in ipairs(r.reports) do assert.equals("succeeded", rep.status) end
    assert.same(REGIONS, wave_order(r.world))
    for _, region in ipairs(REGIONS) do
      local here = r.world:in_region(region)
      assert.equals("api:2", here:service("api").task_definition)
      assert.equals(2, here:revisions("api"))
      assert.same(HOME, here:weights())
    end
  end)

  it("a failure in eu-west-1 rolls us-east-1 back and never starts ap-southeast-1: exit 1", function()
    local r = testing.run(PLAYBOOK, ARGS, { scenario = { regions = REGIONS, setup = function(aws, where)
      if where.region == "eu-west-1" then -- its 5xx alarm always breaching
        aws.cloudwatch.put_metric_alarm { AlarmName = "api-5xx-high", Namespace = "AWS/ApplicationELB",
          MetricName = "HTTPCode_Target_5XX_Count", Statistic = "Sum", Period = 60, EvaluationPeriods = 1,
          Threshold = -1, ComparisonOperator = "GreaterThanThreshold", TreatMissingData = "breaching" }
      end
    end } })
    assert.equals(1, r.code)
    assert.matches("api in eu-west-1 rolled back", r.message, 1, true)
    assert.equals("rolled_back", r.report.status)
    assert.same({ "us-east-1", "eu-west-1" }, wave_order(r.world))
    for _, region in ipairs(REGIONS) do
      local here = r.world:in_region(region)
      assert.equals("api:1", here:service("api").task_definition)
      -- the put-back restores both services as before the run: the canary's too (0 tasks of api:1)
      assert.equals("api:1", here:service("api-canary").task_definition)
      assert.equals(0, here:service("api-canary").desired)
      assert.same(HOME, here:weights())
    end
    assert.equals(1, r.world:in_region("ap-southeast-1"):revisions("api"))
    assert.same({}, r.world:calls { region = "ap-southeast-1", operation = "RegisterTaskDefinition" })
  end)
end)
