--[[
Load balancers of the simulated ELBv2 (Application Load Balancers only):
CreateLoadBalancer, DescribeLoadBalancers, DeleteLoadBalancer and their
attributes.
]]
local tables = require "ecsplay.util.tables"
local state = require "ecsplay.sim.elbv2.state"
local listeners = require "ecsplay.sim.elbv2.listeners"
local limits = require "ecsplay.sim.limits"

local copy = tables.copy

local M = {}
M.ops = {}
local ops = M.ops

-- AWS takes minutes to provision an ALB; a playbook rehearsal gains nothing
-- from waiting, so the simulated one is active after a short, visible delay.
local PROVISION_SECONDS = 10
-- The us-east-1 ALB hosted zone (AWS uses one per region; good enough here).
local CANONICAL_ZONE = "Z35SXDOTRQ7X7K"

local LB_ATTRIBUTES = {
  { "access_logs.s3.enabled", "false" }, { "access_logs.s3.bucket", "" }, { "access_logs.s3.prefix", "" },
  { "deletion_protection.enabled", "false" }, { "idle_timeout.timeout_seconds", "60" },
  { "routing.http2.enabled", "true" }, { "routing.http.drop_invalid_header_fields.enabled", "false" },
  { "load_balancing.cross_zone.enabled", "true" },
}

local function out_lb(lb)
  local azs = {}
  for i, az in ipairs(lb.azs) do azs[i] = { ZoneName = az.zone, SubnetId = az.subnet, LoadBalancerAddresses = {} } end
  return {
    LoadBalancerArn = lb.arn, DNSName = lb.dns, CanonicalHostedZoneId = CANONICAL_ZONE,
    CreatedTime = lb.created, LoadBalancerName = lb.name, Scheme = lb.scheme, VpcId = lb.vpc,
    State = { Code = lb.state }, Type = "application", AvailabilityZones = azs,
    SecurityGroups = copy(lb.security_groups), IpAddressType = lb.ip_type,
  }
end

-- The subnets of a CreateLoadBalancer request (Subnets, then SubnetMappings); at least two.
local function requested_subnets(world, input)
  local subnets = {}
  for _, sn in ipairs(input.Subnets or {}) do subnets[#subnets + 1] = sn end
  for _, m in ipairs(input.SubnetMappings or {}) do subnets[#subnets + 1] = m.SubnetId end
  if #subnets < 2 then
    world:fail("InvalidConfigurationRequest",
      "At least two subnets in two different Availability Zones must be specified")
  end
  return subnets
end

-- A new load balancer's state (provisioning), its zones lettered a, b, ... in subnet order.
local function new_lb(world, input, name, scheme, subnets)
  local hex = world:id(nil, 16)
  local arn = world:arn("elasticloadbalancing", "loadbalancer/app/" .. name .. "/" .. hex)
  local zones = "abcdef"
  local azs = {}
  for i, sn in ipairs(subnets) do
    local letter = zones:sub((i - 1) % #zones + 1, (i - 1) % #zones + 1)
    azs[i] = { zone = world.region .. letter, subnet = sn }
  end
  local digits = string.format("%010d", math.floor(world:noise("elb-dns", arn) * 1e10))
  local lb = {
    arn = arn, name = name, hex = hex, created = world.now, scheme = scheme,
    dns = (scheme == "internal" and "internal-" or "") .. name .. "-" .. digits .. "." .. world.region ..
      ".elb.amazonaws.com",
    vpc = world.vpc_id or (world.scenario and world.scenario.vpc) or "vpc-0sim",
    state = "provisioning", subnets = subnets, azs = azs,
    security_groups = copy(input.SecurityGroups or {}), ip_type = input.IpAddressType or "ipv4",
    attrs = state.default_attrs(LB_ATTRIBUTES), listeners = {},
  }
  return lb
end

function ops.CreateLoadBalancer(world, input)
  local s = state.st(world)
  local name = input.Name
  if not state.valid_name(name) or name:sub(1, 9) == "internal-" then
    world:fail("ValidationError", "Load balancer name '" .. tostring(name) .. "' is invalid: up to 32 " ..
      "alphanumeric characters or hyphens, not starting or ending with a hyphen")
  end
  local typ = input.Type or "application"
  if typ ~= "application" then
    world:fail("InvalidConfigurationRequest", "Load balancer type '" .. typ ..
      "' is not simulated; only 'application' load balancers are")
  end
  local subnets = requested_subnets(world, input)
  local scheme = input.Scheme or "internet-facing"
  local existing = s.lb_by_name[name]
  if existing then
    -- CreateLoadBalancer is idempotent for identical settings
    if existing.scheme == scheme and table.concat(existing.subnets, ",") == table.concat(subnets, ",") then
      return { LoadBalancers = { out_lb(existing) } }
    end
    world:fail("DuplicateLoadBalancerName", "A load balancer with the same name '" .. name .. "' exists, " ..
      "but with different settings")
  end
  if #s.lbs >= limits.ELBV2.LOAD_BALANCERS then
    world:fail("TooManyLoadBalancers", string.format("You've reached the limit on the number of load "
      .. "balancers for your account (%d).", limits.ELBV2.LOAD_BALANCERS))
  end
  local lb = new_lb(world, input, name, scheme, subnets)
  s.lbs[#s.lbs + 1] = lb
  s.lb_by_arn[lb.arn] = lb
  s.lb_by_name[name] = lb
  state.add_tags(world, lb.arn, input.Tags)
  world:at(world.now + PROVISION_SECONDS, function()
    if s.lb_by_arn[lb.arn] == lb then lb.state = "active" end
  end)
  return { LoadBalancers = { out_lb(lb) } }
end

function ops.DescribeLoadBalancers(world, input)
  local s = state.st(world)
  local list = state.named(world, input.LoadBalancerArns, state.lb_or_fail, input.Names, s.lb_by_name,
    "LoadBalancerNotFound", "Load balancers")
  if not list then
    list = {}
    for _, lb in ipairs(s.lbs) do list[#list + 1] = lb end
  end
  local out, marker = state.page_out(world, list, input, out_lb)
  return { LoadBalancers = out, NextMarker = marker }
end

function ops.DeleteLoadBalancer(world, input)
  local s = state.st(world)
  local lb = s.lb_by_arn[input.LoadBalancerArn]
  if not lb then return {} end -- AWS: deleting a missing load balancer succeeds
  if lb.attrs["deletion_protection.enabled"] == "true" then
    world:fail("OperationNotPermitted", "Load balancer '" .. lb.arn ..
      "' cannot be deleted because deletion protection is enabled")
  end
  while #lb.listeners > 0 do listeners.delete_listener(world, lb.listeners[1]) end
  s.lb_by_arn[lb.arn] = nil
  s.lb_by_name[lb.name] = nil
  s.tags[lb.arn] = nil
  state.remove_value(s.lbs, lb)
  return {}
end

state.attribute_ops(ops, { kind = "LoadBalancer", find = state.lb_or_fail, defaults = LB_ATTRIBUTES,
  what = "Load balancer" })

return M
