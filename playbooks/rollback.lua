-- Puts a service back on the previous revision of its task definition (or to=REVISION), as a
-- watched rolling update (rollout.rolling with task_definition=).
--   ecsplay playbooks/rollback.lua service=api            api:7 → api:6
--   ecsplay --simulate playbooks/rollback.lua             the default world runs api:1, the first
--                                                         revision, so the rehearsal deploys api:v2
--                                                         first and then rolls it back
local rollout, ecs = require "ecsplay.rollout", require "ecsplay.ecs"
local errors = require "ecsplay.errors"
local journal = require "ecsplay.rollout.journal"
local a = ecsplay.params {
  cluster = { type = "string", default = "production", help = "the ECS cluster" },
  service = { type = "string", default = "api", help = "the service to put back" },
  to = { type = "integer", help = "the revision to go back to (the newest ACTIVE one before the current when not given)" },
  image = { type = "string", default = "api:v2", help = "--simulate only: what the rehearsal deploys first" },
  timeout = { type = "duration", default = "20m", help = "how long the rolling update may take" },
}
local cluster, service = a.cluster, a.service
local function current()
  local svc = ecs.describe_services({ cluster = cluster, services = { service } }).services[1]
  if not svc then
    error(errors.bad_input("service " .. service .. " not found in cluster " .. cluster, "service"), 0)
  end
  local family, rev = svc.taskDefinition:match("task%-definition/([^:]+):(%d+)$")
  return family, tonumber(rev)
end
local name = "rollback " .. service
-- Resumed (`ecsplay resume`) once the update began, the service no longer runs the revision
-- the target was chosen from: the journaled plan names the revision chosen and the one left.
local plan = journal.resumed_plan(name)
local family, rev, to
if plan and plan.task_definition and plan.old_td then
  to = plan.task_definition
  family, rev = plan.old_td:match("task%-definition/([^:]+):(%d+)$")
  rev = tonumber(rev)
else
  family, rev = current()
  if ecsplay.simulating() and rev == 1 and not a.to then
    print("rehearsal: " .. family .. ":1 has no earlier revision; deploying " .. a.image .. " first")
    rollout.rolling { cluster = cluster, service = service, image = a.image, bake = 0 }
    family, rev = current()
  end
  local target = a.to or rev - 1
  -- the newest ACTIVE revision at or below the target (deregistered ones cannot run)
  for r = target, 1, -1 do
    local ok, res = pcall(ecs.describe_task_definition, { taskDefinition = family .. ":" .. r })
    if ok and res.taskDefinition.status == "ACTIVE" then to = res.taskDefinition.taskDefinitionArn break end
  end
  if not to then
    error(errors.bad_input(string.format("rollback: %s runs %s:%d and no earlier ACTIVE revision exists",
      service, family, rev), "to"), 0)
  end
end
local report = rollout.rolling { cluster = cluster, service = service, task_definition = to,
  timeout = a.timeout, name = name }
print(string.format("rollback: %s, %s back on %s (from %s:%d)", report.status, service,
  to:match("task%-definition/(.+)$"), family, rev))
