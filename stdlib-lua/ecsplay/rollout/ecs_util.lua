--[[
ECS helpers the strategies share: finding services and their target groups,
a task definition's containers (rollout/version.lua makes new revisions), and watching a
service's deployment until its tasks are running and healthy behind the load
balancer (or until it clearly fails).
]]
local duration = require "ecsplay.duration"
local sched = require "ecsplay.sched"
local log = require "ecsplay.log"
local errors = require "ecsplay.errors"
local arn = require "ecsplay.util.arn"
local traffic = require "ecsplay.rollout.traffic"
local batch = require "ecsplay.aws.batch"

-- polling reads go through the shared batcher (aws/batch.lua): many rollouts, few calls
local ecs_reads, elbv2_reads = batch.face "ecs", batch.face "elbv2"

local M = {}

-- "arn:...:task-definition/api:7" -> "api:7", for messages.
function M.short(td)
  if not td then return "?" end
  local kind, rest = arn.resource(td)
  return kind == "task-definition" and rest or td
end

-- "arn:...:targetgroup/api-stable/0123" -> "api-stable".
function M.tg_name(tg_arn)
  local kind, rest = arn.resource(tg_arn)
  return kind == "targetgroup" and rest:match("^[^/]+") or tg_arn
end

local function bad(msg, field) error(errors.bad_input(msg, field), 0) end

-- describe_services for names; bad input naming the field for a missing one.
function M.services(cluster, names, fields)
  local ok, res = pcall(ecs_reads.describe_services, { cluster = cluster, services = names })
  if not ok then
    if errors.is(res, "ClusterNotFoundException") then
      bad("cluster: ECS cluster `" .. cluster .. "` does not exist", "cluster")
    end
    error(res, 0)
  end
  local by_name = {}
  for _, s in ipairs(res.services or {}) do
    if s.status == "ACTIVE" then by_name[s.serviceName] = s end
  end
  local out = {}
  for i, n in ipairs(names) do
    local _, rest = arn.resource(n)
    local svc = by_name[n] or by_name[rest and rest:match("^[^/]+/(.+)$") or ""]
    if not svc then
      local field = fields and fields[i] or "service"
      bad(string.format("%s: service `%s` not found (or not ACTIVE) in cluster `%s`", field, n, cluster),
        field)
    end
    out[i] = svc
  end
  return out
end

-- The service's target groups; bad input when it has none.
function M.require_load_balancer(svc, field)
  if not svc.loadBalancers or #svc.loadBalancers == 0 then
    bad(string.format("%s: service `%s` has no load balancer, so traffic cannot be shifted to it",
      field or "service", svc.serviceName), field)
  end
  return svc.loadBalancers
end

--[[ The ARN of the target group a side's service is registered in: the one
     named by `target_group` (name or ARN; the service must be in it), else
     the service's first. field: "stable", "green", ... for messages. ]]
function M.side_target_group(strategy, svc, target_group, field)
  local lbs = M.require_load_balancer(svc, field .. ".service")
  if not target_group then return lbs[1].targetGroupArn end
  local tg = traffic.target_group_arn(target_group, field .. ".target_group")
  for _, lb in ipairs(lbs) do if lb.targetGroupArn == tg then return tg end end
  bad(string.format("rollout.%s: %s.target_group: service `%s` is not registered in target group `%s`",
    strategy, field, svc.serviceName, target_group), field .. ".target_group")
end

-- The container definitions' names of a task definition, for messages.
function M.container_names(td)
  local names = {}
  for _, c in ipairs(td.containerDefinitions or {}) do names[#names + 1] = c.name end
  return names
end

--[[ The container definition named `container` of the described task
     definition `td` (default: its first), or nil and what is wrong. ]]
function M.find_container(td, container)
  for _, c in ipairs(td.containerDefinitions or {}) do
    if not container or c.name == container then return c end
  end
  return nil, string.format("task definition %s has no container `%s` (it has: %s)",
    td.family .. ":" .. td.revision, tostring(container), table.concat(M.container_names(td), ", "))
end

local function primary(svc)
  for _, d in ipairs(svc.deployments or {}) do
    if d.status == "PRIMARY" then return d end
  end
end
M.primary = primary

-- The rolloutStates of a deployment ECS is still carrying out.
local IN_FLIGHT = { PENDING = true, IN_PROGRESS = true }
M.IN_FLIGHT = IN_FLIGHT

--[[ Whether the described service is at rest: one deployment, which ECS does not report in
     progress (rolloutState: absent for some services), running and pending what it wants. ]]
function M.at_rest(svc)
  local d = primary(svc)
  if not d or #svc.deployments ~= 1 or IN_FLIGHT[d.rolloutState or ""] then return false end
  return (d.runningCount or 0) == d.desiredCount and (d.pendingCount or 0) == 0
end

function M.healthy_targets(tg_arn)
  local n = 0
  local res = elbv2_reads.describe_target_health { TargetGroupArn = tg_arn }
  for _, d in ipairs(res.TargetHealthDescriptions or {}) do
    if d.TargetHealth and d.TargetHealth.State == "healthy" then n = n + 1 end
  end
  return n
end

-- A deployment that did not get where it should (kind waiter: a wait that
-- reached a failure state or timed out); code says which.
function M.failed(code, fmt, ...)
  return errors.new("waiter", { code = code, message = string.format(fmt, ...) })
end

-- One look at the service: returns svc when ready, else nil and a progress note;
-- raises when the deployment clearly failed.
local function poll_ready(cluster, service, task_definition, want, tg_arns)
  local svc = ecs_reads.describe_services({ cluster = cluster, services = { service } }).services[1]
  local d = primary(svc)
  if d and task_definition and d.taskDefinition ~= task_definition then
    error(M.failed("DeploymentReplaced", "service %s now deploys %s, not %s (rolled back or changed by "
      .. "someone else)", service, d.taskDefinition, task_definition), 0)
  end
  if d and d.rolloutState == "FAILED" then
    error(M.failed("DeploymentFailed", "service %s deployment failed: %s", service,
      d.rolloutStateReason or "no reason given"), 0)
  end
  local failed = d and d.failedTasks or 0
  if want > 0 and failed >= math.max(3, want * 2) then
    error(M.failed("TasksFailing", "service %s: %d task(s) of the new version failed to start or stay "
      .. "healthy", service, failed), 0)
  end
  local running = d and d.runningCount or 0
  -- done: ECS has finished the deployment (a scale-in too: no task of it still running)
  local ok = d and running == want and d.desiredCount == want and #svc.deployments == 1
    and not IN_FLIGHT[d.rolloutState or ""]
  local healthy = {}
  if ok then
    for _, tg in ipairs(tg_arns or {}) do
      local n = M.healthy_targets(tg)
      healthy[#healthy + 1] = n
      if n < want then ok = false end
    end
  end
  if ok then return svc end
  local deps = svc.deployments and #svc.deployments or 0
  return nil, string.format("%s: %d/%d running%s%s", service, running, want,
    #healthy > 0 and (", healthy " .. table.concat(healthy, "/")) or "",
    deps > 1 and string.format(", %d deployments", deps)
      or (d and IN_FLIGHT[d.rolloutState or ""] and ", deployment " .. d.rolloutState) or "")
end

--[[ Waits until the service's primary deployment runs `want` tasks of
     `task_definition` (an ARN; no more: a scale-in has finished once its
     tasks have stopped), is the only one, ECS no longer reports it in
     progress, and every target group has `want` healthy targets (want = 0,
     a scale-in: pass no target groups). Fails early when the deployment
     fails (circuit breaker) or keeps losing tasks; times out after
     `timeout` seconds. A throttle or a 5xx that outlived the SDK's retries
     means "not known yet", not a failed rollout: it keeps polling, backing
     off, until the deadline.
     The polls fall on the grid of `poll` (multiples since the epoch,
     sched.next_tick), the first one too (a service just updated is not ready
     at once: ECS has yet to start its tasks), so every rollout of a fleet
     reads at the same instants and the batcher merges them (ten services a
     DescribeServices), however staggered the rollouts started; a backoff of
     b seconds waits for the first multiple of b at least b/2 away (b on
     average, as before, and on the grid its peers share). ]]
function M.wait_ready(cluster, service, task_definition, want, tg_arns, timeout, poll)
  local deadline = sched.now() + (timeout or 900)
  poll = poll or 15
  local last_note = ""
  local blips = 0
  sched.sleep_to_tick(poll)
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
      error(M.failed("Timeout", "service %s %s after %s: %s", service,
        want > 0 and "not ready" or "has not finished scaling in", duration.format(timeout or 900),
        last_note), 0)
    end
    local now = sched.now()
    if blips == 0 then
      sched.sleep(sched.next_tick(poll, now) - now)
    else
      local backoff = math.min(poll * (blips + 1), 60)
      sched.sleep(sched.next_tick(backoff, now + backoff / 2) - now)
    end
  end
end

return M
