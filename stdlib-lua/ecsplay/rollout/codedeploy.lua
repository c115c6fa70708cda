--[[
rollout.codedeploy: CodeDeploy drives the traffic shift of an ECS blue/green
deployment group; ecsplay registers the new task definition, writes the
AppSpec, creates the deployment and watches it, measuring its gates once
traffic reaches the green task set. A failing gate stops the deployment with
rollback (StopDeployment autoRollbackEnabled=true); a deployment that
CodeDeploy itself fails or stops is reported with its errorInformation.

config: a deployment configuration name ("CodeDeployDefault.ECSCanary10Percent5Minutes"),
or { canary = { 10, "5m" } } / { linear = { 10, "1m" } } / "all_at_once": a
custom TimeBasedCanary/TimeBasedLinear configuration named from its numbers
(ecsplay.ECSCanary10Percent5Minutes), created when missing.
The options every strategy takes, and the run around the body, are in
rollout/strategy.lua.
]]
local strings = require "ecsplay.util.strings"
local sched = require "ecsplay.sched"
local duration = require "ecsplay.duration"
local errors = require "ecsplay.errors"
local elbv2 = require "ecsplay.elbv2"
local cd = require "ecsplay.codedeploy"
local tables = require "ecsplay.util.tables"
local strategy = require "ecsplay.rollout.strategy"
local options = require "ecsplay.rollout.options"
local traffic = require "ecsplay.rollout.traffic"
local ecs_util = require "ecsplay.rollout.ecs_util"
local bake = require "ecsplay.rollout.bake"
local codedeploy_undo = require "ecsplay.rollout.codedeploy_undo"

local M = {}

-- Lifecycle events before any production traffic reaches green.
local PRE_SHIFT = { BeforeInstall = true, Install = true, AfterInstall = true, AllowTestTraffic = true,
  AfterAllowTestTraffic = true, BeforeAllowTraffic = true, AllowTraffic = true }

local S = "codedeploy"

local short = ecs_util.short

--[[ config option -> { name=, create=params|nil } ]]
local function check_config(v)
  if v == nil then return nil end
  if type(v) == "string" then
    if v == "" then options.bad(S, "config", "expected a deployment configuration name") end
    if v == "all_at_once" then return { name = "CodeDeployDefault.ECSAllAtOnce" } end
    return { name = v }
  end
  if type(v) ~= "table" then
    options.bad(S, "config", "expected a name or { canary = { 10, \"5m\" } } / { linear = { 10, \"1m\" } }")
  end
  local kind = v.canary and "canary" or v.linear and "linear"
  if not kind or #tables.keys(v) ~= 1 then
    options.bad(S, "config", "expected exactly one of canary = { percent, interval } or linear = { percent, interval }")
  end
  local spec = v[kind]
  if type(spec) ~= "table" then
    options.bad(S, "config." .. kind, "expected { percent, interval }, like { 10, \"5m\" }")
  end
  local pct, every = spec[1] or spec.percent, spec[2] or spec.interval or spec.every
  if math.type(pct) ~= "integer" and not (type(pct) == "number" and pct == math.floor(pct)) then
    options.bad(S, "config." .. kind .. "[1]", "expected a whole percentage, got " .. strings.describe_value(pct))
  end
  pct = math.tointeger(pct)
  if pct < 1 or pct > 99 then
    options.bad(S, "config." .. kind .. "[1]", "expected a percentage from 1 to 99, got " .. pct)
  end
  local secs, err = duration.parse(every)
  if not secs then options.bad(S, "config." .. kind .. "[2]", err) end
  if secs < 60 or secs % 60 ~= 0 then
    options.bad(S, "config." .. kind .. "[2]", "CodeDeploy intervals are whole minutes (at least \"1m\"), got "
      .. tostring(every))
  end
  local mins = math.tointeger(secs // 60)
  local trc, name
  if kind == "canary" then
    name = string.format("ecsplay.ECSCanary%dPercent%dMinutes", pct, mins)
    trc = { type = "TimeBasedCanary", timeBasedCanary = { canaryPercentage = pct, canaryInterval = mins } }
  else
    name = string.format("ecsplay.ECSLinear%dPercentEvery%dMinutes", pct, mins)
    trc = { type = "TimeBasedLinear", timeBasedLinear = { linearPercentage = pct, linearInterval = mins } }
  end
  return { name = name, create = { deploymentConfigName = name, computePlatform = "ECS",
    trafficRoutingConfig = trc } }
end

local function check(c, o)
  c.application = options.string(S, o, "application", "app-deploy")
  c.group = options.string(S, o, "group", "app-dg")
  c.port = options.integer(S, o, "port", nil, 1, 65535)
  c.config = check_config(o.config)
  c.description = options.string(S, o, "description")
end

-- The deployment group and its ECS service; bad input for a missing one.
local function deployment_group(c)
  local ok, res = pcall(cd.get_deployment_group, { applicationName = c.application,
    deploymentGroupName = c.group })
  if ok then return res.deploymentGroupInfo end
  if errors.is(res, "ApplicationDoesNotExistException") then
    options.bad(S, "application", "CodeDeploy application `" .. c.application .. "` does not exist")
  elseif errors.is(res, "DeploymentGroupDoesNotExistException") then
    options.bad(S, "group", string.format("deployment group `%s` does not exist in application `%s`",
      c.group, c.application))
  end
  error(res, 0)
end

-- The deployment configuration: it must exist, or be one ecsplay creates from its numbers.
local function check_deployment_config(config)
  if not config then return end
  local ok, res = pcall(cd.get_deployment_config, { deploymentConfigName = config.name })
  if ok then
    config.create = nil -- same name, same numbers: it already exists
    local platform = res.deploymentConfigInfo.computePlatform
    if platform and platform ~= "ECS" then
      options.bad(S, "config", string.format("deployment configuration `%s` is for %s, not ECS",
        config.name, platform))
    end
  elseif errors.is(res, "DeploymentConfigDoesNotExistException") then
    if not config.create then
      options.bad(S, "config", "deployment configuration `" .. config.name .. "` does not exist")
    end
  else
    error(res, 0)
  end
end

-- The target groups by name; green is the one the service is not registered in.
local function target_groups(c, ctx, info, lb)
  local pair = info.loadBalancerInfo and info.loadBalancerInfo.targetGroupPairInfoList
    and info.loadBalancerInfo.targetGroupPairInfoList[1]
  if not pair then options.bad(S, "group", "deployment group `" .. c.group .. "` has no target group pair") end
  ctx.tg_arn = {}
  for _, tg in ipairs(pair.targetGroups or {}) do
    ctx.tg_arn[tg.name] = elbv2.describe_target_groups({ Names = { tg.name } }).TargetGroups[1].TargetGroupArn
  end
  for name, arn in pairs(ctx.tg_arn) do
    if arn == lb.targetGroupArn then ctx.blue_tg = name else ctx.green_tg = name end
  end
  ctx.prod_listener = pair.prodTrafficRoute and pair.prodTrafficRoute.listenerArns
    and pair.prodTrafficRoute.listenerArns[1]
end

local function prepare(c, r)
  local info = deployment_group(c)
  local es = info.ecsServices and info.ecsServices[1]
  if not es then
    options.bad(S, "group", "deployment group `" .. c.group .. "` has no ECS service (not an ECS blue/green group)")
  end
  local ctx = { cluster = es.clusterName, service = es.serviceName, group_info = info }
  local svc = ecs_util.services(ctx.cluster, { ctx.service }, { "group (its ECS service)" })[1]
  local lb = ecs_util.require_load_balancer(svc, "group (its ECS service)")[1]
  ctx.svc = svc
  ctx.old_td = svc.taskDefinition
  ctx.base_td = svc.taskDefinition
  ctx.container = lb.containerName
  ctx.port = c.port or lb.containerPort
  -- one deployment at a time per group
  local active = cd.list_deployments { applicationName = c.application, deploymentGroupName = c.group,
    includeOnlyStatuses = { "Created", "Queued", "InProgress", "Ready" } }
  if active.deployments and #active.deployments > 0 and not r.resuming then
    options.bad(S, "group", string.format("deployment group `%s` already has an active deployment (%s)",
      c.group, active.deployments[1]))
  end
  ctx.config = c.config
  check_deployment_config(ctx.config)
  target_groups(c, ctx, info, lb)
  ctx.green = { service = ctx.service, target_group = ctx.green_tg }
  ctx.report = { service = ctx.service, previous_task_definition = ctx.old_td }
  return ctx
end

-- The container the load balancer routes to must map the port (known once the version is).
local function verify(c, ctx)
  for _, pm in ipairs(ctx.version.container_definition.portMappings or {}) do
    if pm.containerPort == ctx.port then return end
  end
  options.bad(S, "port", string.format("container `%s` maps no port %s", ctx.version.container,
    tostring(ctx.port)))
end

-- The AppSpec for an ECS deployment, as JSON.
M.appspec = codedeploy_undo.appspec

-- { green_weight=, stage= } from the deployment target (nil before it started).
local function progress(id, target_id)
  local ok, res = pcall(cd.get_deployment_target, { deploymentId = id, targetId = target_id })
  if not ok then
    if errors.is(res, "DeploymentNotStartedException") then return nil end
    error(res, 0)
  end
  local t = res.deploymentTarget and res.deploymentTarget.ecsTarget or {}
  local out = { green_weight = 0 }
  for _, ts in ipairs(t.taskSetsInfo or {}) do
    if ts.taskSetLabel == "Green" then out.green_weight = ts.trafficWeight or 0 end
  end
  for _, e in ipairs(t.lifecycleEvents or {}) do
    if e.status == "InProgress" then out.stage = e.lifecycleEventName end
  end
  return out
end

--[[ Creates the deployment (and its configuration when ecsplay makes it);
     returns its id. Intent before effect: the undo (stop it with rollback,
     or revert it once it has succeeded, rollout/codedeploy_undo.lua) is
     journaled before CreateDeployment, naming the deployment by the run's
     marker in its description, so a kill before the answer leaves nothing
     untracked; a run resumed from there adopts the deployment it finds by
     the marker instead of creating another. ]]
local function create_deployment(run, c, ctx, new_td)
  if ctx.config and ctx.config.create then
    run:step("config", "create deployment configuration " .. ctx.config.name, function()
      local ok, err = pcall(cd.create_deployment_config, ctx.config.create)
      if not ok and not errors.is(err, "DeploymentConfigAlreadyExistsException") then error(err, 0) end
      run:log("info", "config", "created deployment configuration " .. ctx.config.name)
    end)
  end
  local marker = codedeploy_undo.marker(run.id)
  local undo = { op = "stop_codedeploy", application = c.application, group = c.group, marker = marker,
    revert = { taskDefinition = ctx.old_td, container = ctx.version.container, port = ctx.port } }
  -- resumed: the version to revert to is the one the first run saw (the service may have moved since)
  for _, u in ipairs(run.resume and run.resume.all_undo or {}) do
    if u.action.op == "stop_codedeploy" and type(u.action.revert) == "table" then undo.revert = u.action.revert end
  end
  local id = run:step("deployment", "create the CodeDeploy deployment (" .. marker .. ")", function()
    if run:started("deployment") then
      local found = codedeploy_undo.find(c.application, c.group, marker)
      if found then
        run:log("info", "deploy", "adopting deployment " .. found .. ", created before the run was stopped")
        return found
      end
    end
    return cd.create_deployment({
      applicationName = c.application, deploymentGroupName = c.group,
      deploymentConfigName = ctx.config and ctx.config.name or nil,
      description = codedeploy_undo.description(c.description or ("ecsplay: " .. short(new_td)), marker),
      revision = codedeploy_undo.revision(new_td, ctx.version.container, ctx.port),
    }).deploymentId
  end, undo)
  -- this run's own rollback needs no search: the id is known now
  undo.deploymentId = id
  run:log("info", "deploy", string.format("CodeDeploy deployment %s: %s → %s (%s)", id, short(ctx.old_td),
    short(new_td), ctx.config and ctx.config.name or (ctx.group_info.deploymentConfigName or "group default")))
  return id
end

--[[ What `ecsplay promote` can do while CodeDeploy moves the traffic: end one of
     CodeDeploy's own waits (ContinueDeployment), the only control it has besides
     StopDeployment (`abort`, the run's undo). `cur` holds the last deploymentInfo
     read. A canary or linear interval has no such control: not applicable. ]]
local function steering(ctx, id, cur)
  local config = ctx.config and ctx.config.name or ctx.group_info.deploymentConfigName or "the group's default"
  local how = { what = "CodeDeploy shifts the traffic (deployment " .. id .. ", " .. config .. ")",
    cannot_hold = "CodeDeploy has no way to hold a deployment (only to stop it: `ecsplay abort` rolls back)" }
  function how.promote(cmd)
    local info = cur.info or {}
    local wait_type, effect
    if info.status == "Ready" then
      wait_type, effect = "READY_WAIT", "rerouting production traffic to green now (ContinueDeployment READY_WAIT)"
    elseif info.instanceTerminationWaitTimeStarted then
      wait_type, effect = "TERMINATION_WAIT", "ending the wait before the original task set is terminated "
        .. "(ContinueDeployment TERMINATION_WAIT): the deployment finishes now"
    else
      return nil, string.format("CodeDeploy moves the traffic on %s's schedule (deployment %s, %s) and cannot end "
        .. "an interval early; promote ends CodeDeploy's ready wait or its wait before terminating the original "
        .. "task set (ContinueDeployment)", config, id, tostring(info.status or "starting"))
    end
    local ok, err = pcall(cd.continue_deployment, { deploymentId = id, deploymentWaitType = wait_type })
    if not ok then
      if sched.is_interrupt(err) then error(err, 0) end
      return nil, "CodeDeploy refused ContinueDeployment " .. wait_type .. ": " .. errors.describe(err)
    end
    return effect .. (cmd.full and "; CodeDeploy still shifts on its configuration's schedule (--full cannot "
      .. "skip it)" or "")
  end
  return how
end

--[[ Follows deployment `id` to Succeeded; once traffic reaches green the
     gates are measured every interval. Raises when CodeDeploy fails or
     stops it, when green is not healthy within ready_timeout, or at timeout.
     Commands are taken between polls (bake.lua wait_moving, `steering`). ]]
local function watch(run, c, ctx, id, watcher)
  local started = sched.now()
  local deadline = started + c.timeout
  local last_note, shifting
  local cur = {}
  watcher:moving(steering(ctx, id, cur))
  while true do
    local info = cd.get_deployment({ deploymentId = id }).deploymentInfo
    cur.info = info
    if info.status == "Succeeded" then return end
    if info.status == "Failed" or info.status == "Stopped" then
      local e = info.errorInformation or {}
      error(ecs_util.failed("DeploymentFailed", "CodeDeploy deployment %s %s: %s%s", id,
        info.status:lower(), e.code and (e.code .. ": ") or "", e.message or "no error information"), 0)
    end
    local p = progress(id, ctx.cluster .. ":" .. ctx.service)
    local note = string.format("deployment %s: %s%s, green %s%%", id, info.status,
      p and p.stage and (" (" .. p.stage .. ")") or "", p and string.format("%.0f", p.green_weight) or "0")
    if note ~= last_note then run:log("info", "progress", note) last_note = note end
    if p and p.green_weight > 0 then
      if not shifting then
        shifting = true
        watcher.next_at = watcher:next_round()
      end
      watcher:tick({ phase = "shifting", weight = p.green_weight })
    end
    -- before production traffic moves, green must be up within ready_timeout
    -- (CodeDeploy itself would wait an hour for a task set that never gets healthy)
    if not shifting and p and PRE_SHIFT[p.stage] and sched.now() >= started + c.ready_timeout then
      error(ecs_util.failed("Timeout", "deployment %s: the green task set was not healthy after %s "
        .. "(still in %s)", id, duration.format(c.ready_timeout), p.stage), 0)
    end
    if sched.now() >= deadline then
      error(ecs_util.failed("Timeout", "deployment %s not finished after %s: %s", id,
        duration.format(c.timeout), note), 0)
    end
    -- polls on the grid of c.poll (every rollout of a fleet at the same instant: the batcher
    -- merges the reads), and at the gates' next round while traffic shifts
    local t = sched.next_tick(c.poll)
    if shifting and #watcher.gates > 0 then t = math.min(t, math.max(sched.now() + 1, watcher.next_at)) end
    watcher:wait_moving(t)
  end
end

local function body(run, c, ctx, new_td)
  local id = create_deployment(run, c, ctx, new_td)
  run.report.deployment_id = id
  local watcher = bake.watcher(run, c, ctx.gates, { service = ctx.service,
    canary_target_group = ctx.tg_arn[ctx.green_tg], stable_target_group = ctx.tg_arn[ctx.blue_tg] })
  watch(run, c, ctx, id, watcher)
  run.report.measurements = watcher.rounds
  local serving = ""
  if ctx.prod_listener then
    local w = traffic.get({ kind = "listener", arn = ctx.prod_listener })
    local parts = {}
    for name, arn in pairs(ctx.tg_arn) do
      if w[arn] then parts[#parts + 1] = name .. "=" .. w[arn] end
    end
    table.sort(parts)
    serving = "; production listener: " .. table.concat(parts, " ")
  end
  run:log("info", "summary", string.format("%s succeeded: %s runs %s%s", c.name, ctx.service,
    short(new_td), serving))
end

M.run = strategy.define {
  name = S,
  -- CodeDeploy's own Install step waits up to an hour for green; a new version whose tasks
  -- keep failing is stopped long before that (ready_timeout)
  takes = { timeout = 3600, ready_timeout = 600, poll = 15 },
  own = { "application", "group", "port", "config", "description" },
  check = check,
  default_name = function(c) return S .. " " .. c.application .. "/" .. c.group end,
  prepare = prepare,
  verify = verify,
  body = body,
}.run

return M
