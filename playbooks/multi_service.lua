-- Several services at once, with a fleet-wide abort: api goes out as the house canary
-- (lib/house_canary.lua) while app goes out through CodeDeploy; when either fails, a shared
-- flag fails the other's `fleet` gate at its next measurement, so both roll back.
--   ecsplay --simulate playbooks/multi_service.lua                  both deploy
--   ecsplay --simulate playbooks/multi_service.lua image=api:flaky  api fails → app rolled back too
local rollout, gate = require "ecsplay.rollout", require "ecsplay.gate"
local house = require "lib.house_canary"
local a = ecsplay.params {
  service = { type = "string", default = "api", help = "the service going out as the house canary" },
  image = { type = "string", default = "api:v2", help = "its image" },
  alarm = { type = "string", help = "its 5xx alarm, when it has one" },
  bake = { type = "duration", default = "2m", help = "how long each canary step bakes" },
  application = { type = "string", default = "app-deploy", help = "the CodeDeploy application of app" },
  group = { type = "string", default = "app-dg", help = "its deployment group" },
  app_image = { type = "string", default = "app:v2", help = "app's image" },
}
local fleet = { failed = nil }
local function fleet_gate()
  return gate.check("fleet", function()
    if fleet.failed then return { result = "fail", threshold = "no other service failed",
      detail = fleet.failed .. " failed" } end
    return true
  end)
end
-- Each rollout in a task of its own (ecsplay.parallel); a failure marks the fleet as failed
-- before it is passed on: the other rollout's fleet gate fails at its next measurement and it
-- rolls back too. ecsplay.parallel waits for both (a signal included: each rolls itself back)
-- and raises the worst error, so the exit code never says "every rollback completed" while
-- one did not.
local function member(name, fn)
  return function()
    local ok, res = pcall(fn)
    if not ok then
      fleet.failed = fleet.failed or name
      error(res, 0)
    end
    return res
  end
end
local results = ecsplay.parallel {
  member("api", function()
    return house.canary { service = a.service, image = a.image,
      alarm = a.alarm, bake = a.bake, gates = { fleet_gate() } }
  end),
  member("app", function()
    return rollout.codedeploy { application = a.application, group = a.group,
      image = a.app_image, interval = "1m",
      config = "CodeDeployDefault.ECSCanary10Percent15Minutes", -- outlasts the api canary
      gates = function(green)
        return { gate.alb_healthy_hosts { target_group = green.target_group, at_least = 1 }, fleet_gate() }
      end }
  end),
}
print(string.format("multi_service: api %s, app %s", results[1].status, results[2].status))
