--[[
Rule actions and conditions of the simulated ELBv2: reading them from a
request (checked as AWS checks them) and writing them back in AWS's shapes.

A parsed action: { type = "forward", order =, tgs = { {arn=, weight=}, ... },
sticky = { enabled=, duration= } } or { type = "fixed-response" | "redirect",
order =, raw = (the request's action) }. A parsed condition: { Field =,
values = {...} } for path-pattern and host-header, { Field =, raw = } otherwise.
]]
local tables = require "ecsplay.util.tables"
local state = require "ecsplay.sim.elbv2.state"
local limits = require "ecsplay.sim.limits"

local copy = tables.copy

local M = {}

---------------------------------------------------------------- reading

-- The target groups of a forward action: { {arn=, weight=}, ... } (at most 5, each once).
local function forward_targets(world, a, where)
  local list = {}
  local fc = a.ForwardConfig
  if a.TargetGroupArn and fc and fc.TargetGroups and #fc.TargetGroups > 0 then
    if #fc.TargetGroups ~= 1 or fc.TargetGroups[1].TargetGroupArn ~= a.TargetGroupArn then
      world:fail("ValidationError", where .. ": when both TargetGroupArn and ForwardConfig are " ..
        "specified, ForwardConfig must list exactly one target group, the same as TargetGroupArn")
    end
  end
  if fc and fc.TargetGroups and #fc.TargetGroups > 0 then
    for ti, t in ipairs(fc.TargetGroups) do
      local w = t.Weight
      if w == nil then w = 1 end
      if type(w) ~= "number" or w ~= math.floor(w) or w < 0 or w > limits.ELBV2.MAX_WEIGHT then
        world:fail("ValidationError", string.format("The weight for each target group must be between 0 "
          .. "and %d, inclusive (%s.ForwardConfig.TargetGroups.member.%d.Weight is %s)",
          limits.ELBV2.MAX_WEIGHT, where, ti, tostring(t.Weight)))
      end
      list[#list + 1] = { arn = t.TargetGroupArn, weight = math.tointeger(w) or w }
    end
  elseif a.TargetGroupArn then
    list[1] = { arn = a.TargetGroupArn, weight = 1 }
  else
    world:fail("ValidationError", where .. ": a forward action needs TargetGroupArn or ForwardConfig.TargetGroups")
  end
  if #list > limits.ELBV2.TARGET_GROUPS_PER_ACTION then
    world:fail("ValidationError", string.format("%s: a forward action can list at most %d target groups",
      where, limits.ELBV2.TARGET_GROUPS_PER_ACTION))
  end
  return list
end

-- Each target group must exist and belong to no other load balancer than `lb`.
local function check_targets(world, list, lb, where)
  local seen = {}
  for _, t in ipairs(list) do
    if seen[t.arn] then
      world:fail("ValidationError", where .. ": target group '" .. t.arn .. "' is listed more than once")
    end
    seen[t.arn] = true
    local tg = state.tg_or_fail(world, t.arn)
    for _, other in ipairs(state.tg_lb_arns(world, tg)) do
      if other ~= lb.arn then
        world:fail("TargetGroupAssociationLimit",
          "The following target groups cannot be associated with more than one load balancer: " .. t.arn)
      end
    end
  end
end

local function stickiness(world, fc, where)
  local sc = fc and fc.TargetGroupStickinessConfig
  if not (sc and sc.Enabled) then return { enabled = false } end
  local d = sc.DurationSeconds
  if type(d) ~= "number" or d < 1 or d > 604800 then
    world:fail("ValidationError", where .. ".ForwardConfig.TargetGroupStickinessConfig.DurationSeconds " ..
      "must be between 1 and 604800 when stickiness is enabled")
  end
  return { enabled = true, duration = d }
end

--[[ Parses and checks an Actions list. Returns the normalized actions. lb is
     the load balancer the actions will live on (for the one-LB-per-TG rule). ]]
function M.parse_actions(world, actions, lb)
  if type(actions) ~= "table" or #actions == 0 then
    world:fail("ValidationError", "At least one action must be specified")
  end
  local out, forwards = {}, 0
  for ai, a in ipairs(actions) do
    local where = "Actions.member." .. ai
    if a.Type == "forward" then
      forwards = forwards + 1
      local list = forward_targets(world, a, where)
      check_targets(world, list, lb, where)
      out[#out + 1] = { type = "forward", order = a.Order, tgs = list, sticky = stickiness(world, a.ForwardConfig, where) }
    elseif a.Type == "fixed-response" or a.Type == "redirect" then
      forwards = forwards + 1
      out[#out + 1] = { type = a.Type, order = a.Order, raw = copy(a) }
    elseif a.Type then
      world:fail("InvalidLoadBalancerAction", where .. ": action type '" .. tostring(a.Type) ..
        "' is not supported by the simulator (use forward, fixed-response or redirect)")
    else
      world:fail("ValidationError", where .. ".Type is required")
    end
  end
  if forwards ~= 1 then
    world:fail("InvalidLoadBalancerAction", "Exactly one forward, fixed-response or redirect action is required")
  end
  return out
end

function M.parse_conditions(world, conditions)
  if type(conditions) ~= "table" or #conditions == 0 then
    world:fail("ValidationError", "A rule must have at least one condition")
  end
  local out = {}
  for i, c in ipairs(conditions) do
    local where = "Conditions.member." .. i
    local f = c.Field
    if f == "path-pattern" or f == "host-header" then
      local cfg = f == "path-pattern" and c.PathPatternConfig or c.HostHeaderConfig
      if c.Values and cfg and cfg.Values then
        world:fail("ValidationError", where .. ": specify Values or " ..
          (f == "path-pattern" and "PathPatternConfig" or "HostHeaderConfig") .. ", not both")
      end
      local vals = c.Values or (cfg and cfg.Values)
      if not vals or #vals == 0 then
        world:fail("ValidationError", where .. ": a " .. f .. " condition needs at least one value")
      end
      out[#out + 1] = { Field = f, values = copy(vals) }
    elseif f then
      out[#out + 1] = { Field = f, raw = copy(c) }
    else
      world:fail("ValidationError", where .. ".Field is required")
    end
  end
  return out
end

-- The forward action of a rule (nil when it answers otherwise).
function M.forward_action(rule)
  for _, a in ipairs(rule.actions) do if a.type == "forward" then return a end end
end

---------------------------------------------------------------- writing

local function out_action(a)
  if a.type ~= "forward" then
    local raw = copy(a.raw)
    raw.Order = a.order
    return raw
  end
  local tgs = {}
  for i, t in ipairs(a.tgs) do tgs[i] = { TargetGroupArn = t.arn, Weight = t.weight } end
  local sticky = { Enabled = a.sticky.enabled }
  if a.sticky.enabled then sticky.DurationSeconds = a.sticky.duration end
  return {
    Type = "forward",
    Order = a.order,
    -- AWS echoes the top-level ARN only when the action has a single target group
    TargetGroupArn = #a.tgs == 1 and a.tgs[1].arn or nil,
    ForwardConfig = { TargetGroups = tgs, TargetGroupStickinessConfig = sticky },
  }
end

function M.out_actions(actions)
  local out = {}
  for i, a in ipairs(actions) do out[i] = out_action(a) end
  return out
end

function M.out_condition(c)
  if c.Field == "path-pattern" or c.Field == "host-header" then
    local vals = copy(c.values)
    local cfg = { Values = copy(c.values) }
    local out = { Field = c.Field, Values = vals }
    if c.Field == "path-pattern" then out.PathPatternConfig = cfg else out.HostHeaderConfig = cfg end
    return out
  end
  return copy(c.raw)
end

return M
