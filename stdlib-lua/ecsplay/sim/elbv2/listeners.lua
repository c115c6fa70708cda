--[[
Listeners and rules of the simulated ELBv2: CreateListener, DescribeListeners,
ModifyListener, DeleteListener, CreateRule, DescribeRules, ModifyRule,
DeleteRule, SetRulePriorities. A listener owns its rules, kept sorted by
priority with its default rule last; every change to what a rule forwards
calls state.routing_changed.
]]
local tables = require "ecsplay.util.tables"
local state = require "ecsplay.sim.elbv2.state"
local actions = require "ecsplay.sim.elbv2.actions"
local limits = require "ecsplay.sim.limits"

local copy = tables.copy

local M = {}
M.ops = {}
local ops = M.ops

local function new_rule_arn(world, l)
  return world:arn("elasticloadbalancing", string.format("listener-rule/app/%s/%s/%s/%s",
    l.lb.name, l.lb.hex, l.hex, world:id(nil, 16)))
end

local function out_listener(l)
  local out = {
    ListenerArn = l.arn, LoadBalancerArn = l.lb.arn, Port = l.port, Protocol = l.protocol,
    DefaultActions = actions.out_actions(l.default_rule.actions),
  }
  if l.protocol == "HTTPS" then
    out.SslPolicy = l.ssl_policy
    out.Certificates = copy(l.certificates)
  end
  return out
end

local function out_rule(rule)
  local conds = {}
  if not rule.is_default then
    for i, c in ipairs(rule.conditions) do conds[i] = actions.out_condition(c) end
  end
  return {
    RuleArn = rule.arn,
    Priority = rule.is_default and "default" or tostring(rule.priority),
    Conditions = conds,
    Actions = actions.out_actions(rule.actions),
    IsDefault = rule.is_default,
  }
end

--[[ DescribeListeners and DescribeRules: the objects named by ARN (`arns` names the parameter)
     or every child of the parent named by `parent`; paged, each rendered by `render`, answered
     under `out`. ]]
local function describe_children(spec)
  return function(world, input)
    local list = state.named_or_children(world, input[spec.arns], spec.find, input[spec.parent], spec.find_parent,
      spec.field, spec.neither)
    local out, marker = state.page_out(world, list, input, spec.render)
    return { [spec.out] = out, NextMarker = marker }
  end
end

---------------------------------------------------------------- listeners

local function check_protocol(world, protocol)
  if protocol ~= "HTTP" and protocol ~= "HTTPS" then
    world:fail("IncompatibleProtocols", "Listener protocol '" .. tostring(protocol) ..
      "' must be one of 'HTTPS, HTTP' for an application load balancer")
  end
end

-- One listener per port and load balancer (CreateListener, and ModifyListener moving a port).
local function check_port_free(world, lb, port)
  for _, other in ipairs(lb.listeners) do
    if other.port == port then
      world:fail("DuplicateListener", "A listener already exists on port " .. tostring(port) ..
        " of load balancer '" .. lb.arn .. "'")
    end
  end
end

function ops.CreateListener(world, input)
  local s = state.st(world)
  local lb = state.lb_or_fail(world, input.LoadBalancerArn)
  if #lb.listeners >= limits.ELBV2.LISTENERS_PER_LOAD_BALANCER then
    world:fail("TooManyListeners", string.format("You've reached the limit on the number of listeners "
      .. "per load balancer (%d).", limits.ELBV2.LISTENERS_PER_LOAD_BALANCER))
  end
  local protocol = input.Protocol or "HTTP"
  check_protocol(world, protocol)
  local default_actions = actions.parse_actions(world, input.DefaultActions, lb)
  check_port_free(world, lb, input.Port)
  local hex = world:id(nil, 16)
  local l = {
    arn = world:arn("elasticloadbalancing", string.format("listener/app/%s/%s/%s", lb.name, lb.hex, hex)),
    hex = hex, lb = lb, port = input.Port, protocol = protocol,
    ssl_policy = input.SslPolicy or (protocol == "HTTPS" and "ELBSecurityPolicy-2016-08" or nil),
    certificates = copy(input.Certificates or {}), rules = {},
    seq = (s.listener_seq or 0) + 1, -- creation order, for state.tg_lb_arns
  }
  s.listener_seq = l.seq
  local default = { listener = l, is_default = true, actions = default_actions }
  default.arn = new_rule_arn(world, l)
  l.default_rule = default
  l.rules[1] = default   -- rules stay sorted by priority, the default rule last
  s.rule_by_arn[default.arn] = default
  s.listeners[#s.listeners + 1] = l
  state.routing_changed(world, l)
  s.listener_by_arn[l.arn] = l
  lb.listeners[#lb.listeners + 1] = l
  state.add_tags(world, l.arn, input.Tags)
  return { Listeners = { out_listener(l) } }
end

function ops.ModifyListener(world, input)
  local l = state.listener_or_fail(world, input.ListenerArn)
  if input.Protocol then check_protocol(world, input.Protocol) end
  if input.Port and input.Port ~= l.port then check_port_free(world, l.lb, input.Port) end
  local new_actions = input.DefaultActions and actions.parse_actions(world, input.DefaultActions, l.lb)
  if input.Port then l.port = input.Port end
  if input.Protocol then l.protocol = input.Protocol end
  if input.SslPolicy then l.ssl_policy = input.SslPolicy end
  if l.protocol == "HTTPS" and not l.ssl_policy then l.ssl_policy = "ELBSecurityPolicy-2016-08" end
  if input.Certificates then l.certificates = copy(input.Certificates) end
  if new_actions then l.default_rule.actions = new_actions end
  state.routing_changed(world, l)
  return { Listeners = { out_listener(l) } }
end

-- Removes a listener with its rules and their tags (DeleteListener, DeleteLoadBalancer).
function M.delete_listener(world, l)
  local s = state.st(world)
  for _, rule in ipairs(l.rules) do s.rule_by_arn[rule.arn] = nil; s.tags[rule.arn] = nil end
  s.listener_by_arn[l.arn] = nil
  s.tags[l.arn] = nil
  state.remove_value(s.listeners, l)
  state.routing_changed(world, l)
  state.remove_value(l.lb.listeners, l)
end

function ops.DeleteListener(world, input)
  M.delete_listener(world, state.listener_or_fail(world, input.ListenerArn))
  return {}
end

---------------------------------------------------------------- rules

local function sort_rules(l)
  table.sort(l.rules, function(a, b)
    if a.is_default ~= b.is_default then return b.is_default end
    return (a.priority or 0) < (b.priority or 0)
  end)
end

-- AWS's range for a rule priority (CreateRule, SetRulePriorities; each words its own error).
local function valid_priority(p)
  return type(p) == "number" and p == math.floor(p) and p >= 1 and p <= 50000
end

local function priority_taken(l, priority, except)
  for _, r in ipairs(l.rules) do
    if not r.is_default and r ~= except and r.priority == priority then return true end
  end
  return false
end

-- AWS's quota: rules per load balancer, not counting the listeners' default rules.
local function check_rule_room(world, lb)
  local n = 0
  for _, l in ipairs(lb.listeners) do n = n + #l.rules - 1 end
  if n >= limits.ELBV2.RULES_PER_LOAD_BALANCER then
    world:fail("TooManyRules", string.format("You've reached the limit on the number of rules per load "
      .. "balancer (%d, not counting default rules).", limits.ELBV2.RULES_PER_LOAD_BALANCER))
  end
end

function ops.CreateRule(world, input)
  local s = state.st(world)
  local l = state.listener_or_fail(world, input.ListenerArn)
  local p = input.Priority
  if not valid_priority(p) then
    world:fail("ValidationError", "Priority must be an integer from 1 to 50000, got " .. tostring(p))
  end
  local conditions = actions.parse_conditions(world, input.Conditions)
  local rule_actions = actions.parse_actions(world, input.Actions, l.lb)
  if priority_taken(l, p) then world:fail("PriorityInUse", "Priority '" .. p .. "' is currently in use") end
  check_rule_room(world, l.lb)
  local rule = { listener = l, is_default = false, priority = math.tointeger(p) or p,
                 conditions = conditions, actions = rule_actions }
  rule.arn = new_rule_arn(world, l)
  l.rules[#l.rules + 1] = rule
  state.routing_changed(world, l)
  sort_rules(l)
  s.rule_by_arn[rule.arn] = rule
  state.add_tags(world, rule.arn, input.Tags)
  return { Rules = { out_rule(rule) } }
end

function ops.ModifyRule(world, input)
  local rule = state.rule_or_fail(world, input.RuleArn)
  if rule.is_default and input.Conditions then
    world:fail("OperationNotPermitted", "The conditions of a listener's default rule cannot be modified")
  end
  local conditions = input.Conditions and actions.parse_conditions(world, input.Conditions)
  local new_actions = input.Actions and actions.parse_actions(world, input.Actions, rule.listener.lb)
  if conditions then rule.conditions = conditions end
  if new_actions then rule.actions = new_actions end
  state.routing_changed(world, rule.listener)
  return { Rules = { out_rule(rule) } }
end

function ops.DeleteRule(world, input)
  local s = state.st(world)
  local rule = state.rule_or_fail(world, input.RuleArn)
  if rule.is_default then world:fail("OperationNotPermitted", "A listener's default rule cannot be deleted") end
  state.remove_value(rule.listener.rules, rule)
  state.routing_changed(world, rule.listener)
  s.rule_by_arn[rule.arn] = nil
  s.tags[rule.arn] = nil
  return {}
end

-- SetRulePriorities' changes { rule=, priority= }, each rule and priority checked.
local function priority_changes(world, input)
  local changes = {}
  for i, pair in ipairs(input.RulePriorities or {}) do
    local rule = state.rule_or_fail(world, pair.RuleArn)
    if rule.is_default then
      world:fail("OperationNotPermitted", "The priority of a listener's default rule cannot be changed")
    end
    local p = pair.Priority
    if not valid_priority(p) then
      world:fail("ValidationError", "RulePriorities.member." .. i .. ".Priority must be an integer from 1 to 50000")
    end
    changes[#changes + 1] = { rule = rule, priority = math.tointeger(p) or p }
  end
  return changes
end

function ops.SetRulePriorities(world, input)
  local changes = priority_changes(world, input)
  -- the priorities after the change must be unique per listener
  local by_listener = {}
  for _, c in ipairs(changes) do
    local l = c.rule.listener
    by_listener[l] = by_listener[l] or {}
    by_listener[l][c.rule] = c.priority
  end
  for l, new in pairs(by_listener) do
    local seen = {}
    for _, r in ipairs(l.rules) do
      if not r.is_default then
        local p = new[r] or r.priority
        if seen[p] then world:fail("PriorityInUse", "Priority '" .. p .. "' is currently in use") end
        seen[p] = true
      end
    end
  end
  local out = {}
  for i, c in ipairs(changes) do c.rule.priority = c.priority; out[i] = c.rule end
  for l in pairs(by_listener) do
    sort_rules(l)
    state.routing_changed(world, l) -- which rule takes a listener's traffic may be another now
  end
  local rules = {}
  for i, r in ipairs(out) do rules[i] = out_rule(r) end
  return { Rules = rules }
end

---------------------------------------------------------------- describing

ops.DescribeListeners = describe_children {
  arns = "ListenerArns", find = state.listener_or_fail, parent = "LoadBalancerArn", find_parent = state.lb_or_fail,
  field = "listeners", neither = "You must specify either listener ARNs or a load balancer ARN",
  render = out_listener, out = "Listeners",
}

ops.DescribeRules = describe_children {
  arns = "RuleArns", find = state.rule_or_fail, parent = "ListenerArn", find_parent = state.listener_or_fail,
  field = "rules", neither = "You must specify either listener ARN or rule ARNs",
  render = out_rule, out = "Rules",
}

return M
