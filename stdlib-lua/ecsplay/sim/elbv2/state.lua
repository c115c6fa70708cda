--[[
What every part of the simulated ELBv2 shares: the state table and its
look-ups (raising AWS's not-found errors), Marker paging, names, tags,
attributes, and which load balancers route to which target group.

State (world.state.elbv2): lbs, tgs, listeners (lists in creation order, so
every Describe answers in a stable order) with lb_by_arn, tg_by_arn,
listener_by_arn, rule_by_arn, and lb_by_name, tg_by_name (names are unique,
so a look-up by name costs the same however many there are); tags (arn -> {
{Key=, Value=}, ... }); routing_version and the tg_listeners cache (see
routing_changed).
]]
local M = {}

function M.st(world) return world.state.elbv2 end

function M.new_state()
  return {
    lbs = {}, lb_by_arn = {}, lb_by_name = {},
    tgs = {}, tg_by_arn = {}, tg_by_name = {},
    listeners = {}, listener_by_arn = {},
    rule_by_arn = {},
    tags = {},            -- arn -> { {Key=, Value=}, ... }
  }
end

function M.remove_value(list, v)
  for i, x in ipairs(list) do if x == v then table.remove(list, i) return true end end
  return false
end

---------------------------------------------------------------- paging

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
function M.page_out(world, list, input, render)
  local pg, marker = page(world, list, input)
  local out = {}
  for i, x in ipairs(pg) do out[i] = render(x) end
  return out, marker
end

---------------------------------------------------------------- look-ups

-- A look-up by ARN in one of the state's indexes that raises AWS's not-found error for that kind
-- (`message` is a format for the ARN; AWS does not name the rule it did not find).
local function finder(index, code, message)
  return function(world, arn)
    local x = M.st(world)[index][arn]
    if not x then world:fail(code, string.format(message, tostring(arn))) end
    return x
  end
end

M.lb_or_fail = finder("lb_by_arn", "LoadBalancerNotFound", "Load balancer '%s' not found")
M.tg_or_fail = finder("tg_by_arn", "TargetGroupNotFound", "Target groups '%s' not found")
M.listener_or_fail = finder("listener_by_arn", "ListenerNotFound", "Listener '%s' not found")
M.rule_or_fail = finder("rule_by_arn", "RuleNotFound", "One or more rules not found")

-- Load balancer and target group names follow one AWS rule (a load balancer adds a reserved prefix).
function M.valid_name(name)
  return type(name) == "string" and name:match("^[%w][%w%-]*$") ~= nil and #name <= 32 and name:sub(-1) ~= "-"
end

--[[ DescribeLoadBalancers and DescribeTargetGroups: the objects named by ARN (each must exist)
     or by name (`by_name`: the state's name index; AWS's message shows the missing name in
     brackets); nil when the call names neither, so that the caller picks its own default. ]]
function M.named(world, arns, find, names, by_name, code, what)
  local list = {}
  if arns and #arns > 0 then
    for _, arn in ipairs(arns) do list[#list + 1] = find(world, arn) end
  elseif names and #names > 0 then
    for _, name in ipairs(names) do
      local x = by_name[name]
      if not x then world:fail(code, what .. " '[" .. name .. "]' not found") end
      list[#list + 1] = x
    end
  else
    return nil
  end
  return list
end

--[[ DescribeListeners and DescribeRules take either the objects' own ARNs (each must exist) or
     their parent's ARN (all its children, in its order); AWS refuses a call with neither. ]]
function M.named_or_children(world, arns, find, parent_arn, find_parent, field, neither)
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

---------------------------------------------------------------- tags and attributes

-- Sets tags on a resource (a key given again replaces its value).
function M.add_tags(world, arn, tags)
  if not tags then return end
  local s = M.st(world)
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

-- The attributes as Describe*Attributes answer them, in the order of `defaults`.
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
    if check then check(world, a) end
  end
  for _, a in ipairs(given or {}) do attrs[a.Key] = tostring(a.Value) end
end

--[[ Describe*Attributes and Modify*Attributes of one kind of resource, added to `ops`:
     spec = { kind = "LoadBalancer" | "TargetGroup" (the operations' and ARN parameter's
     name), find = look-up by ARN, defaults = { {key, value}, ... }, what = for messages,
     check = function(world, attribute) or nil }. ]]
function M.attribute_ops(ops, spec)
  local arn_param = spec.kind .. "Arn"
  ops["Describe" .. spec.kind .. "Attributes"] = function(world, input)
    local x = spec.find(world, input[arn_param])
    return { Attributes = attr_list(x.attrs, spec.defaults) }
  end
  ops["Modify" .. spec.kind .. "Attributes"] = function(world, input)
    local x = spec.find(world, input[arn_param])
    set_attrs(world, x.attrs, input.Attributes, spec.what, spec.check)
    return { Attributes = attr_list(x.attrs, spec.defaults) }
  end
end

-- A resource's default attributes (the defaults list as a key -> value table).
function M.default_attrs(defaults)
  local attrs = {}
  for _, kv in ipairs(defaults) do attrs[kv[1]] = kv[2] end
  return attrs
end

---------------------------------------------------------------- routing

-- Every forward target group arn referenced by a listener (default rule and rules).
function M.listener_tg_arns(l, out)
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
     routing_changed, naming the listener); target health asks on every tick for
     every target, and every ModifyListener checks its target groups, so the
     answer is kept per listener and only a changed listener's part is redone:
     a fleet of a thousand listeners shifting weights costs per shift, not per
     listener. Without a listener, everything is redone. ]]
function M.routing_changed(world, listener)
  local s = M.st(world)
  s.routing_version = (s.routing_version or 0) + 1
  -- routing.routed works out again the split of this listener's load balancer alone
  local routed = world.memo.elbv2_routed
  if routed and listener then routed.dirty[listener.lb] = true else world.memo.elbv2_routed = nil end
  if listener and s.tg_listeners then
    s.dirty_listeners[listener] = true
  else
    s.tg_listeners = nil
  end
end

---------------------------------------------------------------- target groups to visit

--[[ The target groups the health-check tick (sim/elbv2/targets.lua) must visit: a set, kept
     in world.memo as it is derived from the state (and rebuilt as "every group" when missing).
     A group leaves it when a visit would change nothing (settled, or not used by any load
     balancer) and comes back with anything that could change that: a target registered,
     draining, gone or changing health (targets.lua wakes it), or a listener starting or
     stopping forwarding to it (contribute below). The tick then costs what moves, not the
     account's size. ]]
function M.awake(world)
  local set = world.memo.elbv2_awake
  if not set then
    set = {}
    for _, tg in ipairs(M.st(world).tgs) do set[tg] = true end
    world.memo.elbv2_awake = set
  end
  return set
end

function M.wake(world, tg)
  local set = world.memo.elbv2_awake
  if set then set[tg] = true end -- (no set yet: it starts with every group)
end

-- Wakes the target groups of `arns` that are not in `except` (a set of ARNs, or nil).
local function wake_arns(world, s, arns, except)
  local set = world.memo.elbv2_awake
  if not set then return end
  for arn in pairs(arns or {}) do
    local tg = s.tg_by_arn[arn]
    if tg and not (except and except[arn]) then set[tg] = true end
  end
end

---------------------------------------------------------------- which listeners use a target group

-- A listener's part: the target groups it forwards to (none once it is deleted). Those it
-- stopped or started forwarding to may have changed whether they are in use: woken (a group
-- it forwards to before and after is in use both times).
local function contribute(world, s, l)
  local old = s.listener_tgs[l]
  for arn in pairs(old or {}) do
    local set = s.tg_listeners[arn]
    if set then set[l] = nil end
  end
  local tgs = s.listener_by_arn[l.arn] == l and M.listener_tg_arns(l) or nil
  s.listener_tgs[l] = tgs
  wake_arns(world, s, old, tgs)
  wake_arns(world, s, tgs, old)
  for arn in pairs(tgs or {}) do
    local set = s.tg_listeners[arn]
    if not set then set = {} s.tg_listeners[arn] = set end
    set[l] = true
  end
end

-- Brings the index of the listeners forwarding to each target group up to date.
function M.refresh_routing(world)
  local s = M.st(world)
  if not s.tg_listeners then
    s.tg_listeners, s.listener_tgs, s.dirty_listeners = {}, {}, {}
    world.memo.elbv2_awake = nil -- every group is visited again
    for _, l in ipairs(s.listeners) do contribute(world, s, l) end
  elseif next(s.dirty_listeners) then
    for l in pairs(s.dirty_listeners) do contribute(world, s, l) end
    s.dirty_listeners = {}
  end
  return s
end

-- The listeners forwarding to a target group: a set (the index brought up to date first).
local function tg_listener_set(world, tg)
  return M.refresh_routing(world).tg_listeners[tg.arn]
end

-- The load balancers using a target group, in the creation order of their listeners.
function M.tg_lb_arns(world, tg)
  local ls = {}
  for l in pairs(tg_listener_set(world, tg) or {}) do ls[#ls + 1] = l end
  table.sort(ls, function(a, b) return (a.seq or 0) < (b.seq or 0) end)
  local out, seen = {}, {}
  for _, l in ipairs(ls) do
    if not seen[l.lb.arn] then
      seen[l.lb.arn] = true
      out[#out + 1] = l.lb.arn
    end
  end
  return out
end

-- Asked for every target on every tick: without building tg_lb_arns' sorted list.
function M.tg_in_use(world, tg)
  local set = tg_listener_set(world, tg)
  return set ~= nil and next(set) ~= nil
end

-- "arn:...:loadbalancer/app/web/abc" -> "app/web/abc"; targetgroup keeps its prefix (CloudWatch dimensions).
function M.arn_suffix(arn, kind)
  if kind == "lb" then return (arn:match(":loadbalancer/(.+)$")) end
  return (arn:match(":(targetgroup/.+)$"))
end

return M
