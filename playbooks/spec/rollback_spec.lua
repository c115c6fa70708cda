-- playbooks/rollback.lua: puts a service back on its previous task definition revision.
local testing = require "ecsplay.testing"

local PLAYBOOK = testing.relative("../rollback.lua")

describe("playbooks/rollback.lua", function()
  it("in the default world deploys api:v2 first, then puts api back on api:1", function()
    local r = testing.run(PLAYBOOK, {})
    assert.equals(0, r.code)
    assert.equals(2, #r.reports)
    assert.matches("task%-definition/api:2$", r.reports[1].task_definition)
    assert.matches("task%-definition/api:1$", r.reports[2].task_definition)
    local api = r.world:service("api")
    assert.same({ "api:1", "api:v1", 4 }, { api.task_definition, api.image, api.running })
    assert.equals(2, r.world:revisions("api"))
    assert.matches("rollback: succeeded, api back on api:1 (from api:2)", r.output, 1, true)
  end)

  it("goes back one revision in a world already two deployments ahead", function()
    local world = testing.world()
    for _, image in ipairs { "api:v2", "api:v3" } do
      local r = world:rollout(function()
        return require("ecsplay.rollout").rolling { cluster = "production", service = "api", image = image, bake = 0 }
      end)
      assert.equals(0, r.code)
    end
    assert.equals("api:3", world:service("api").task_definition)
    local r = world:run(PLAYBOOK, {})
    assert.equals(0, r.code)
    assert.equals(1, #r.reports)
    assert.same({ "api:2", "api:v2" }, { world:service("api").task_definition, world:service("api").image })
  end)

  it("refuses a service that does not exist: exit 2, nothing changed", function()
    local r = testing.run(PLAYBOOK, { service = "nosuch" })
    assert.equals(2, r.code)
    assert.matches("service nosuch not found in cluster production", r.message, 1, true)
    assert.same({}, r.world:calls { operation = "UpdateService" })
  end)
end)
