--[[
Where the simulated load balancers send requests: the forward weights other
services read and change (CodeDeploy and ECS shift traffic through
get_forward/set_forward, as they would through ModifyListener/ModifyRule) and
`traffic`, the requests per second each target group receives, which the
world's traffic model (sim/cloudwatch/alb.lua) turns into metrics.
]]
local state = require "ecsplay.sim.elbv2.state"
local actions = require "ecsplay.sim.elbv2.actions"
local hosts_traffic = require "ecsplay.sim.elbv2.hosts"

local M = {}

-- The rule (default or not) behind a listener or rule ARN.
local function forward_rule(world, arn)
  local s = state.st(world)
  local l = s.listener_by_arn[arn]
  if l then return l.default_rule end
  local r = s.rule_by_arn[arn]
  if r then return r end
  if arn and arn:find(":listener/", 1, true) then
    world:fail("ListenerNotFound", "Listener '" .. tostring(arn) .. "' not found")
  end
  world:fail("RuleNotFound", "One or more rules not found")
end

-- get_forward(world, listener_or_rule_arn) -> { [tg_arn] = weight } (empty if not a forward).
function M.get_forward(world, arn)
  local a = actions.forward_action(forward_rule(world, arn))
  local out = {}
  for _, t in ipairs(a and a.tgs or {}) do out[t.arn] = t.weight end
  return out
end

--[[ The target groups of set_forward's `weights` in the order the action lists them: an
     array keeps its order; a map keeps the order of those already in `old` (the current
     forward action), then the new ones in ARN order. Returns the order and the weights by ARN. ]]
local function forward_order(old, weights)
  local map, order = {}, {}
  if weights[1] then
    for _, t in ipairs(weights) do map[t.TargetGroupArn] = t.Weight; order[#order + 1] = t.TargetGroupArn end
    return order, map
  end
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
  return order, weights
end

--[[ set_forward(world, listener_or_rule_arn, weights): replaces the forward
     action's target groups. weights = { [tg_arn] = w } or an array of
     { TargetGroupArn=, Weight= }. Target groups already in the action keep
     their order; new ones follow in ARN order. Raises like ModifyRule. ]]
function M.set_forward(world, arn, weights)
  local rule = forward_rule(world, arn)
  local old = actions.forward_action(rule)
  local order, map = forward_order(old, weights)
  local tgs = {}
  for _, k in ipairs(order) do tgs[#tgs + 1] = { TargetGroupArn = k, Weight = map[k] } end
  local sticky = old and old.sticky or { enabled = false }
  local action = { Type = "forward", ForwardConfig = { TargetGroups = tgs,
    TargetGroupStickinessConfig = { Enabled = sticky.enabled, DurationSeconds = sticky.duration } } }
  local parsed = actions.parse_actions(world, { action }, rule.listener.lb)
  parsed[1].order = old and old.order
  local out = {}
  for _, a in ipairs(rule.actions) do
    if a.type == "forward" then out[#out + 1] = parsed[1] else out[#out + 1] = a end
  end
  if #out == 0 then out[1] = parsed[1] end
  rule.actions = out
  state.routing_changed(world, rule.listener)
end

---------------------------------------------------------------- traffic

-- Does a rule match every request (all its conditions path-pattern or host-header "*" or "/*")?
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

-- A load balancer's production listener: port 443, else 80, else its lowest port.
function M.production_listener(lb)
  local by_port, lowest = {}, nil
  for _, l in ipairs(lb.listeners) do
    by_port[l.port] = l
    if not lowest or l.port < lowest.port then lowest = l end
  end
  return by_port[443] or by_port[80] or lowest
end

-- A load balancer's requests per second by target group, and its total.
local function lb_split(world, lb)
  local prod = M.production_listener(lb)
  local hosts = (world.traffic or {}).hosts
  local total = 0
  local got = {}
  for _, l in ipairs(lb.listeners) do
    local rps = listener_rps(world, l, prod)
    local rule = l.default_rule
    for _, r in ipairs(l.rules) do
      if not r.is_default and matches_all(r) then rule = r break end
    end
    hosts_traffic.add_forward(got, rule, rps)
    total = total + rps
    if hosts and l == prod then total = total + hosts_traffic.add(got, l, hosts) end
  end
  return got, total
end

--[[ traffic(world) -> { [tg_arn] = { rps=, weight=, lb= } } for every target group.

     Each load balancer receives world.traffic.rps requests/s (default 200) on
     its production listener: port 443, else 80, else its lowest port. Other
     listeners (a blue/green test listener) get nothing unless the scenario
     gives them a rate: world.traffic.listeners = { [port] = rps } (this also
     overrides the production listener's rate when its port is listed).
     world.traffic.hosts = { [host] = rps } adds host-based traffic: GET "/"
     with that Host header, arriving at the production listener of every load
     balancer where a rule's host-header condition names the host, and routed
     by the first rule whose conditions hold for it (sim/elbv2/hosts.lua).
     Within a listener, the rule with the lowest priority whose conditions all
     match every request (path-pattern or host-header "*" or "/*") takes all of
     it; without one, the default rule does. The forward weights split it:
     w_i / sum(w). weight = percent of its load balancer's traffic the target
     group receives; target groups with no traffic have rps 0, weight 0. ]]
function M.traffic(world)
  local s = state.st(world)
  local out = {}
  for _, tg in ipairs(s.tgs) do out[tg.arn] = { rps = 0, weight = 0 } end
  for _, lb in ipairs(s.lbs) do
    local got, total = lb_split(world, lb)
    local used = {}
    for _, l in ipairs(lb.listeners) do state.listener_tg_arns(l, used) end
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

--[[ routed(world) -> the target groups a load balancer routes to, in ARN order:
     { {arn=, rps=, weight=, lb=, lb_dim=}, ... } as traffic() gives them, lb_dim the load
     balancer's CloudWatch dimension. The ALB metrics ask every minute; kept in world.memo
     and brought up to date one load balancer at a time: a routing change marks its load
     balancer (state.routing_changed), and only that one's split is worked out again; target
     groups created or deleted, or other traffic, start over. The list is a new table only
     when which target groups are routed changes (a weight moving updates its entries).
     Read-only for the caller. ]]
local function by_arn(a, b) return a.arn < b.arn end

-- Brings the entries of load balancer lb up to date; → whether the routed set changed.
local function reroute(world, memo, lb, alive)
  local changed, used = false, {}
  if alive then
    local got, total = lb_split(world, lb)
    for _, l in ipairs(lb.listeners) do state.listener_tg_arns(l, used) end
    local s = state.st(world)
    for arn in pairs(used) do
      if s.tg_by_arn[arn] then
        local e = memo.by_arn[arn]
        if not e then
          e = { arn = arn }
          memo.by_arn[arn] = e
          changed = true
        end
        if e.lb ~= lb.arn then e.lb, e.lb_dim = lb.arn, state.arn_suffix(lb.arn, "lb") end
        e.rps = got[arn] or 0
        e.weight = total > 0 and e.rps / total * 100 or 0
      end
    end
  end
  for arn, e in pairs(memo.by_arn) do
    if e.lb == lb.arn and not used[arn] then
      memo.by_arn[arn] = nil
      changed = true
    end
  end
  return changed
end

function M.routed(world)
  local s = state.st(world)
  local tr = world.traffic or {}
  local memo = world.memo.elbv2_routed
  if memo and memo.tg_seq == s.tg_seq and memo.tgs == #s.tgs and memo.lbs == #s.lbs and memo.traffic == tr
      and memo.rps == tr.rps and memo.listeners == tr.listeners and memo.hosts == tr.hosts then
    if next(memo.dirty) == nil then return memo.list end
    local changed = false
    for lb in pairs(memo.dirty) do
      if reroute(world, memo, lb, s.lb_by_arn[lb.arn] == lb) then changed = true end
    end
    memo.dirty = {}
    if changed then
      local list = {}
      for _, e in pairs(memo.by_arn) do list[#list + 1] = e end
      table.sort(list, by_arn)
      memo.list = list
    end
    return memo.list
  end
  local list, index = {}, {}
  for arn, e in pairs(M.traffic(world)) do
    if e.lb then
      local entry = { arn = arn, rps = e.rps, weight = e.weight, lb = e.lb, lb_dim = state.arn_suffix(e.lb, "lb") }
      list[#list + 1] = entry
      index[arn] = entry
    end
  end
  table.sort(list, by_arn)
  world.memo.elbv2_routed = { tg_seq = s.tg_seq, tgs = #s.tgs, lbs = #s.lbs, traffic = tr, rps = tr.rps,
    listeners = tr.listeners, hosts = tr.hosts, list = list, by_arn = index, dirty = {} }
  return list
end

return M
