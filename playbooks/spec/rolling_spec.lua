-- playbooks/rolling.lua: ECS's rolling update, watched; the circuit breaker's rollback is a failure.
local testing = require "ecsplay.testing"

local PLAYBOOK = testing.relative("../rolling.lua")

describe("playbooks/rolling.lua", function()
  it("deploys api:v2 with one UpdateService and no traffic change", function()
    local r = testing.run(PLAYBOOK, {})
    assert.equals(0, r.code)
    assert.equals("succeeded", r.report.status)
    assert.matches("task%-definition/api:1$", r.report.previous_task_definition)
    assert.matches("task%-definition/api:2$", r.report.task_definition)
    local api = r.world:service("api")
    assert.same({ "api:2", "api:v2", 4, 4, 1 }, { api.task_definition, api.image, api.desired, api.running,
      api.deployments })
    local updates = r.world:calls { operation = "UpdateService" }
    assert.equals(1, #updates)
    assert.equals("api", updates[1].params.service)
    assert.same({}, r.world:calls { operation = "ModifyRule" })
    assert.equals(2, r.world:revisions("api"))
  end)

  it("reports ECS's circuit-breaker rollback of api:bad as a failure: exit 1, api stays on api:1", function()
    local r = testing.run(PLAYBOOK, { image = "api:bad" })
    assert.equals(1, r.code)
    assert.equals("rolled_back", r.report.status)
    assert.matches("EcsRolledBack", r.report.reason, 1, true)
    local api = r.world:service("api")
    assert.equals("api:1", api.task_definition)
    assert.equals(4, api.running)
    assert.equals(4, r.world:healthy("api-stable"))
  end)
end)
