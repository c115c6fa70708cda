-- playbooks/ecs_native.lua: ECS's own canary, paused for ecsplay's gates at the traffic shift.
local testing = require "ecsplay.testing"

local PLAYBOOK = testing.relative("../ecs_native.lua")

describe("playbooks/ecs_native.lua", function()
  it("deploys api:v2, continuing ECS's deployment after each of its two pauses", function()
    local r = testing.run(PLAYBOOK, {})
    assert.equals(0, r.code)
    assert.equals("succeeded", r.report.status)
    assert.equals(2, #r.report.pauses)
    assert.equals(2, #r.world:calls { operation = "ContinueServiceDeployment" })
    assert.same({}, r.world:calls { operation = "StopServiceDeployment" })
    local api = r.world:service("api")
    assert.same({ "api:2", "api:v2", 4 }, { api.task_definition, api.image, api.running })
    -- ECS moved production to the alternate target group, where the new tasks are
    assert.same({ ["api-stable"] = 0, ["api-canary"] = 100 }, r.world:weights())
    assert.equals(4, r.world:healthy("api-canary"))
  end)

  it("stops ECS's deployment of api:slow at the first pause: exit 1, api back on api:1", function()
    local r = testing.run(PLAYBOOK, { image = "api:slow" })
    assert.equals(1, r.code)
    assert.equals("rolled_back", r.report.status)
    assert.matches("p99 latency", r.report.reason, 1, true)
    assert.equals(1, #r.world:calls { operation = "StopServiceDeployment" })
    assert.same({}, r.world:calls { operation = "ContinueServiceDeployment" })
    assert.equals("api:1", r.world:service("api").task_definition)
    assert.same({ ["api-stable"] = 100, ["api-canary"] = 0 }, r.world:weights())
  end)
end)
