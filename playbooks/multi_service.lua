-- Several services at once, with a fleet-wide abort: api goes out as the house canary
-- (lib/house_canary.lua) while app goes out through CodeDeploy; when either fails, a shared
-- flag fails the other's `fleet` gate at its next measurement, so both roll back.
--   ecsplay --simulate playbooks/multi_service.lua                  both deploy
--   ecsplay --simulate playbooks/multi_service.lua image=api:flaky  api fails → app rolled back too
local rollout, gate = require "ecsplay.rollout", require "ecsplay.gate"
local errors = require "ecsplay.errors"
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
-- Each rollout in a task of its own; its outcome is kept, not raised at once: the other
-- rollout's fleet gate fails at its next measurement and it rolls back too.
local function start(name, fn)
  return ecsplay.spawn(function()
    local ok, res = pcall(fn)
    if not ok then fleet.failed = fleet.failed or name end
    return { ok = ok, result = res }
  end)
end
-- A signal reaches this task too while it waits: the rollouts roll back on their own, and the
-- run ends only once both have ended.
local function outcome(task)
  while true do
    local ok, done, res = pcall(task.result, task)
    if ok then return done and res or { ok = false, result = res } end
    if not errors.is(done, "interrupted") then error(done, 0) end
  end
end
-- The run's error is the worst of the two: a rollback that did not complete (exit 3) over an
-- interruption (130/143) over a failure that rolled back (1), so the exit code never says
-- "every rollback completed" while one did not.
local function severity(err)
  if errors.is(err, "rollback") then return 3 end
  if errors.is(err, "interrupted") then return 2 end
  return 1
end
local tasks = {
  start("api", function()
    return house.canary { service = a.service, image = a.image,
      alarm = a.alarm, bake = a.bake, gates = { fleet_gate() } }
  end),
  start("app", function()
    return rollout.codedeploy { application = a.application, group = a.group,
      image = a.app_image, interval = "1m",
      config = "CodeDeployDefault.ECSCanary10Percent15Minutes", -- outlasts the api canary
      gates = function(green)
        return { gate.alb_healthy_hosts { target_group = green.target_group, at_least = 1 }, fleet_gate() }
      end }
  end),
}
local results, worst = {}, nil
for i, t in ipairs(tasks) do
  local o = outcome(t)
  results[i] = o.result
  if not o.ok and (worst == nil or severity(o.result) > severity(worst)) then worst = o.result end
end
if worst ~= nil then error(worst, 0) end
print(string.format("multi_service: api %s, app %s", results[1].status, results[2].status))
