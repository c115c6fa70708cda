-- playbooks/fleet.lua: the same canary on 8 services; a failing member puts the fleet back.
local testing = require "ecsplay.testing"

local PLAYBOOK = testing.relative("../fleet.lua")
local SCENARIO = testing.relative("../scenarios/fleet.lua")

describe("playbooks/fleet.lua", function()
  it("promotes api:v2 on every member and scales every canary service to zero", function()
    local r = testing.run(PLAYBOOK, {}, { scenario = SCENARIO })
    assert.equals(0, r.code, r.message)
    for i = 1, 8 do
      assert.equals("api:v2", r.world:service("svc" .. i).image)
      assert.equals(0, r.world:service("svc" .. i .. "-canary").desired)
      assert.same({ ["svc" .. i .. "-stable"] = 100, ["svc" .. i .. "-canary"] = 0 }, r.world:host_weights("svc" .. i .. ".example.com"))
    end
  end)

  it("a crashing member stops the fleet: the promoted members go back, both of their services as before", function()
    local r = testing.run(PLAYBOOK, { bad = 5, limit = 4 }, { scenario = SCENARIO })
    assert.equals(1, r.code, r.message)
    assert.matches("FleetFailed", r.message, 1, true)
    for i = 1, 8 do
      local stable, canary = r.world:service("svc" .. i), r.world:service("svc" .. i .. "-canary")
      assert.equals("api:1", stable.task_definition, "svc" .. i)
      -- the put-back (undo=) restores the canary service too: api:1 at 0 tasks, not api:N at 0
      assert.equals("api:1", canary.task_definition, "svc" .. i .. "-canary")
      assert.equals(0, canary.desired)
      assert.same({ ["svc" .. i .. "-stable"] = 100, ["svc" .. i .. "-canary"] = 0 }, r.world:host_weights("svc" .. i .. ".example.com"))
    end
  end)
end)
