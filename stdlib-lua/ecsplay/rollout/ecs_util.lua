--[[
ECS helpers the strategies share: finding services, making the new task
definition, and watching a service's deployment until its tasks are running
and healthy behind the load balancer (or until it clearly fails).
]]
local sched = require "ecsplay.sched"
local log = require "ecsplay.log"

local M = {}

local function ecs() return require "ecsplay.ecs" end

-- "arn:...:task-definition/api:7" -> "api:7", for messages.
function M.short(td) return td and (td:match("task%-definition/(.+)$") or td) or "?" end

local function bad(msg) error(require("ecsplay.errors").bad_input(msg), 0) end
M.bad = bad

-- describe_services for names; BadInput naming the field for a missing one.
function M.services(cluster, names, fields)
  local ok, res = pcall(ecs().describe_services, { cluster = cluster, services = names })
  if not ok then
    if type(res) == "table" and res.code == "ClusterNotFoundException" then
      bad("cluster: ECS cluster `" .. cluster .. "` does not exist")
    end
    error(res, 0)
  end
  local by_name = {}
  for _, s in ipairs(res.services or {}) do
    if s.status == "ACTIVE" then by_name[s.serviceName] = s end
  end
  local out = {}
  for i, n in ipairs(names) do
    local svc = by_name[n] or by_name[n:match("service/[^/]+/(.+)$") or ""]
    if not svc then
      bad(string.format("%s: service `%s` not found (or not ACTIVE) in cluster `%s`",
        fields and fields[i] or "service", n, cluster))
    end
    out[i] = svc
  end
  return out
end

-- The service's target groups; BadInput when it has none.
function M.require_load_balancer(svc, field)
  if not svc.loadBalancers or #svc.loadBalancers == 0 then
    bad(string.format("%s: service `%s` has no load balancer, so traffic cannot be shifted to it",
      field or "service", svc.serviceName))
  end
  return svc.loadBalancers
end

--[[ A new revision of `base_td` (ARN or family:rev) with `image` on
     `container` (default: the first container). Returns its ARN. ]]
function M.register_with_image(base_td, image, container, field)
  local td = ecs().describe_task_definition({ taskDefinition = base_td }).taskDefinition
  local names = {}
  local target
  for _, c in ipairs(td.containerDefinitions or {}) do
    names[#names + 1] = c.name
    if (container and c.name == container) or (not container and not target) then target = c end
  end
  if not target then
    bad(string.format("%s: task definition %s has no container `%s` (it has: %s)", field or "container",
      td.family .. ":" .. td.revision, tostring(container), table.concat(names, ", ")))
  end
  target.image = image
  local new = ecs().register_task_definition(ecs().reuse(td)).taskDefinition
  return new.taskDefinitionArn, target.name
end

-- The step every strategy starts with: the new revision, journaled so that a
-- resumed run reuses it instead of registering another.
function M.register_step(run, base_td, image, container)
  return run:step("register", "register the new task definition", function()
    local arn = M.register_with_image(base_td, image, container, "container")
    run:log("info", "register", "registered " .. arn:match("task%-definition/(.+)$") .. " with image " .. image)
    return arn
  end)
end

local function primary(svc)
  for _, d in ipairs(svc.deployments or {}) do
    if d.status == "PRIMARY" then return d end
  end
end

local function healthy_targets(tg_arn)
  local n = 0
  local res = require("ecsplay.elbv2").describe_target_health { TargetGroupArn = tg_arn }
  for _, d in ipairs(res.TargetHealthDescriptions or {}) do
    if d.TargetHealth and d.TargetHealth.State == "healthy" then n = n + 1 end
  end
  return n
end
M.healthy_targets = healthy_targets

-- One look at the service: returns svc when ready, else nil and a progress note;
-- raises when the deployment clearly failed.
local function poll_ready(cluster, service, task_definition, want, tg_arns)
  local svc = ecs().describe_services({ cluster = cluster, services = { service } }).services[1]
  local d = primary(svc)
  if d and task_definition and d.taskDefinition ~= task_definition then
    error({ code = "DeploymentReplaced", message = string.format(
      "service %s now deploys %s, not %s (rolled back or changed by someone else)", service,
      d.taskDefinition, task_definition) }, 0)
  end
  if d and d.rolloutState == "FAILED" then
    error({ code = "DeploymentFailed", message = string.format("service %s deployment failed: %s",
      service, d.rolloutStateReason or "no reason given") }, 0)
  end
  local failed = d and d.failedTasks or 0
  if want > 0 and failed >= math.max(3, want * 2) then
    error({ code = "TasksFailing", message = string.format(
      "service %s: %d task(s) of the new version failed to start or stay healthy", service, failed) }, 0)
  end
  local running = d and d.runningCount or 0
  local ok = d and running >= want and d.desiredCount == want and #svc.deployments == 1
  local healthy = {}
  if ok then
    for _, arn in ipairs(tg_arns or {}) do
      local n = healthy_targets(arn)
      healthy[#healthy + 1] = n
      if n < want then ok = false end
    end
  end
  if ok then return svc end
  return nil, string.format("%s: %d/%d running%s", service, running, want,
    #healthy > 0 and (", healthy " .. table.concat(healthy, "/")) or "")
end

--[[ Waits until the service's primary deployment runs `want` tasks of
     `task_definition` and every target group has `want` healthy targets.
     Fails early when the deployment fails (circuit breaker) or keeps losing
     tasks; times out after `timeout` seconds. A throttle or a 5xx that
     outlived the SDK's retries means "not known yet", not a failed rollout:
     it keeps polling, backing off, until the deadline. ]]
function M.wait_ready(cluster, service, task_definition, want, tg_arns, timeout, poll)
  local deadline = sched.now() + (timeout or 900)
  poll = poll or 15
  local last_note = ""
  local blips = 0
  while true do
    local ok, svc, note = pcall(poll_ready, cluster, service, task_definition, want, tg_arns)
    if ok and svc then return svc end
    if not ok then
      local err = svc
      if type(err) ~= "table" or not err.retryable or sched.now() >= deadline then error(err, 0) end
      blips = blips + 1
      log.event("warn", "wait", string.format("%s: status unavailable (%s), retrying", service,
        tostring(err.code)))
    else
      blips = 0
      if note ~= last_note then log.event("debug", "wait", note) last_note = note end
    end
    if sched.now() >= deadline then
      error({ code = "Timeout", message = string.format("service %s not ready after %ds: %s", service,
        math.floor(timeout or 900), last_note) }, 0)
    end
    sched.sleep(math.min(poll * (blips + 1), 60))
  end
end

return M
