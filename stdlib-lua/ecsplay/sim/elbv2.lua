--[[
The simulated Elastic Load Balancing v2 (Application Load Balancers only).

State (world.state.elbv2): load balancers, target groups with their targets,
listeners (each owning its default rule) and rules, tags. Lists keep creation
order so every Describe answers in a stable order.

Target health: every tick, a target group used by a load balancer health-checks
each registered target at its HealthCheckIntervalSeconds cadence. A check
passes when the target has no ECS task (plain RegisterTargets) or its task is
"healthy" (ecs.task_health); "starting" keeps an initial target initial
(the container is booting: counted as neither pass nor failure, which is how
ECS's health check grace period makes it look); "unhealthy" fails with
Target.ResponseCodeMismatch, "stopped"/unknown with Target.FailedHealthChecks.
HealthyThresholdCount consecutive passes make a target healthy,
UnhealthyThresholdCount consecutive failures unhealthy. Deregistered targets
drain for deregistration_delay.timeout_seconds, then disappear.

Traffic (M.traffic): see the comment above that function.
]]
local M = { name = "elbv2" }

-- AWS takes minutes to provision an ALB; a playbook rehearsal gains nothing
-- from waiting, so the simulated one is active after a short, visible delay.
local PROVISION_SECONDS = 10
-- Seconds between registration and the first health check.
local REGISTRATION_SECONDS = 5
-- The us-east-1 ALB hosted zone (AWS uses one per region; good enough here).
local CANONICAL_ZONE = "Z35SXDOTRQ7X7K"

local LB_ATTRIBUTES = {
  { "access_logs.s3.enabled", "false" }, { "access_logs.s3.bucket", "" }, { "access_logs.s3.prefix", "" },
  { "deletion_protection.enabled", "false" }, { "idle_timeout.timeout_seconds", "60" },
  { "routing.http2.enabled", "true" }, { "routing.http.drop_invalid_header_fields.enabled", "false" },
  { "load_balancing.cross_zone.enabled", "true" },
}
local TG_ATTRIBUTES = {
  { "deregistration_delay.timeout_seconds", "300" }, { "stickiness.enabled", "false" },
  { "stickiness.type", "lb_cookie" }, { "stickiness.lb_cookie.duration_seconds", "86400" },
  { "slow_start.duration_seconds", "0" }, { "load_balancing.algorithm.type", "round_robin" },
  { "load_balancing.cross_zone.enabled", "use_load_balancer_configuration" },
}

local REASON_TEXT = {
  ["Elb.RegistrationInProgress"] = "Target registration is in progress",
  ["Elb.InitialHealthChecking"] = "Initial health checks in progress",
  ["Target.ResponseCodeMismatch"] = "Health checks failed with these codes: [500]",
  ["Target.FailedHealthChecks"] = "Health checks failed",
  ["Target.NotInUse"] = "Target group is not configured to receive traffic from the load balancer",
  ["Target.DeregistrationInProgress"] = "Target deregistration is in progress",
  ["Target.NotRegistered"] = "Target is not registered to the target group",
}

local function st(world) return world.state.elbv2 end

function M.init(world)
  return {
    lbs = {}, lb_by_arn = {},
    tgs = {}, tg_by_arn = {},
    listeners = {}, listener_by_arn = {},
    rule_by_arn = {},
    tags = {},            -- arn -> { {Key=, Value=}, ... }
  }
end

local function remove_value(list, v)
  for i, x in ipairs(list) do if x == v then table.remove(list, i) return true end end
  return false
end

local copy = require("ecsplay.sim.util").copy

-- Generic Marker/PageSize paging; the marker is the offset as a string.
local function page(world, list, input)
  local from = 1
  if input.Marker then
    from = tonumber(input.Marker)
    if not from or from < 1 or from ~= math.floor(from) then
      world:fail("ValidationError", "The marker '" .. tostring(input.Marker) .. "' is not valid")
    end
  end
  local size = input.PageSize or 400
  if size < 1 or size > 400 then world:fail("ValidationError", "PageSize must be between 1 and 400") end
  local out = {}
  for i = from, math.min(#list, from + size - 1) do out[#out + 1] = list[i] end
  local next_marker = (from + size <= #list) and tostring(from + size) or nil
  return out, next_marker
end

-- Every Describe* pages the same way and renders each object of the page with its out_* function.
local function page_out(world, list, input, render)
  local pg, marker = page(world, list, input)
  local out = {}
  for i, x in ipairs(pg) do out[i] = render(x) end
  return out, marker
end

---------------------------------------------------------------- lookups

-- A look-up by ARN in one of the state's indexes that raises AWS's not-found error for that kind
-- (`message` is a format for the ARN; AWS does not name the rule it did not find).
local function finder(index, code, message)
  return function(world, arn)
    local x = st(world)[index][arn]
    if not x then world:fail(code, string.format(message, tostring(arn))) end
    return x
  end
end

local lb_or_fail = finder("lb_by_arn", "LoadBalancerNotFound", "Load balancer '%s' not found")
local tg_or_fail = finder("tg_by_arn", "TargetGroupNotFound", "Target groups '%s' not found")
local listener_or_fail = finder("listener_by_arn", "ListenerNotFound", "Listener '%s' not found")
local rule_or_fail = finder("rule_by_arn", "RuleNotFound", "One or more rules not found")

--[[ DescribeListeners and DescribeRules take either the objects' own ARNs (each must exist) or
     their parent's ARN (all its children, in its order); AWS refuses a call with neither. ]]
local function named_or_children(world, arns, find, parent_arn, find_parent, field, neither)
  local list = {}
  if arns and #arns > 0 then
    for _, arn in ipairs(arns) do list[#list + 1] = find(world, arn) end
  elseif parent_arn then
    for _, x in ipairs(find_parent(world, parent_arn)[field]) do list[#list + 1] = x end
  else
    world:fail("ValidationError", neither)
  end
  return list
end

-- Every forward target group arn referenced by a listener (default rule and rules).
local function listener_tg_arns(l, out)
  out = out or {}
  for _, rule in ipairs(l.rules) do
    for _, a in ipairs(rule.actions) do
      for _, t in ipairs(a.tgs or {}) do out[t.arn] = true end
    end
  end
  return out
end

--[[ Which load balancers route to which target group changes only when a
     listener, a rule or its forward action does (each such place calls
     routing_changed); target health asks on every tick for every target, so
     the answer is kept until then. ]]
local function routing_changed(world)
  local s = st(world)
  s.routing_version = (s.routing_version or 0) + 1
end

-- The load balancers using a target group, in creation order.
local function tg_lb_arns(world, tg)
  local s = st(world)
  if s.tg_lbs_version ~= s.routing_version or not s.tg_lbs then
    local map = {}
    for _, l in ipairs(s.listeners) do
      for arn in pairs(listener_tg_arns(l)) do
        local list = map[arn]
        if not list then list = { seen = {} } map[arn] = list end
        if not list.seen[l.lb.arn] then
          list.seen[l.lb.arn] = true
          list[#list + 1] = l.lb.arn
        end
      end
    end
    s.tg_lbs, s.tg_lbs_version = map, s.routing_version
  end
  local list = s.tg_lbs[tg.arn]
  local out = {}
  for i, arn in ipairs(list or {}) do out[i] = arn end
  return out
end

local function tg_in_use(world, tg) return #tg_lb_arns(world, tg) > 0 end

local function arn_suffix(arn, kind)
  -- "arn:...:loadbalancer/app/web/abc" -> "app/web/abc"; targetgroup keeps its prefix
  if kind == "lb" then return (arn:match(":loadbalancer/(.+)$")) end
  return (arn:match(":(targetgroup/.+)$"))
end
M.arn_suffix = arn_suffix

---------------------------------------------------------------- output shapes

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

local function out_actions(actions)
  local out = {}
  for i, a in ipairs(actions) do out[i] = out_action(a) end
  return out
end

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

local function out_tg(world, tg)
  return {
    TargetGroupArn = tg.arn, TargetGroupName = tg.name, Protocol = tg.protocol, Port = tg.port,
    VpcId = tg.vpc, HealthCheckProtocol = tg.hc.protocol, HealthCheckPort = tg.hc.port,
    HealthCheckEnabled = tg.hc.enabled, HealthCheckIntervalSeconds = tg.hc.interval,
    HealthCheckTimeoutSeconds = tg.hc.timeout, HealthyThresholdCount = tg.hc.healthy,
    UnhealthyThresholdCount = tg.hc.unhealthy, HealthCheckPath = tg.hc.path,
    Matcher = { HttpCode = tg.hc.matcher }, LoadBalancerArns = tg_lb_arns(world, tg),
    TargetType = tg.target_type, ProtocolVersion = tg.protocol_version, IpAddressType = "ipv4",
  }
end

local function out_listener(l)
  local out = {
    ListenerArn = l.arn, LoadBalancerArn = l.lb.arn, Port = l.port, Protocol = l.protocol,
    DefaultActions = out_actions(l.default_rule.actions),
  }
  if l.protocol == "HTTPS" then
    out.SslPolicy = l.ssl_policy
    out.Certificates = copy(l.certificates)
  end
  return out
end

local function out_condition(c)
  if c.Field == "path-pattern" or c.Field == "host-header" then
    local vals = copy(c.values)
    local cfg = { Values = copy(c.values) }
    local out = { Field = c.Field, Values = vals }
    if c.Field == "path-pattern" then out.PathPatternConfig = cfg else out.HostHeaderConfig = cfg end
    return out
  end
  return copy(c.raw)
end

local function out_rule(rule)
  local conds = {}
  if not rule.is_default then
    for i, c in ipairs(rule.conditions) do conds[i] = out_condition(c) end
  end
  return {
    RuleArn = rule.arn,
    Priority = rule.is_default and "default" or tostring(rule.priority),
    Conditions = conds,
    Actions = out_actions(rule.actions),
    IsDefault = rule.is_default,
  }
end

---------------------------------------------------------------- input checks

--[[ Parses and checks an Actions list. Returns the normalized actions. lb is
     the load balancer the actions will live on (for the one-LB-per-TG rule). ]]
local function parse_actions(world, actions, lb)
  if type(actions) ~= "table" or #actions == 0 then
    world:fail("ValidationError", "At least one action must be specified")
  end
  local out, forwards = {}, 0
  for ai, a in ipairs(actions) do
    local where = "Actions.member." .. ai
    if a.Type == "forward" then
      forwards = forwards + 1
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
          if type(w) ~= "number" or w ~= math.floor(w) or w < 0 or w > 999 then
            world:fail("ValidationError", string.format(
              "%s.ForwardConfig.TargetGroups.member.%d.Weight: %s must be an integer between 0 and 999",
              where, ti, tostring(t.Weight)))
          end
          list[#list + 1] = { arn = t.TargetGroupArn, weight = math.tointeger(w) or w }
        end
      elseif a.TargetGroupArn then
        list[1] = { arn = a.TargetGroupArn, weight = 1 }
      else
        world:fail("ValidationError", where .. ": a forward action needs TargetGroupArn or ForwardConfig.TargetGroups")
      end
      if #list > 5 then
        world:fail("ValidationError", where .. ": a forward action can list at most 5 target groups")
      end
      local seen = {}
      for _, t in ipairs(list) do
        if seen[t.arn] then
          world:fail("ValidationError", where .. ": target group '" .. t.arn .. "' is listed more than once")
        end
        seen[t.arn] = true
        local tg = tg_or_fail(world, t.arn)
        for _, other in ipairs(tg_lb_arns(world, tg)) do
          if other ~= lb.arn then
            world:fail("TargetGroupAssociationLimit",
              "The following target groups cannot be associated with more than one load balancer: " .. t.arn)
          end
        end
      end
      local sticky = { enabled = false }
      local sc = fc and fc.TargetGroupStickinessConfig
      if sc and sc.Enabled then
        local d = sc.DurationSeconds
        if type(d) ~= "number" or d < 1 or d > 604800 then
          world:fail("ValidationError", where .. ".ForwardConfig.TargetGroupStickinessConfig.DurationSeconds " ..
            "must be between 1 and 604800 when stickiness is enabled")
        end
        sticky = { enabled = true, duration = d }
      end
      out[#out + 1] = { type = "forward", order = a.Order, tgs = list, sticky = sticky }
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

local function parse_conditions(world, conditions)
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

---------------------------------------------------------------- load balancers

-- Load balancer and target group names follow one AWS rule (a load balancer adds a reserved prefix).
local function valid_name(name)
  return type(name) == "string" and name:match("^[%w][%w%-]*$") ~= nil and #name <= 32 and name:sub(-1) ~= "-"
end

-- Load balancers and target groups are unique by name within their list.
local function find_by_name(list, name)
  for _, x in ipairs(list) do if x.name == name then return x end end
end

--[[ DescribeLoadBalancers and DescribeTargetGroups: the objects named by ARN (each must exist)
     or by name (AWS's message shows the missing name in brackets); nil when the call names
     neither, so that the caller picks its own default. ]]
local function named(world, arns, find, names, pool, code, what)
  local list = {}
  if arns and #arns > 0 then
    for _, arn in ipairs(arns) do list[#list + 1] = find(world, arn) end
  elseif names and #names > 0 then
    for _, name in ipairs(names) do
      local x = find_by_name(pool, name)
      if not x then world:fail(code, what .. " '[" .. name .. "]' not found") end
      list[#list + 1] = x
    end
  else
    return nil
  end
  return list
end

local function add_tags(world, arn, tags)
  if not tags then return end
  local s = st(world)
  local list = s.tags[arn] or {}
  s.tags[arn] = list
  for _, t in ipairs(tags) do
    local found = false
    for _, x in ipairs(list) do
      if x.Key == t.Key then x.Value = t.Value found = true end
    end
    if not found then list[#list + 1] = { Key = t.Key, Value = t.Value } end
  end
end

M.ops = {}
local ops = M.ops

function ops.CreateLoadBalancer(world, input)
  local s = st(world)
  local name = input.Name
  if not valid_name(name) or name:sub(1, 9) == "internal-" then
    world:fail("ValidationError", "Load balancer name '" .. tostring(name) .. "' is invalid: up to 32 " ..
      "alphanumeric characters or hyphens, not starting or ending with a hyphen")
  end
  local typ = input.Type or "application"
  if typ ~= "application" then
    world:fail("InvalidConfigurationRequest", "Load balancer type '" .. typ ..
      "' is not simulated; only 'application' load balancers are")
  end
  local subnets = {}
  for _, sn in ipairs(input.Subnets or {}) do subnets[#subnets + 1] = sn end
  for _, m in ipairs(input.SubnetMappings or {}) do subnets[#subnets + 1] = m.SubnetId end
  if #subnets < 2 then
    world:fail("InvalidConfigurationRequest",
      "At least two subnets in two different Availability Zones must be specified")
  end
  local scheme = input.Scheme or "internet-facing"
  local existing = find_by_name(s.lbs, name)
  if existing then
    -- CreateLoadBalancer is idempotent for identical settings
    if existing.scheme == scheme and table.concat(existing.subnets, ",") == table.concat(subnets, ",") then
      return { LoadBalancers = { out_lb(existing) } }
    end
    world:fail("DuplicateLoadBalancerName", "A load balancer with the same name '" .. name .. "' exists, " ..
      "but with different settings")
  end
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
    attrs = {}, listeners = {},
  }
  for _, kv in ipairs(LB_ATTRIBUTES) do lb.attrs[kv[1]] = kv[2] end
  s.lbs[#s.lbs + 1] = lb
  s.lb_by_arn[arn] = lb
  add_tags(world, arn, input.Tags)
  world:at(world.now + PROVISION_SECONDS, function()
    if s.lb_by_arn[arn] == lb then lb.state = "active" end
  end)
  return { LoadBalancers = { out_lb(lb) } }
end

function ops.DescribeLoadBalancers(world, input)
  local s = st(world)
  local list = named(world, input.LoadBalancerArns, lb_or_fail, input.Names, s.lbs, "LoadBalancerNotFound",
    "Load balancers")
  if not list then
    list = {}
    for _, lb in ipairs(s.lbs) do list[#list + 1] = lb end
  end
  local out, marker = page_out(world, list, input, out_lb)
  return { LoadBalancers = out, NextMarker = marker }
end

local function delete_listener(world, l)
  local s = st(world)
  for _, rule in ipairs(l.rules) do s.rule_by_arn[rule.arn] = nil; s.tags[rule.arn] = nil end
  s.listener_by_arn[l.arn] = nil
  s.tags[l.arn] = nil
  remove_value(s.listeners, l)
  routing_changed(world)
  remove_value(l.lb.listeners, l)
end

function ops.DeleteLoadBalancer(world, input)
  local s = st(world)
  local lb = s.lb_by_arn[input.LoadBalancerArn]
  if not lb then return {} end -- AWS: deleting a missing load balancer succeeds
  if lb.attrs["deletion_protection.enabled"] == "true" then
    world:fail("OperationNotPermitted", "Load balancer '" .. lb.arn ..
      "' cannot be deleted because deletion protection is enabled")
  end
  while #lb.listeners > 0 do delete_listener(world, lb.listeners[1]) end
  s.lb_by_arn[lb.arn] = nil
  s.tags[lb.arn] = nil
  remove_value(s.lbs, lb)
  return {}
end

local function attr_list(attrs, defaults)
  local out = {}
  for i, kv in ipairs(defaults) do out[i] = { Key = kv[1], Value = attrs[kv[1]] } end
  return out
end

--[[ Modify*Attributes: every key must be one the resource has (and pass `check`, when given)
     before any is set, so a refused request changes nothing. Values are stored as strings,
     as AWS echoes them. ]]
local function set_attrs(world, attrs, given, what, check)
  for _, a in ipairs(given or {}) do
    if attrs[a.Key] == nil then
      world:fail("InvalidConfigurationRequest", what .. " attribute key '" .. tostring(a.Key) .. "' is not recognized")
    end
    if check then check(a) end
  end
  for _, a in ipairs(given or {}) do attrs[a.Key] = tostring(a.Value) end
end

function ops.DescribeLoadBalancerAttributes(world, input)
  local lb = lb_or_fail(world, input.LoadBalancerArn)
  return { Attributes = attr_list(lb.attrs, LB_ATTRIBUTES) }
end

function ops.ModifyLoadBalancerAttributes(world, input)
  local lb = lb_or_fail(world, input.LoadBalancerArn)
  set_attrs(world, lb.attrs, input.Attributes, "Load balancer")
  return { Attributes = attr_list(lb.attrs, LB_ATTRIBUTES) }
end

---------------------------------------------------------------- target groups

local function hc_settings(world, input, base)
  local hc = base and copy(base) or {
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

function ops.CreateTargetGroup(world, input)
  local s = st(world)
  local name = input.Name
  if not valid_name(name) then
    world:fail("ValidationError", "Target group name '" .. tostring(name) .. "' is invalid: up to 32 " ..
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
  local hc = hc_settings(world, input)
  local existing = find_by_name(s.tgs, name)
  if existing then
    -- idempotent for identical settings
    if existing.port == input.Port and existing.protocol == input.Protocol and existing.vpc == input.VpcId
        and existing.target_type == target_type then
      return { TargetGroups = { out_tg(world, existing) } }
    end
    world:fail("DuplicateTargetGroupName", "A target group with the same name '" .. name ..
      "' exists, but with different settings")
  end
  local hex = world:id(nil, 16)
  local tg = {
    arn = world:arn("elasticloadbalancing", "targetgroup/" .. name .. "/" .. hex),
    name = name, protocol = input.Protocol, port = input.Port, vpc = input.VpcId,
    target_type = target_type, protocol_version = input.ProtocolVersion or "HTTP1", hc = hc,
    attrs = {}, targets = {}, target_list = {},
  }
  for _, kv in ipairs(TG_ATTRIBUTES) do tg.attrs[kv[1]] = kv[2] end
  s.tgs[#s.tgs + 1] = tg
  s.tg_by_arn[tg.arn] = tg
  add_tags(world, tg.arn, input.Tags)
  return { TargetGroups = { out_tg(world, tg) } }
end

function ops.DescribeTargetGroups(world, input)
  local s = st(world)
  local list = named(world, input.TargetGroupArns, tg_or_fail, input.Names, s.tgs, "TargetGroupNotFound",
    "Target groups")
  if not list and input.LoadBalancerArn then
    local lb = lb_or_fail(world, input.LoadBalancerArn)
    list = {}
    for _, tg in ipairs(s.tgs) do
      for _, a in ipairs(tg_lb_arns(world, tg)) do
        if a == lb.arn then list[#list + 1] = tg break end
      end
    end
  elseif not list then
    list = {}
    for _, tg in ipairs(s.tgs) do list[#list + 1] = tg end
  end
  local out, marker = page_out(world, list, input, function(tg) return out_tg(world, tg) end)
  return { TargetGroups = out, NextMarker = marker }
end

function ops.ModifyTargetGroup(world, input)
  local tg = tg_or_fail(world, input.TargetGroupArn)
  tg.hc = hc_settings(world, input, tg.hc)
  return { TargetGroups = { out_tg(world, tg) } }
end

function ops.DeleteTargetGroup(world, input)
  local s = st(world)
  local tg = tg_or_fail(world, input.TargetGroupArn)
  if tg_in_use(world, tg) then
    world:fail("ResourceInUse", "Target group '" .. tg.arn .. "' is currently in use by a listener or a rule")
  end
  s.tg_by_arn[tg.arn] = nil
  s.tags[tg.arn] = nil
  remove_value(s.tgs, tg)
  return {}
end

function ops.DescribeTargetGroupAttributes(world, input)
  local tg = tg_or_fail(world, input.TargetGroupArn)
  return { Attributes = attr_list(tg.attrs, TG_ATTRIBUTES) }
end

function ops.ModifyTargetGroupAttributes(world, input)
  local tg = tg_or_fail(world, input.TargetGroupArn)
  set_attrs(world, tg.attrs, input.Attributes, "Target group", function(a)
    if a.Key == "deregistration_delay.timeout_seconds" then
      local n = tonumber(a.Value)
      if not n or n < 0 or n > 3600 or n ~= math.floor(n) then
        world:fail("ValidationError", "deregistration_delay.timeout_seconds must be an integer from 0 to 3600, got '" ..
          tostring(a.Value) .. "'")
      end
    end
  end)
  return { Attributes = attr_list(tg.attrs, TG_ATTRIBUTES) }
end

---------------------------------------------------------------- targets

local function target_key(id, port) return tostring(id) .. ":" .. tostring(port) end

local function register(world, tg, id, port, task_arn, az)
  port = port or tg.port
  local key = target_key(id, port)
  local t = {
    id = id, port = port, az = az, task_arn = task_arn, registered_at = world.now,
    state = "initial", reason = "Elb.RegistrationInProgress", passes = 0, fails = 0,
    next_check = world.now + REGISTRATION_SECONDS,
  }
  if not tg.targets[key] then tg.target_list[#tg.target_list + 1] = key end
  tg.targets[key] = t
  return t
end

local function drop_target(tg, key)
  tg.targets[key] = nil
  remove_value(tg.target_list, key)
end

local function deregister(world, tg, key)
  local t = tg.targets[key]
  if not t or t.state == "draining" then return false end
  local delay = tonumber(tg.attrs["deregistration_delay.timeout_seconds"]) or 300
  if delay <= 0 or not tg_in_use(world, tg) then
    drop_target(tg, key)
    return true
  end
  t.state, t.reason = "draining", "Target.DeregistrationInProgress"
  t.drain_until = world.now + delay
  world:at(t.drain_until, function()
    if tg.targets[key] == t then drop_target(tg, key) end
  end)
  return true
end

function ops.RegisterTargets(world, input)
  local tg = tg_or_fail(world, input.TargetGroupArn)
  for i, t in ipairs(input.Targets or {}) do
    if not t.Id then world:fail("ValidationError", "Targets.member." .. i .. ".Id is required") end
    local port = t.Port or tg.port
    if not port then world:fail("ValidationError", "Targets.member." .. i .. ": a port is required") end
  end
  for _, t in ipairs(input.Targets or {}) do
    local existing = tg.targets[target_key(t.Id, t.Port or tg.port)]
    if not existing or existing.state == "draining" then
      register(world, tg, t.Id, t.Port, nil, t.AvailabilityZone)
    end
  end
  return {}
end

function ops.DeregisterTargets(world, input)
  local tg = tg_or_fail(world, input.TargetGroupArn)
  local missing = {}
  for _, t in ipairs(input.Targets or {}) do
    if not tg.targets[target_key(t.Id, t.Port or tg.port)] then missing[#missing + 1] = "'" .. t.Id .. "'" end
  end
  if #missing > 0 then
    world:fail("InvalidTarget", "The following targets are not registered: " .. table.concat(missing, ", "))
  end
  for _, t in ipairs(input.Targets or {}) do deregister(world, tg, target_key(t.Id, t.Port or tg.port)) end
  return {}
end

-- The state a target shows now (a target group without a load balancer shows "unused").
local function shown_state(world, tg, t, in_use)
  if t.state == "draining" then return "draining", "Target.DeregistrationInProgress" end
  if not in_use then return "unused", "Target.NotInUse" end
  return t.state, t.reason
end

local function out_health(tg, t, state, reason)
  local d = {
    Target = { Id = t.id, Port = t.port, AvailabilityZone = t.az },
    HealthCheckPort = tg.hc.port == "traffic-port" and tostring(t.port) or tg.hc.port,
    TargetHealth = { State = state, Reason = reason, Description = reason and REASON_TEXT[reason] or nil },
  }
  return d
end

function ops.DescribeTargetHealth(world, input)
  local tg = tg_or_fail(world, input.TargetGroupArn)
  local in_use = tg_in_use(world, tg)
  local out = {}
  if input.Targets and #input.Targets > 0 then
    for _, q in ipairs(input.Targets) do
      local t = tg.targets[target_key(q.Id, q.Port or tg.port)]
      if t then
        out[#out + 1] = out_health(tg, t, shown_state(world, tg, t, in_use))
      else
        out[#out + 1] = out_health(tg, { id = q.Id, port = q.Port or tg.port }, "unused", "Target.NotRegistered")
      end
    end
  else
    for _, key in ipairs(tg.target_list) do
      local t = tg.targets[key]
      out[#out + 1] = out_health(tg, t, shown_state(world, tg, t, in_use))
    end
  end
  return { TargetHealthDescriptions = out }
end

-- One health check of target t: true (pass), false, reason (fail) or nil (no verdict).
local function check(world, t)
  if not t.task_arn then return true end
  local ecs = world.svc.ecs
  local h = ecs and ecs.task_health and ecs.task_health(world, t.task_arn)
  if h == "healthy" then return true end
  if h == "starting" then return nil end
  if h == "unhealthy" then return false, "Target.ResponseCodeMismatch" end
  return false, "Target.FailedHealthChecks"
end

local function tick_tg(world, tg, now)
  local in_use = tg_in_use(world, tg)
  for _, key in ipairs(tg.target_list) do
    local t = tg.targets[key]
    if t.state ~= "draining" then
      if not in_use then
        -- no checks without a load balancer; restart from scratch once attached
        t.state, t.reason, t.passes, t.fails, t.next_check = "initial", "Elb.RegistrationInProgress", 0, 0, nil
      elseif not t.next_check then
        t.next_check = now + REGISTRATION_SECONDS
      elseif now >= t.next_check then
        t.next_check = t.next_check + tg.hc.interval
        if t.next_check <= now then t.next_check = now + tg.hc.interval end
        if not tg.hc.enabled then
          t.state, t.reason = "healthy", nil
        else
          local ok, why = check(world, t)
          if ok == true then
            t.passes, t.fails = t.passes + 1, 0
            if t.state ~= "healthy" then
              if t.passes >= tg.hc.healthy then t.state, t.reason = "healthy", nil
              elseif t.state == "initial" then t.reason = "Elb.InitialHealthChecking" end
            end
          elseif ok == false then
            t.fails, t.passes = t.fails + 1, 0
            if t.fails >= tg.hc.unhealthy then t.state, t.reason = "unhealthy", why
            elseif t.state == "initial" then t.reason = "Elb.InitialHealthChecking" end
          elseif t.state == "initial" then
            t.reason = "Elb.InitialHealthChecking"
          end
        end
      end
    end
  end
end

function M.tick(world, t)
  for _, tg in ipairs(st(world).tgs) do tick_tg(world, tg, t) end
end

---------------------------------------------------------------- listeners

local function new_rule_arn(world, l)
  return world:arn("elasticloadbalancing", string.format("listener-rule/app/%s/%s/%s/%s",
    l.lb.name, l.lb.hex, l.hex, world:id(nil, 16)))
end

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
  local s = st(world)
  local lb = lb_or_fail(world, input.LoadBalancerArn)
  local protocol = input.Protocol or "HTTP"
  check_protocol(world, protocol)
  local actions = parse_actions(world, input.DefaultActions, lb)
  check_port_free(world, lb, input.Port)
  local hex = world:id(nil, 16)
  local l = {
    arn = world:arn("elasticloadbalancing", string.format("listener/app/%s/%s/%s", lb.name, lb.hex, hex)),
    hex = hex, lb = lb, port = input.Port, protocol = protocol,
    ssl_policy = input.SslPolicy or (protocol == "HTTPS" and "ELBSecurityPolicy-2016-08" or nil),
    certificates = copy(input.Certificates or {}), rules = {},
  }
  local default = { listener = l, is_default = true, actions = actions }
  default.arn = new_rule_arn(world, l)
  l.default_rule = default
  l.rules[1] = default   -- rules stay sorted by priority, the default rule last
  s.rule_by_arn[default.arn] = default
  s.listeners[#s.listeners + 1] = l
  routing_changed(world)
  s.listener_by_arn[l.arn] = l
  lb.listeners[#lb.listeners + 1] = l
  add_tags(world, l.arn, input.Tags)
  return { Listeners = { out_listener(l) } }
end

function ops.DescribeListeners(world, input)
  local list = named_or_children(world, input.ListenerArns, listener_or_fail, input.LoadBalancerArn, lb_or_fail,
    "listeners", "You must specify either listener ARNs or a load balancer ARN")
  local out, marker = page_out(world, list, input, out_listener)
  return { Listeners = out, NextMarker = marker }
end

function ops.ModifyListener(world, input)
  local l = listener_or_fail(world, input.ListenerArn)
  if input.Protocol then check_protocol(world, input.Protocol) end
  if input.Port and input.Port ~= l.port then check_port_free(world, l.lb, input.Port) end
  local actions = input.DefaultActions and parse_actions(world, input.DefaultActions, l.lb)
  if input.Port then l.port = input.Port end
  if input.Protocol then l.protocol = input.Protocol end
  if input.SslPolicy then l.ssl_policy = input.SslPolicy end
  if l.protocol == "HTTPS" and not l.ssl_policy then l.ssl_policy = "ELBSecurityPolicy-2016-08" end
  if input.Certificates then l.certificates = copy(input.Certificates) end
  if actions then l.default_rule.actions = actions end
  routing_changed(world)
  return { Listeners = { out_listener(l) } }
end

function ops.DeleteListener(world, input)
  delete_listener(world, listener_or_fail(world, input.ListenerArn))
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

function ops.CreateRule(world, input)
  local s = st(world)
  local l = listener_or_fail(world, input.ListenerArn)
  local p = input.Priority
  if not valid_priority(p) then
    world:fail("ValidationError", "Priority must be an integer from 1 to 50000, got " .. tostring(p))
  end
  local conditions = parse_conditions(world, input.Conditions)
  local actions = parse_actions(world, input.Actions, l.lb)
  if priority_taken(l, p) then world:fail("PriorityInUse", "Priority '" .. p .. "' is currently in use") end
  local rule = { listener = l, is_default = false, priority = math.tointeger(p) or p,
                 conditions = conditions, actions = actions }
  rule.arn = new_rule_arn(world, l)
  l.rules[#l.rules + 1] = rule
  routing_changed(world)
  sort_rules(l)
  s.rule_by_arn[rule.arn] = rule
  add_tags(world, rule.arn, input.Tags)
  return { Rules = { out_rule(rule) } }
end

function ops.DescribeRules(world, input)
  local list = named_or_children(world, input.RuleArns, rule_or_fail, input.ListenerArn, listener_or_fail,
    "rules", "You must specify either listener ARN or rule ARNs")
  local out, marker = page_out(world, list, input, out_rule)
  return { Rules = out, NextMarker = marker }
end

function ops.ModifyRule(world, input)
  local rule = rule_or_fail(world, input.RuleArn)
  if rule.is_default and input.Conditions then
    world:fail("OperationNotPermitted", "The conditions of a listener's default rule cannot be modified")
  end
  local conditions = input.Conditions and parse_conditions(world, input.Conditions)
  local actions = input.Actions and parse_actions(world, input.Actions, rule.listener.lb)
  if conditions then rule.conditions = conditions end
  if actions then rule.actions = actions end
  routing_changed(world)
  return { Rules = { out_rule(rule) } }
end

function ops.DeleteRule(world, input)
  local s = st(world)
  local rule = rule_or_fail(world, input.RuleArn)
  if rule.is_default then world:fail("OperationNotPermitted", "A listener's default rule cannot be deleted") end
  remove_value(rule.listener.rules, rule)
  routing_changed(world)
  s.rule_by_arn[rule.arn] = nil
  s.tags[rule.arn] = nil
  return {}
end

function ops.SetRulePriorities(world, input)
  local changes = {}
  for i, pair in ipairs(input.RulePriorities or {}) do
    local rule = rule_or_fail(world, pair.RuleArn)
    if rule.is_default then
      world:fail("OperationNotPermitted", "The priority of a listener's default rule cannot be changed")
    end
    local p = pair.Priority
    if not valid_priority(p) then
      world:fail("ValidationError", "RulePriorities.member." .. i .. ".Priority must be an integer from 1 to 50000")
    end
    changes[#changes + 1] = { rule = rule, priority = math.tointeger(p) or p }
  end
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
  for l in pairs(by_listener) do sort_rules(l) end
  local rules = {}
  for i, r in ipairs(out) do rules[i] = out_rule(r) end
  return { Rules = rules }
end

---------------------------------------------------------------- tags

local function resource_exists(world, arn)
  local s = st(world)
  if s.lb_by_arn[arn] or s.tg_by_arn[arn] or s.listener_by_arn[arn] or s.rule_by_arn[arn] then return true end
  if arn:find(":targetgroup/", 1, true) then world:fail("TargetGroupNotFound", "Target groups '" .. arn .. "' not found") end
  if arn:find(":listener%-rule/") then world:fail("RuleNotFound", "One or more rules not found") end
  if arn:find(":listener/", 1, true) then world:fail("ListenerNotFound", "Listener '" .. arn .. "' not found") end
  world:fail("LoadBalancerNotFound", "Load balancer '" .. arn .. "' not found")
end

function ops.AddTags(world, input)
  for _, arn in ipairs(input.ResourceArns or {}) do resource_exists(world, arn) end
  for _, arn in ipairs(input.ResourceArns or {}) do add_tags(world, arn, input.Tags) end
  return {}
end

function ops.RemoveTags(world, input)
  local s = st(world)
  for _, arn in ipairs(input.ResourceArns or {}) do resource_exists(world, arn) end
  for _, arn in ipairs(input.ResourceArns or {}) do
    local list = s.tags[arn] or {}
    for _, key in ipairs(input.TagKeys or {}) do
      for i = #list, 1, -1 do if list[i].Key == key then table.remove(list, i) end end
    end
  end
  return {}
end

function ops.DescribeTags(world, input)
  local s = st(world)
  local out = {}
  for _, arn in ipairs(input.ResourceArns or {}) do
    resource_exists(world, arn)
    out[#out + 1] = { ResourceArn = arn, Tags = copy(s.tags[arn] or {}) }
  end
  return { TagDescriptions = out }
end

---------------------------------------------------------------- cross-service

-- register(world, tg_arn, target_id, port, task_arn): an ECS task joins a target group.
function M.register(world, tg_arn, target_id, port, task_arn)
  local tg = tg_or_fail(world, tg_arn)
  return register(world, tg, target_id, port, task_arn)
end

-- deregister(world, tg_arn, target_id, port) -> true if the target was registered.
function M.deregister(world, tg_arn, target_id, port)
  local tg = st(world).tg_by_arn[tg_arn]
  if not tg then return false end
  return deregister(world, tg, target_key(target_id, port or tg.port))
end

--[[ target_group(world, arn_or_name) -> the target group's state table or nil:
     { arn, name, port, protocol, hc = {interval, healthy, ...}, attrs = {key=value},
       targets = { ["id:port"] = { id, port, task_arn, state, reason, ... } },
       target_list = { "id:port", ... } (registration order) } ]]
function M.target_group(world, arn_or_name)
  local s = st(world)
  return s.tg_by_arn[arn_or_name] or find_by_name(s.tgs, arn_or_name)
end

-- target_health(world, tg_arn, id, port) -> state, reason as DescribeTargetHealth shows them.
function M.target_health(world, tg_arn, target_id, port)
  local tg = st(world).tg_by_arn[tg_arn]
  if not tg then return nil end
  local t = tg.targets[target_key(target_id, port or tg.port)]
  if not t then return "unused", "Target.NotRegistered" end
  return shown_state(world, tg, t, tg_in_use(world, tg))
end

-- healthy_count(world, tg_arn) -> number of targets in state "healthy".
function M.healthy_count(world, tg_arn)
  local tg = st(world).tg_by_arn[tg_arn]
  if not tg or not tg_in_use(world, tg) then return 0 end
  local n = 0
  for _, key in ipairs(tg.target_list) do
    if tg.targets[key].state == "healthy" then n = n + 1 end
  end
  return n
end

-- The rule (default or not) behind a listener or rule ARN.
local function forward_rule(world, arn)
  local s = st(world)
  local l = s.listener_by_arn[arn]
  if l then return l.default_rule end
  local r = s.rule_by_arn[arn]
  if r then return r end
  if arn and arn:find(":listener/", 1, true) then
    world:fail("ListenerNotFound", "Listener '" .. tostring(arn) .. "' not found")
  end
  world:fail("RuleNotFound", "One or more rules not found")
end

local function forward_action(rule)
  for _, a in ipairs(rule.actions) do if a.type == "forward" then return a end end
end

-- get_forward(world, listener_or_rule_arn) -> { [tg_arn] = weight } (empty if not a forward).
function M.get_forward(world, arn)
  local a = forward_action(forward_rule(world, arn))
  local out = {}
  for _, t in ipairs(a and a.tgs or {}) do out[t.arn] = t.weight end
  return out
end

--[[ set_forward(world, listener_or_rule_arn, weights): replaces the forward
     action's target groups. weights = { [tg_arn] = w } or an array of
     { TargetGroupArn=, Weight= }. Target groups already in the action keep
     their order; new ones follow in ARN order. Raises like ModifyRule. ]]
function M.set_forward(world, arn, weights)
  local rule = forward_rule(world, arn)
  local map, order = {}, {}
  if weights[1] then
    for _, t in ipairs(weights) do map[t.TargetGroupArn] = t.Weight; order[#order + 1] = t.TargetGroupArn end
  else
    local old = forward_action(rule)
    for _, t in ipairs(old and old.tgs or {}) do
      if weights[t.arn] ~= nil then order[#order + 1] = t.arn end
    end
    local fresh = {}
    for k in pairs(weights) do
      local present = false
      for _, o in ipairs(order) do if o == k then present = true end end
      if not present then fresh[#fresh + 1] = k end
    end
    table.sort(fresh)
    for _, k in ipairs(fresh) do order[#order + 1] = k end
    map = weights
  end
  local tgs = {}
  for _, k in ipairs(order) do tgs[#tgs + 1] = { TargetGroupArn = k, Weight = map[k] } end
  local old = forward_action(rule)
  local sticky = old and old.sticky or { enabled = false }
  local action = { Type = "forward", ForwardConfig = { TargetGroups = tgs,
    TargetGroupStickinessConfig = { Enabled = sticky.enabled, DurationSeconds = sticky.duration } } }
  local parsed = parse_actions(world, { action }, rule.listener.lb)
  parsed[1].order = old and old.order
  local out = {}
  for _, a in ipairs(rule.actions) do
    if a.type == "forward" then out[#out + 1] = parsed[1] else out[#out + 1] = a end
  end
  if #out == 0 then out[1] = parsed[1] end
  rule.actions = out
  routing_changed(world)
end

--[[ traffic(world) -> { [tg_arn] = { rps=, weight=, lb= } } for every target group.

     Each load balancer receives world.traffic.rps requests/s (default 200) on
     its production listener: port 443, else 80, else its lowest port. Other
     listeners (a blue/green test listener) get nothing unless the scenario
     gives them a rate: world.traffic.listeners = { [port] = rps } (this also
     overrides the production listener's rate when its port is listed).
     Within a listener, the rule with the lowest priority whose conditions all
     match every request (path-pattern or host-header "*" or "/*") takes all of
     it; without one, the default rule does. The forward weights split it:
     w_i / sum(w). weight = percent of its load balancer's traffic the target
     group receives; target groups with no traffic have rps 0, weight 0. ]]
local function matches_all(rule)
  for _, c in ipairs(rule.conditions or {}) do
    if not c.values then return false end
    local any = false
    for _, v in ipairs(c.values) do
      if v == "*" or (c.Field == "path-pattern" and v == "/*") then any = true end
    end
    if not any then return false end
  end
  return true
end

local function listener_rps(world, l, production)
  local tr = world.traffic or {}
  local per = tr.listeners
  if per and (per[l.port] or per[tostring(l.port)]) then return per[l.port] or per[tostring(l.port)] end
  if l == production then return tr.rps or 200 end
  return 0
end

local function production_listener(lb)
  local by_port, lowest = {}, nil
  for _, l in ipairs(lb.listeners) do
    by_port[l.port] = l
    if not lowest or l.port < lowest.port then lowest = l end
  end
  return by_port[443] or by_port[80] or lowest
end
M.production_listener = production_listener

function M.traffic(world)
  local s = st(world)
  local out = {}
  for _, tg in ipairs(s.tgs) do out[tg.arn] = { rps = 0, weight = 0 } end
  for _, lb in ipairs(s.lbs) do
    local prod = production_listener(lb)
    local total = 0
    local got = {}
    for _, l in ipairs(lb.listeners) do
      local rps = listener_rps(world, l, prod)
      local rule = l.default_rule
      for _, r in ipairs(l.rules) do
        if not r.is_default and matches_all(r) then rule = r break end
      end
      local a = forward_action(rule)
      if a and rps > 0 then
        local sum = 0
        for _, t in ipairs(a.tgs) do sum = sum + t.weight end
        for _, t in ipairs(a.tgs) do
          got[t.arn] = (got[t.arn] or 0) + (sum > 0 and rps * t.weight / sum or 0)
        end
      end
      total = total + rps
    end
    local used = {}
    for _, l in ipairs(lb.listeners) do listener_tg_arns(l, used) end
    for tg_arn in pairs(used) do
      local e = out[tg_arn]
      if e then
        e.lb = lb.arn
        e.rps = got[tg_arn] or 0
        e.weight = total > 0 and e.rps / total * 100 or 0
      end
    end
  end
  return out
end

return M
