--[[
Target groups of the simulated ELBv2: CreateTargetGroup, DescribeTargetGroups,
ModifyTargetGroup (health check settings), DeleteTargetGroup and their
attributes. Their targets and health checks are in sim/elbv2/targets.lua.
]]
local tables = require "ecsplay.util.tables"
local state = require "ecsplay.sim.elbv2.state"
local limits = require "ecsplay.sim.limits"

local M = {}
M.ops = {}
local ops = M.ops

local TG_ATTRIBUTES = {
  { "deregistration_delay.timeout_seconds", "300" }, { "stickiness.enabled", "false" },
  { "stickiness.type", "lb_cookie" }, { "stickiness.lb_cookie.duration_seconds", "86400" },
  { "slow_start.duration_seconds", "0" }, { "load_balancing.algorithm.type", "round_robin" },
  { "load_balancing.cross_zone.enabled", "use_load_balancer_configuration" },
}

local function out_tg(world, tg)
  return {
    TargetGroupArn = tg.arn, TargetGroupName = tg.name, Protocol = tg.protocol, Port = tg.port,
    VpcId = tg.vpc, HealthCheckProtocol = tg.hc.protocol, HealthCheckPort = tg.hc.port,
    HealthCheckEnabled = tg.hc.enabled, HealthCheckIntervalSeconds = tg.hc.interval,
    HealthCheckTimeoutSeconds = tg.hc.timeout, HealthyThresholdCount = tg.hc.healthy,
    UnhealthyThresholdCount = tg.hc.unhealthy, HealthCheckPath = tg.hc.path,
    Matcher = { HttpCode = tg.hc.matcher }, LoadBalancerArns = state.tg_lb_arns(world, tg),
    TargetType = tg.target_type, ProtocolVersion = tg.protocol_version, IpAddressType = "ipv4",
  }
end

-- Health check settings: AWS's defaults (or `base`, for ModifyTargetGroup) with the request's changes.
local function hc_settings(world, input, base)
  local hc = base and tables.copy(base) or {
    protocol = input.Protocol or "HTTP", port = "traffic-port", enabled = true,
    interval = 30, timeout = 5, healthy = 5, unhealthy = 2, path = "/", matcher = "200",
  }
  if input.HealthCheckProtocol then hc.protocol = input.HealthCheckProtocol end
  if input.HealthCheckPort then hc.port = input.HealthCheckPort end
  if input.HealthCheckEnabled ~= nil then hc.enabled = input.HealthCheckEnabled end
  if input.HealthCheckIntervalSeconds then hc.interval = input.HealthCheckIntervalSeconds end
  if input.HealthCheckTimeoutSeconds then hc.timeout = input.HealthCheckTimeoutSeconds end
  if input.HealthyThresholdCount then hc.healthy = input.HealthyThresholdCount end
  if input.UnhealthyThresholdCount then hc.unhealthy = input.UnhealthyThresholdCount end
  if input.HealthCheckPath then hc.path = input.HealthCheckPath end
  if input.Matcher and input.Matcher.HttpCode then hc.matcher = input.Matcher.HttpCode end
  if hc.timeout >= hc.interval then
    world:fail("ValidationError", string.format("Health check timeout (%d) must be smaller than the interval (%d)",
      hc.timeout, hc.interval))
  end
  return hc
end

-- Checks CreateTargetGroup's name, target type and protocol; returns the target type.
local function check_new_tg(world, input)
  if not state.valid_name(input.Name) then
    world:fail("ValidationError", "Target group name '" .. tostring(input.Name) .. "' is invalid: up to 32 " ..
      "alphanumeric characters or hyphens, not starting or ending with a hyphen")
  end
  local target_type = input.TargetType or "instance"
  if target_type ~= "lambda" and (not input.Protocol or not input.Port or not input.VpcId) then
    world:fail("ValidationError", "A protocol, port and VPC ID are required for target type '" .. target_type .. "'")
  end
  if input.Protocol and input.Protocol ~= "HTTP" and input.Protocol ~= "HTTPS" then
    world:fail("ValidationError", "Target group protocol '" .. input.Protocol ..
      "' is not simulated; use HTTP or HTTPS (application load balancers)")
  end
  return target_type
end

function ops.CreateTargetGroup(world, input)
  local s = state.st(world)
  local name = input.Name
  local target_type = check_new_tg(world, input)
  local hc = hc_settings(world, input)
  local existing = s.tg_by_name[name]
  if existing then
    -- idempotent for identical settings
    if existing.port == input.Port and existing.protocol == input.Protocol and existing.vpc == input.VpcId
        and existing.target_type == target_type then
      return { TargetGroups = { out_tg(world, existing) } }
    end
    world:fail("DuplicateTargetGroupName", "A target group with the same name '" .. name ..
      "' exists, but with different settings")
  end
  if #s.tgs >= limits.ELBV2.TARGET_GROUPS then
    world:fail("TooManyTargetGroups", string.format("You've reached the limit on the number of target "
      .. "groups for your AWS account (%d).", limits.ELBV2.TARGET_GROUPS))
  end
  local hex = world:id(nil, 16)
  local tg = {
    arn = world:arn("elasticloadbalancing", "targetgroup/" .. name .. "/" .. hex),
    name = name, protocol = input.Protocol, port = input.Port, vpc = input.VpcId,
    target_type = target_type, protocol_version = input.ProtocolVersion or "HTTP1", hc = hc,
    attrs = state.default_attrs(TG_ATTRIBUTES), targets = {}, target_list = {},
    seq = (s.tg_seq or 0) + 1, -- creation order (the order of s.tgs), for tgs_of_lb
  }
  s.tg_seq = tg.seq
  s.tgs[#s.tgs + 1] = tg
  s.tg_by_arn[tg.arn] = tg
  state.wake(world, tg)
  s.tg_by_name[name] = tg
  state.add_tags(world, tg.arn, input.Tags)
  return { TargetGroups = { out_tg(world, tg) } }
end

-- The target groups a load balancer routes to, in creation order: found from its own
-- listeners, so the call costs what the load balancer has, not what the account has.
local function tgs_of_lb(world, s, lb_arn)
  local lb = state.lb_or_fail(world, lb_arn)
  local used = {}
  for _, l in ipairs(lb.listeners) do state.listener_tg_arns(l, used) end
  local list = {}
  for arn in pairs(used) do list[#list + 1] = s.tg_by_arn[arn] end
  table.sort(list, function(a, b) return a.seq < b.seq end)
  return list
end

function ops.DescribeTargetGroups(world, input)
  local s = state.st(world)
  local max = limits.ELBV2.DESCRIBE_TARGET_GROUPS
  if #(input.Names or {}) > max or #(input.TargetGroupArns or {}) > max then
    world:fail("ValidationError", string.format("You cannot describe more than '%d' target groups at a time", max))
  end
  local list = state.named(world, input.TargetGroupArns, state.tg_or_fail, input.Names, s.tg_by_name,
    "TargetGroupNotFound", "Target groups")
  if not list and input.LoadBalancerArn then
    list = tgs_of_lb(world, s, input.LoadBalancerArn)
  elseif not list then
    list = {}
    for _, tg in ipairs(s.tgs) do list[#list + 1] = tg end
  end
  local out, marker = state.page_out(world, list, input, function(tg) return out_tg(world, tg) end)
  return { TargetGroups = out, NextMarker = marker }
end

function ops.ModifyTargetGroup(world, input)
  local tg = state.tg_or_fail(world, input.TargetGroupArn)
  tg.hc = hc_settings(world, input, tg.hc)
  return { TargetGroups = { out_tg(world, tg) } }
end

function ops.DeleteTargetGroup(world, input)
  local s = state.st(world)
  local tg = state.tg_or_fail(world, input.TargetGroupArn)
  if state.tg_in_use(world, tg) then
    world:fail("ResourceInUse", "Target group '" .. tg.arn .. "' is currently in use by a listener or a rule")
  end
  s.tg_by_arn[tg.arn] = nil
  s.tg_by_name[tg.name] = nil
  s.tags[tg.arn] = nil
  state.remove_value(s.tgs, tg)
  return {}
end

-- deregistration_delay.timeout_seconds is the one attribute whose value the simulator reads.
local function check_attribute(world, a)
  if a.Key == "deregistration_delay.timeout_seconds" then
    local n = tonumber(a.Value)
    if not n or n < 0 or n > 3600 or n ~= math.floor(n) then
      world:fail("ValidationError", "deregistration_delay.timeout_seconds must be an integer from 0 to 3600, got '" ..
        tostring(a.Value) .. "'")
    end
  end
end

state.attribute_ops(ops, { kind = "TargetGroup", find = state.tg_or_fail, defaults = TG_ATTRIBUTES,
  what = "Target group", check = check_attribute })

return M
