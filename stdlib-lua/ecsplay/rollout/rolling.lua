--[[
rollout.rolling: ECS's own rolling update, watched to completion.

The service is updated to the new task definition (with the deployment
circuit breaker switched on, rollback included, unless circuit_breaker =
false) and followed until its primary deployment is COMPLETED. Gates, when
given, are measured while it runs (and for `bake` after it completes).
When ECS itself rolls back (the circuit breaker or a deployment alarm fails
the new deployment and a new primary deployment of the old task definition
appears), that is reported as such and the run fails with exit code 1.
The undo is an update back to the previous task definition, in case ECS did
not roll back (no circuit breaker, a failing gate, a timeout, Ctrl-C).
]]
local sched = require "ecsplay.sched"
local gate = require "ecsplay.gate"
local options = require "ecsplay.rollout.options"
local ecs_util = require "ecsplay.rollout.ecs_util"
local bake = require "ecsplay.rollout.bake"
local Run = require "ecsplay.rollout.run"

local M = {}

local S = "rolling"

local ALLOWED = {
  cluster = true, service = true, image = true, container = true, task_definition = true,
  circuit_breaker = true, timeout = true, gates = true, interval = true, bake = true,
  failure_limit = true, inconclusive_limit = true, error_limit = true, poll = true,
  on_abort = true, notify = true, journal = true, name = true,
}

local function ecs() return require "ecsplay.ecs" end

local short = ecs_util.short

local function check(o)
  options.check_keys(S, o, ALLOWED)
  local c = {}
  c.cluster = options.string(S, o, "cluster", "production")
  c.service = options.string(S, o, "service", "api")
  c.image = options.string(S, o, "image")
  c.task_definition = options.string(S, o, "task_definition")
  if not c.image and not c.task_definition then
    options.bad(S, "image", "required: the new container image (or task_definition = an ARN)")
  end
  if c.image and c.task_definition then
    options.bad(S, "image", "give image= or task_definition=, not both")
  end
  c.container = options.string(S, o, "container")
  if o.circuit_breaker ~= nil and type(o.circuit_breaker) ~= "boolean" then
    options.bad(S, "circuit_breaker", "expected true or false")
  end
  c.circuit_breaker = o.circuit_breaker ~= false
  c.timeout = options.duration(S, o, "timeout", 1800)
  c.bake = options.duration(S, o, "bake", 0)
  c.poll = options.duration(S, o, "poll", 15)
  if c.poll <= 0 then options.bad(S, "poll", "expected a duration above 0") end
  bake.check_options(options, S, o, c)
  c.name = options.string(S, o, "name", S .. " " .. c.service)
  return c
end

local function container_names(td)
  local names = {}
  for _, cd in ipairs(td.containerDefinitions or {}) do names[#names + 1] = cd.name end
  return names
end

local function prepare(c)
  local svc = ecs_util.services(c.cluster, { c.service }, { "service" })[1]
  local ctl = svc.deploymentController and svc.deploymentController.type or "ECS"
  if ctl ~= "ECS" then
    options.bad(S, "service", string.format("service `%s` uses the %s deployment controller; "
      .. "a rolling update needs the ECS controller%s", c.service, ctl,
      ctl == "CODE_DEPLOY" and " (use rollout.codedeploy)" or ""))
  end
  local dc = svc.deploymentConfiguration or {}
  if dc.strategy and dc.strategy ~= "ROLLING" then
    options.bad(S, "service", string.format("service `%s` deploys with the %s strategy; use "
      .. "rollout.ecs_native for it", c.service, dc.strategy))
  end
  if #(svc.deployments or {}) > 1 and not Run.resuming(c.name) then
    options.bad(S, "service", string.format("service `%s` already has a deployment in progress "
      .. "(%d deployments); wait for it to finish", c.service, #svc.deployments))
  end
  if c.image then
    local td = ecs().describe_task_definition({ taskDefinition = svc.taskDefinition }).taskDefinition
    if c.container then
      local found = false
      for _, cd in ipairs(td.containerDefinitions or {}) do if cd.name == c.container then found = true end end
      if not found then
        options.bad(S, "container", string.format("task definition %s has no container `%s` (it has: %s)",
          short(svc.taskDefinition), c.container, table.concat(container_names(td), ", ")))
      end
    end
  else
    local ok, res = pcall(ecs().describe_task_definition, { taskDefinition = c.task_definition })
    if not ok then
      if type(res) == "table" and res.code == "ClientException" then
        options.bad(S, "task_definition", "task definition `" .. c.task_definition .. "` does not exist")
      end
      error(res, 0)
    end
    c.task_definition = res.taskDefinition.taskDefinitionArn
  end
  local ctx = { svc = svc, old_td = svc.taskDefinition }
  ctx.gates = bake.resolve_gates(options, S, c.gates, { service = c.service })
  local tgs = {}
  for _, lb in ipairs(svc.loadBalancers or {}) do tgs[#tgs + 1] = lb.targetGroupArn end
  ctx.tgs = tgs
  gate.prepare_all(ctx.gates, ctx)
  -- the deployment configuration with the circuit breaker on (AWS replaces the whole structure)
  local cb = dc.deploymentCircuitBreaker or {}
  if c.circuit_breaker and not (cb.enable and cb.rollback) then
    local new = {}
    for k, v in pairs(dc) do new[k] = v end
    new.deploymentCircuitBreaker = { enable = true, rollback = true }
    ctx.new_dc = new
  end
  ctx.stable_tg = tgs[1]
  ctx.names = {}
  for _, arn in ipairs(tgs) do ctx.names[arn] = arn:match("targetgroup/([^/]+)/") or arn end
  return ctx
end

local function primary(svc)
  for _, d in ipairs(svc.deployments or {}) do
    if d.status == "PRIMARY" then return d end
  end
end

local function ours(svc, td)
  for _, d in ipairs(svc.deployments or {}) do
    if d.taskDefinition == td and d.status ~= "PRIMARY" then return d end
  end
end

-- Waits for ECS's own rollback deployment to finish (bounded), then fails.
local function ecs_rolled_back(run, c, failed, deadline)
  local reason = failed and failed.rolloutStateReason or "no reason given"
  run:log("error", "ecs_rollback", string.format("ECS rolled back %s: deployment of %s %s: %s",
    c.service, short(failed and failed.taskDefinition), failed and failed.rolloutState or "FAILED", reason))
  while sched.now() < deadline do
    local svc = ecs().describe_services({ cluster = c.cluster, services = { c.service } }).services[1]
    local p = primary(svc)
    if p and p.rolloutState == "COMPLETED" and #svc.deployments == 1 then
      run:log("info", "ecs_rollback", string.format("ECS rollback complete: %s runs %s on %d task(s)",
        c.service, short(p.taskDefinition), p.runningCount or 0))
      break
    end
    sched.sleep(c.poll)
  end
  error({ code = "EcsRolledBack", message = string.format(
    "ECS rolled back the deployment of %s: %s", short(failed and failed.taskDefinition), reason) }, 0)
end

-- Follows the deployment to COMPLETED; gates measured every interval meanwhile.
local function watch(run, c, ctx, new_td, watcher)
  local deadline = sched.now() + c.timeout
  local last
  while true do
    local svc = ecs().describe_services({ cluster = c.cluster, services = { c.service } }).services[1]
    local p = primary(svc)
    if p and p.taskDefinition ~= new_td then
      local failed = ours(svc, new_td)
      if failed or (p.rolloutStateReason or ""):find("rolling back", 1, true) then
        ecs_rolled_back(run, c, failed or { taskDefinition = new_td }, deadline + c.timeout)
      end
      error({ code = "DeploymentReplaced", message = string.format(
        "service %s now deploys %s, not %s (changed by someone else)", c.service, short(p.taskDefinition),
        short(new_td)) }, 0)
    end
    if p and p.rolloutState == "FAILED" then
      error({ code = "DeploymentFailed", message = string.format(
        "deployment of %s failed (no ECS rollback): %s", short(new_td), p.rolloutStateReason or "no reason given") }, 0)
    end
    if p and p.rolloutState == "COMPLETED" and #svc.deployments == 1 then return svc, p end
    local note = string.format("%s: %d/%d running of %s, %d old deployment(s)", c.service,
      p and p.runningCount or 0, p and p.desiredCount or 0, short(new_td), #svc.deployments - 1)
    if note ~= last then run:log("info", "progress", note) last = note end
    if sched.now() >= deadline then
      error({ code = "Timeout", message = string.format("deployment of %s not complete after %ds: %s",
        short(new_td), math.floor(c.timeout), note) }, 0)
    end
    watcher:tick({ phase = "deploying" })
    sched.sleep(math.min(c.poll, math.max(1, watcher.next_at - sched.now())))
  end
end

function M.run(o)
  local c = check(o)
  local ctx = prepare(c)
  local run = Run.new(S, c, { name = c.name })
  local report = run.report
  report.service = c.service
  report.previous_task_definition = ctx.old_td
  return run:guard(function()
    local new_td = c.task_definition or ecs_util.register_step(run, ctx.old_td, c.image, c.container)
    report.task_definition = new_td
    run:step("deploy", "update the service to the new task definition", function()
      ecs().update_service { cluster = c.cluster, service = c.service, taskDefinition = new_td,
        deploymentConfiguration = ctx.new_dc }
      run:log("info", "deploy", string.format("%s: rolling update %s → %s%s", c.service, short(ctx.old_td),
        short(new_td), ctx.new_dc and " (circuit breaker switched on, with rollback)" or ""))
    end, { op = "update_service", cluster = c.cluster, service = c.service, taskDefinition = ctx.old_td })
    local watcher = bake.watcher(run, c, ctx.gates, { stable_target_group = ctx.stable_tg,
      canary_target_group = ctx.stable_tg, service = c.service })
    local svc, p = watch(run, c, ctx, new_td, watcher)
    report.deployment = { id = p.id, rolloutState = p.rolloutState, runningCount = p.runningCount }
    if c.bake > 0 or (#ctx.gates > 0 and not watcher:all_passed()) then
      run:log("info", "bake", string.format("baking %ds with %d gate(s)", math.floor(c.bake), #ctx.gates))
      watcher:bake(c.bake, { phase = "bake" })
    end
    report.measurements = watcher.rounds
    local healthy = {}
    for _, arn in ipairs(ctx.tgs) do
      healthy[#healthy + 1] = ctx.names[arn] .. " " .. ecs_util.healthy_targets(arn) .. " healthy"
    end
    run:log("info", "summary", string.format("%s deployed: %s runs %s on %d task(s)%s", c.name, c.service,
      short(new_td), svc.runningCount or 0, #healthy > 0 and ("; " .. table.concat(healthy, ", ")) or ""))
  end)
end

return M
