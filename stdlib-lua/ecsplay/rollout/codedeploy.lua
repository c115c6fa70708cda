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
]]
local sched = require "ecsplay.sched"
local duration = require "ecsplay.duration"
local gate = require "ecsplay.gate"
local json = require "ecsplay.json"
local options = require "ecsplay.rollout.options"
local ecs_util = require "ecsplay.rollout.ecs_util"
local bake = require "ecsplay.rollout.bake"
local Run = require "ecsplay.rollout.run"

local M = {}

-- Lifecycle events before any production traffic reaches green.
local PRE_SHIFT = { BeforeInstall = true, Install = true, AfterInstall = true, AllowTestTraffic = true,
  AfterAllowTestTraffic = true, BeforeAllowTraffic = true, AllowTraffic = true }

local S = "codedeploy"

local ALLOWED = {
  application = true, group = true, image = true, container = true, port = true,
  task_definition = true, config = true, gates = true, interval = true, failure_limit = true,
  inconclusive_limit = true, error_limit = true, timeout = true, poll = true, description = true,
  ready_timeout = true,
  on_abort = true, notify = true, journal = true, name = true,
}

local function cd() return require "ecsplay.codedeploy" end
local function ecs() return require "ecsplay.ecs" end
local short = ecs_util.short

local function code_of(e) return type(e) == "table" and e.code or nil end

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
  local n = 0
  for _ in pairs(v) do n = n + 1 end
  if not kind or n ~= 1 then
    options.bad(S, "config", "expected exactly one of canary = { percent, interval } or linear = { percent, interval }")
  end
  local spec = v[kind]
  if type(spec) ~= "table" then
    options.bad(S, "config." .. kind, "expected { percent, interval }, like { 10, \"5m\" }")
  end
  local pct, every = spec[1] or spec.percent, spec[2] or spec.interval or spec.every
  if math.type(pct) ~= "integer" and not (type(pct) == "number" and pct == math.floor(pct)) then
    options.bad(S, "config." .. kind .. "[1]", "expected a whole percentage, got " .. tostring(pct))
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

local function check(o)
  options.check_keys(S, o, ALLOWED)
  local c = {}
  c.application = options.string(S, o, "application", "app-deploy")
  c.group = options.string(S, o, "group", "app-dg")
  c.image, c.task_definition, c.container = options.new_version(S, o)
  c.port = options.integer(S, o, "port", nil, 1, 65535)
  c.config = check_config(o.config)
  c.timeout = options.duration(S, o, "timeout", 3600)
  -- CodeDeploy's own Install step waits up to an hour for green; a new version whose tasks
  -- keep failing is stopped long before that
  c.ready_timeout = options.duration(S, o, "ready_timeout", 600)
  c.poll = options.duration(S, o, "poll", 15)
  if c.poll <= 0 then options.bad(S, "poll", "expected a duration above 0") end
  c.description = options.string(S, o, "description")
  bake.check_options(options, S, o, c)
  c.name = options.string(S, o, "name", S .. " " .. c.application .. "/" .. c.group)
  return c
end

local function prepare(c)
  local ok, res = pcall(cd().get_deployment_group, { applicationName = c.application,
    deploymentGroupName = c.group })
  if not ok then
    local code = code_of(res)
    if code == "ApplicationDoesNotExistException" then
      options.bad(S, "application", "CodeDeploy application `" .. c.application .. "` does not exist")
    elseif code == "DeploymentGroupDoesNotExistException" then
      options.bad(S, "group", string.format("deployment group `%s` does not exist in application `%s`",
        c.group, c.application))
    end
    error(res, 0)
  end
  local info = res.deploymentGroupInfo
  local es = info.ecsServices and info.ecsServices[1]
  if not es then
    options.bad(S, "group", "deployment group `" .. c.group .. "` has no ECS service (not an ECS blue/green group)")
  end
  local ctx = { cluster = es.clusterName, service = es.serviceName, group_info = info }
  local svc = ecs_util.services(ctx.cluster, { ctx.service }, { "group (its ECS service)" })[1]
  local lbs = ecs_util.require_load_balancer(svc, "group (its ECS service)")
  ctx.svc = svc
  ctx.old_td = svc.taskDefinition
  local lb = lbs[1]
  local td
  if c.task_definition then
    local tok, tres = pcall(ecs().describe_task_definition, { taskDefinition = c.task_definition })
    if not tok then
      if code_of(tres) == "ClientException" then
        options.bad(S, "task_definition", "task definition `" .. c.task_definition .. "` does not exist")
      end
      error(tres, 0)
    end
    td = tres.taskDefinition
  else
    td = ecs().describe_task_definition({ taskDefinition = svc.taskDefinition }).taskDefinition
  end
  ctx.container = c.container or lb.containerName
  local cdef
  local names = {}
  for _, d in ipairs(td.containerDefinitions or {}) do
    names[#names + 1] = d.name
    if d.name == ctx.container then cdef = d end
  end
  if not cdef then
    options.bad(S, "container", string.format("task definition %s has no container `%s` (it has: %s)",
      td.family .. ":" .. td.revision, tostring(ctx.container), table.concat(names, ", ")))
  end
  ctx.port = c.port or lb.containerPort
  local port_ok = false
  for _, pm in ipairs(cdef.portMappings or {}) do if pm.containerPort == ctx.port then port_ok = true end end
  if not port_ok then
    options.bad(S, "port", string.format("container `%s` maps no port %s", ctx.container, tostring(ctx.port)))
  end
  -- one deployment at a time per group
  local active = cd().list_deployments { applicationName = c.application, deploymentGroupName = c.group,
    includeOnlyStatuses = { "Created", "Queued", "InProgress", "Ready" } }
  if active.deployments and #active.deployments > 0 and not Run.resuming(c.name) then
    options.bad(S, "group", string.format("deployment group `%s` already has an active deployment (%s)",
      c.group, active.deployments[1]))
  end
  ctx.config = c.config
  if ctx.config then
    local gok, gres = pcall(cd().get_deployment_config, { deploymentConfigName = ctx.config.name })
    if gok then
      ctx.config.create = nil -- same name, same numbers: it already exists
      local platform = gres.deploymentConfigInfo.computePlatform
      if platform and platform ~= "ECS" then
        options.bad(S, "config", string.format("deployment configuration `%s` is for %s, not ECS",
          ctx.config.name, platform))
      end
    elseif code_of(gres) == "DeploymentConfigDoesNotExistException" then
      if not ctx.config.create then
        options.bad(S, "config", "deployment configuration `" .. ctx.config.name .. "` does not exist")
      end
    else
      error(gres, 0)
    end
  end
  -- the target groups: green is the one the service is not registered in
  local pair = info.loadBalancerInfo and info.loadBalancerInfo.targetGroupPairInfoList
    and info.loadBalancerInfo.targetGroupPairInfoList[1]
  if not pair then options.bad(S, "group", "deployment group `" .. c.group .. "` has no target group pair") end
  local elbv2 = require "ecsplay.elbv2"
  ctx.tg_arn = {}
  for _, tg in ipairs(pair.targetGroups or {}) do
    ctx.tg_arn[tg.name] = elbv2.describe_target_groups({ Names = { tg.name } }).TargetGroups[1].TargetGroupArn
  end
  for name, arn in pairs(ctx.tg_arn) do
    if arn == lb.targetGroupArn then ctx.blue_tg = name else ctx.green_tg = name end
  end
  ctx.prod_listener = pair.prodTrafficRoute and pair.prodTrafficRoute.listenerArns
    and pair.prodTrafficRoute.listenerArns[1]
  ctx.gates = bake.resolve_gates(options, S, c.gates, { service = ctx.service, target_group = ctx.green_tg })
  gate.prepare_all(ctx.gates, ctx)
  return ctx
end

-- The AppSpec for an ECS deployment, as JSON.
function M.appspec(task_definition, container, port)
  return json.encode {
    version = 0.0,
    Resources = { { TargetService = { Type = "AWS::ECS::Service", Properties = {
      TaskDefinition = task_definition,
      LoadBalancerInfo = { ContainerName = container, ContainerPort = port },
    } } } },
  }
end

-- { green_weight=, stage= } from the deployment target (nil before it started).
local function progress(id, target_id)
  local ok, res = pcall(cd().get_deployment_target, { deploymentId = id, targetId = target_id })
  if not ok then
    if code_of(res) == "DeploymentNotStartedException" then return nil end
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

function M.run(o)
  local c = check(o)
  local ctx = prepare(c)
  local run = Run.new(S, c, { name = c.name })
  local report = run.report
  report.service = ctx.service
  report.previous_task_definition = ctx.old_td
  return run:guard(function()
    local new_td = c.task_definition or ecs_util.register_step(run, ctx.old_td, c.image, ctx.container)
    report.task_definition = new_td
    if ctx.config and ctx.config.create then
      run:step("config", "create deployment configuration " .. ctx.config.name, function()
        local ok, err = pcall(cd().create_deployment_config, ctx.config.create)
        if not ok and code_of(err) ~= "DeploymentConfigAlreadyExistsException" then error(err, 0) end
        run:log("info", "config", "created deployment configuration " .. ctx.config.name)
      end)
    end
    local content = M.appspec(new_td, ctx.container, ctx.port)
    local id = run:step("deployment", "create the CodeDeploy deployment", function()
      local res = cd().create_deployment {
        applicationName = c.application, deploymentGroupName = c.group,
        deploymentConfigName = ctx.config and ctx.config.name or nil,
        description = c.description or ("ecsplay: " .. short(new_td)),
        revision = { revisionType = "AppSpecContent", appSpecContent = { content = content,
          sha256 = require("ecsplay.core.crypto").sha256_hex(content) } },
      }
      return res.deploymentId
    end)
    -- recorded right after creation: the id is only known now
    run:step("track", "watch deployment " .. id, function() end,
      { op = "stop_codedeploy", deploymentId = id })
    report.deployment_id = id
    run:log("info", "deploy", string.format("CodeDeploy deployment %s: %s → %s (%s)", id, short(ctx.old_td),
      short(new_td), ctx.config and ctx.config.name or (ctx.group_info.deploymentConfigName or "group default")))
    local watcher = bake.watcher(run, c, ctx.gates, { service = ctx.service,
      canary_target_group = ctx.tg_arn[ctx.green_tg], stable_target_group = ctx.tg_arn[ctx.blue_tg] })
    local started = sched.now()
    local deadline = started + c.timeout
    local last_note, shifting
    while true do
      local info = cd().get_deployment({ deploymentId = id }).deploymentInfo
      if info.status == "Succeeded" then break end
      if info.status == "Failed" or info.status == "Stopped" then
        local e = info.errorInformation or {}
        error({ code = "DeploymentFailed", message = string.format("CodeDeploy deployment %s %s: %s%s", id,
          info.status:lower(), e.code and (e.code .. ": ") or "", e.message or "no error information") }, 0)
      end
      local p = progress(id, ctx.cluster .. ":" .. ctx.service)
      local note = string.format("deployment %s: %s%s, green %s%%", id, info.status,
        p and p.stage and (" (" .. p.stage .. ")") or "", p and string.format("%.0f", p.green_weight) or "0")
      if note ~= last_note then run:log("info", "progress", note) last_note = note end
      if p and p.green_weight > 0 then
        if not shifting then
          shifting = true
          watcher.next_at = sched.now() + c.interval
        end
        watcher:tick({ phase = "shifting", weight = p.green_weight })
      end
      -- before production traffic moves, green must be up within ready_timeout
      -- (CodeDeploy itself would wait an hour for a task set that never gets healthy)
      if not shifting and p and PRE_SHIFT[p.stage] and sched.now() >= started + c.ready_timeout then
        error({ code = "Timeout", message = string.format("deployment %s: the green task set was not "
          .. "healthy after %ds (still in %s)", id, math.floor(c.ready_timeout), p.stage) }, 0)
      end
      if sched.now() >= deadline then
        error({ code = "Timeout", message = string.format("deployment %s not finished after %ds: %s", id,
          math.floor(c.timeout), note) }, 0)
      end
      sched.sleep(math.min(c.poll, shifting and math.max(1, watcher.next_at - sched.now()) or c.poll))
    end
    report.measurements = watcher.rounds
    local serving = ""
    if ctx.prod_listener then
      local w = require("ecsplay.rollout.traffic").get({ kind = "listener", arn = ctx.prod_listener })
      local parts = {}
      for name, arn in pairs(ctx.tg_arn) do
        if w[arn] then parts[#parts + 1] = name .. "=" .. w[arn] end
      end
      table.sort(parts)
      serving = "; production listener: " .. table.concat(parts, " ")
    end
    run:log("info", "summary", string.format("%s succeeded: %s runs %s%s", c.name, ctx.service,
      short(new_td), serving))
  end)
end

return M
