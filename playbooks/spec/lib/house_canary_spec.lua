-- The team library playbooks/lib/house_canary.lua: rollout.canary with the house defaults.
local testing = require "ecsplay.testing"

-- loaded from its file, as a playbook beside lib/ would `require "lib.house_canary"`
local function house() return dofile(testing.relative("../../lib/house_canary.lua")) end

describe("lib/house_canary.lua", function()
  local lib, world
  before_each(function()
    lib = house()
    world = testing.world()
  end)

  local function kinds(gates)
    local out = {}
    for i, g in ipairs(gates) do out[i] = g.kind .. " " .. g.name end
    return out
  end

  describe("gates", function()
    it("are the 5xx rate and p99 latency of the target group", function()
      assert.same({ "alb_5xx_rate 5xx rate api-canary", "alb_latency p99 latency api-canary" },
        kinds(lib.gates("api-canary")))
    end)

    it("add one alarm gate for the alarms given", function()
      local g = lib.gates("api-canary", { "api-5xx-high" })
      assert.equals(3, #g)
      assert.equals("alarm", g[3].kind)
      assert.equals(2, #lib.gates("api-canary", {}))
    end)
  end)

  it("needs service= and image=", function()
    assert.has_error(function() lib.canary { service = "api" } end,
      "house_canary.canary{ service=, image= } needed")
  end)

  it("promotes with the house steps 5/25/50/100 and logs its summary with the team's prefix", function()
    local r = world:rollout(function() return lib.canary { service = "api", image = "api:v2" } end)
    assert.equals(0, r.code)
    assert.equals("succeeded", r.report.status)
    assert.same({ 5, 25, 50, 100 }, testing.step_weights(r.report))
    assert.same({ 5, 25, 50, 100, 0 }, world:weight_changes("api-canary"))
    assert.equals("api:2", world:service("api").task_definition)
    local prefixed = 0
    for _, line in ipairs(r.log) do if line:find("[house]", 1, true) then prefixed = prefixed + 1 end end
    assert.equals(1, prefixed)
  end)

  it("lets the caller override a house default", function()
    local r = world:rollout(function()
      return lib.canary { service = "api", image = "api:v2", steps = { 50, 100 }, bake = "2m" }
    end)
    assert.equals(0, r.code)
    assert.same({ 50, 100 }, testing.step_weights(r.report))
  end)

  it("waits for two failed measurements in a row before rolling api:flaky back", function()
    local r = world:rollout(function() return lib.canary { service = "api", image = "api:flaky" } end)
    assert.equals(1, r.code)
    assert.equals("rolled_back", r.report.status)
    assert.matches("failed 2 time(s) in a row (limit 2)", r.report.reason, 1, true)
    assert.same({ ["api-stable"] = 100, ["api-canary"] = 0 }, world:weights())
    assert.equals("api:1", world:service("api").task_definition)
    local aborts = 0
    for _, line in ipairs(r.log) do if line:find("[house] house canary api", 1, true) then aborts = aborts + 1 end end
    assert.is_true(aborts >= 1)
  end)

  it("gates on the service's alarm when given one: api:flaky fails on api-5xx-high", function()
    local r = world:rollout(function()
      return lib.canary { service = "api", image = "api:flaky", alarm = "api-5xx-high" }
    end)
    assert.equals(1, r.code)
    assert.matches("alarm api-5xx-high", r.report.reason, 1, true)
  end)
end)
