--[[
Plan mode (`ecsplay plan`, docs/cli.md): a strategy's check and prepare ran
against the account with every mutating call refused (aws/call.lua's refuse
hook); instead of its body, rollout/strategy.lua hands the prepared context
here. describe() says what the run would do and what stands in its way, and
returns a report in place of the run's, so the playbook goes on.

  plan.describe(spec, c, ctx, label, sink) → report { status = "planned", ... }
      sink(entry): entry = { strategy=, name=, version={...}, services={...},
        traffic={ point=, steps={...} }, gates={...}, duration=, problems={...} }

The per-strategy part is the table STEPS: what each strategy changes (its
services and counts, its traffic steps, the target groups that serve now).
]]
local ecs = require "ecsplay.ecs"
local gate = require "ecsplay.gate"
local sched = require "ecsplay.sched"
local tables = require "ecsplay.util.tables"
local ecs_util = require "ecsplay.rollout.ecs_util"
local traffic = require "ecsplay.rollout.traffic"

local M = {}

local short = ecs_util.short

-- "a.b[name].c" = value for every leaf of a task definition's register input.
local function flatten(v, prefix, out)
  if type(v) ~= "table" then out[prefix] = v return out end
  for k, x in pairs(v) do
    local key
    if type(k) == "number" then
      key = prefix .. "[" .. (type(x) == "table" and x.name or k) .. "]"
    else
      key = prefix == "" and k or (prefix .. "." .. k)
    end
    flatten(x, key, out)
  end
  return out
end

-- The changes from task definition `a` to `b` (register inputs), sorted by field.
function M.diff(a, b)
  local fa, fb = flatten(ecs.reuse(a), "", {}), flatten(ecs.reuse(b), "", {})
  local keys, seen = {}, {}
  for k in pairs(fa) do if not seen[k] then seen[k] = true keys[#keys + 1] = k end end
  for k in pairs(fb) do if not seen[k] then seen[k] = true keys[#keys + 1] = k end end
  table.sort(keys)
  local out = {}
  for _, k in ipairs(keys) do
    if fa[k] ~= fb[k] then out[#out + 1] = { field = k, from = fa[k], to = fb[k] } end
  end
  return out
end

local function version_plan(ctx)
  local v = ctx.version
  local base = v.definition
  if v.arn then
    local current = ecs.describe_task_definition({ taskDefinition = ctx.base_td }).taskDefinition
    return { action = "deploy", from = ctx.base_td, to = v.arn, diff = M.diff(current, v.definition) }
  end
  local new = tables.copy(base)
  local target = ecs_util.find_container(new, v.container)
  if target then target.image = v.image end
  local family = base.family
  local latest = ecs.list_task_definitions { familyPrefix = family, sort = "DESC", maxResults = 1 }
  local rev = tonumber(((latest.taskDefinitionArns or {})[1] or ""):match(":(%d+)$")) or base.revision or 0
  return { action = "register", from = ctx.base_td,
    to = (base.taskDefinitionArn or ""):gsub(":%d+$", ":" .. (rev + 1)), diff = M.diff(base, new) }
end

local function svc_change(svc, td, count, note)
  return { service = svc.serviceName, task_definition = { from = short(svc.taskDefinition), to = td and short(td) },
    desired = { from = svc.desiredCount, to = count }, note = note }
end

local function weights_plan(ctx, list)
  local steps = {}
  for i, s in ipairs(list) do
    steps[i] = { weights = traffic.describe(s.weights, ctx.names or {}), bake = s.bake, gates = s.gates }
  end
  return { point = ctx.point and ctx.point.arn, steps = steps }
end

--[[ Per strategy: services(c, ctx, new_td) → changes; traffic(c, ctx) → steps;
     serving(ctx) → target group ARNs that serve now; watched(ctx) → services. ]]
local STEPS = {
  canary = {
    services = function(c, ctx, td)
      local out = { svc_change(ctx.canary_svc, td, ctx.canary_count, "canary: starts on the new version") }
      if c.promote then
        out[2] = svc_change(ctx.stable_svc, td, ctx.stable_svc.desiredCount, "promotion")
        out[3] = svc_change(ctx.canary_svc, nil, 0, "canary scaled to zero at the end")
      end
      return out
    end,
    traffic = function(c, ctx)
      local list = {}
      for _, w in ipairs(c.steps) do
        list[#list + 1] = { weights = { [ctx.stable_tg] = 100 - w, [ctx.canary_tg] = w }, bake = c.bake, gates = true }
      end
      if c.promote then list[#list + 1] = { weights = ctx.home, bake = 0 } end
      return weights_plan(ctx, list)
    end,
    serving = function(ctx) return { ctx.stable_tg } end,
    watched = function(ctx) return { ctx.stable_svc, ctx.canary_svc } end,
  },
  blue_green = {
    services = function(_, ctx, td)
      return { svc_change(ctx.green_side.svc, td, ctx.green_count, "green: starts on the new version"),
        svc_change(ctx.blue.svc, nil, 0, "blue scaled to zero after keep_blue") }
    end,
    traffic = function(c, ctx)
      return weights_plan(ctx, { { weights = ctx.green_weights, bake = c.keep_blue, gates = true } })
    end,
    serving = function(ctx) return { ctx.blue.tg } end,
    watched = function(ctx) return { ctx.blue.svc, ctx.green_side.svc } end,
  },
  rolling = {
    services = function(c, ctx, td)
      return { svc_change(ctx.svc, td, ctx.svc.desiredCount, c.circuit_breaker and "rolling update, circuit breaker on"
        or "rolling update") }
    end,
    serving = function(ctx) return ctx.tgs end,
    watched = function(ctx) return { ctx.svc } end,
  },
  ecs_native = {
    services = function(c, ctx, td)
      return { svc_change(ctx.svc, td, ctx.svc.desiredCount, "ECS " .. c.strategy .. " deployment, paused at "
        .. table.concat(c.dc.lifecycleHooks[1].lifecycleStages, ", ") .. " for the gates") }
    end,
    serving = function(ctx) return { ctx.blue_tg } end,
    watched = function(ctx) return { ctx.svc } end,
  },
  codedeploy = {
    services = function(c, ctx, td)
      return { svc_change(ctx.svc, td, ctx.svc.desiredCount, string.format("CodeDeploy deployment in %s/%s (%s)",
        c.application, c.group, ctx.config and ctx.config.name or "the group's configuration")) }
    end,
    serving = function(ctx) return { ctx.tg_arn[ctx.blue_tg] } end,
    watched = function(ctx) return { ctx.svc } end,
  },
}

-- Each gate read now (the periods CloudWatch has published), as it would be measured.
local function gate_readings(c, ctx)
  local out = {}
  local t = gate.tracker(ctx.gates, c)
  local mctx = { now = sched.now(), interval = c.interval, cluster = c.cluster,
    stable_target_group = ctx.stable_tg, canary_target_group = ctx.canary_tg }
  for _, m in ipairs(t:measure(mctx)) do
    out[#out + 1] = { gate = m.gate.name, kind = m.gate.kind, result = m.m.result, reading = gate.describe(m.m) }
  end
  return out
end

local function problems(steps, ctx, gates)
  local out = {}
  for _, arn in ipairs(steps.serving and steps.serving(ctx) or {}) do
    if arn and ecs_util.healthy_targets(arn) == 0 then
      out[#out + 1] = { kind = "no_healthy_targets", message = string.format("target group %s serves "
        .. "production traffic and has no healthy targets", ecs_util.tg_name(arn)) }
    end
  end
  for _, g in ipairs(gates) do
    if g.kind == "alarm" and g.result == "fail" then
      out[#out + 1] = { kind = "alarm_in_alarm", message = string.format("gate `%s`: %s", g.gate, g.reading) }
    end
  end
  for _, svc in ipairs(steps.watched and steps.watched(ctx) or {}) do
    local p = ecs_util.primary(svc)
    if #(svc.deployments or {}) > 1 or (p and p.rolloutState == "IN_PROGRESS") then
      out[#out + 1] = { kind = "deployment_in_progress", message = string.format("service %s is already "
        .. "mid-deployment (%d deployments%s)", svc.serviceName, #(svc.deployments or {}),
        p and p.rolloutState and (", primary " .. p.rolloutState) or "") }
    end
  end
  return out
end

-- The duration: every step's bake, or until its last metric period is visible.
local function duration_of(c, ctx, traffic_plan)
  local total = 0
  local function step(bake)
    local due = gate.ready_at(ctx.gates, { step_started = 0, bake = bake, interval = c.interval }) or 0
    total = total + math.max(bake or 0, due)
  end
  if traffic_plan and #traffic_plan.steps > 0 then
    for _, s in ipairs(traffic_plan.steps) do if s.gates then step(s.bake) end end
  elseif c.bake then
    step(c.bake)
  end
  return total
end

function M.describe(spec, c, ctx, label, sink)
  local steps = STEPS[spec.name] or {}
  local v = version_plan(ctx)
  local traffic_plan = steps.traffic and steps.traffic(c, ctx) or nil
  local gates = gate_readings(c, ctx)
  local entry = { strategy = label, name = c.name, version = v,
    services = steps.services and steps.services(c, ctx, v.to) or {}, traffic = traffic_plan, gates = gates,
    duration = duration_of(c, ctx, traffic_plan), problems = problems(steps, ctx, gates) }
  sink(entry)
  return { status = "planned", strategy = label, task_definition = v.to, steps = {}, pauses = {},
    measurements = {}, serving = "(plan)", deployment_id = "(plan)", plan = entry }
end

return M
