--[[
Reading and moving weighted traffic on an ALB listener rule (or a listener's
default action). Every change is read back: a ModifyRule that answered 200
but left other weights is an error, not a success.
]]
local duration = require "ecsplay.duration"
local errors = require "ecsplay.errors"
local sched = require "ecsplay.sched"
local log = require "ecsplay.log"
local elbv2 = require "ecsplay.elbv2"
local tables = require "ecsplay.util.tables"
local strings = require "ecsplay.util.strings"
local batch = require "ecsplay.aws.batch"

local M = {}

-- the reads go through the shared batcher (aws/batch.lua): target groups, listeners and rules
-- asked for by many rollouts at once are described in few calls. Nothing here modifies an
-- answer, so answers are shared, not copied (readonly). READ (and `fresh`) requests are sent
-- after they are asked: the read-back after a change, what a rollback reads before it removes
-- capacity. LOOKUP requests (resolve's search for the rule) may take the answer of an
-- identical request already in flight: which rule forwards to a rollout's target groups, read
-- a moment earlier, is as good, and all rollouts on one load balancer then read its listeners
-- and their rules once.
local fresh = batch.face("elbv2", { readonly = true })
local LOOKUP = { readonly = true, join = true }
local READ = { readonly = true }

-- Seconds a weight shift keeps trying through transient errors; the undo of a shift
-- (rollout/actions.lua) has the same budget.
M.retry_budget = 300
M.MAX_BACKOFF = 20

local function bad(msg, field) error(errors.bad_input(msg, field), 0) end

--[[ Target groups described by target_group_arn inside M.recording_target_groups(fn), by
     coroutine: a strategy's prepare passes them to resolve, which then need not describe them
     again. ]]
local recorders = setmetatable({}, { __mode = "k" })

--[[ Runs fn(...) and returns its results, then { [tg_arn] = description } of every target
     group M.target_group_arn described meanwhile in this coroutine (for resolve's `known`). ]]
function M.recording_target_groups(fn, ...)
  local co = coroutine.running()
  local outer = recorders[co]
  local seen = {}
  recorders[co] = seen
  local res = table.pack(pcall(fn, ...))
  recorders[co] = outer
  if outer then for arn, tg in pairs(seen) do outer[arn] = tg end end
  if not res[1] then error(res[2], 0) end
  return seen, table.unpack(res, 2, res.n)
end

-- Target group name or ARN -> ARN (and proof that it exists), and its description.
function M.target_group_arn(name_or_arn, field)
  local by_arn = name_or_arn:match("^arn:") ~= nil
  local ok, res = pcall(batch.call, "elbv2", "DescribeTargetGroups",
    by_arn and { TargetGroupArns = { name_or_arn } } or { Names = { name_or_arn } })
  if ok then
    local tg = res.TargetGroups[1]
    local seen = recorders[coroutine.running()]
    if seen then seen[tg.TargetGroupArn] = tg end
    return tg.TargetGroupArn, tg
  end
  if errors.is(res, "TargetGroupNotFound") then
    bad(string.format(by_arn and "%s: target group %s does not exist" or "%s: target group `%s` does not exist",
      field or "target_group", name_or_arn), field)
  end
  error(res, 0)
end

local function forward_weights(actions)
  for _, a in ipairs(actions or {}) do
    if a.Type == "forward" then
      local w = {}
      if a.ForwardConfig and a.ForwardConfig.TargetGroups then
        for _, tg in ipairs(a.ForwardConfig.TargetGroups) do
          w[tg.TargetGroupArn] = tg.Weight or 1
        end
      elseif a.TargetGroupArn then
        w[a.TargetGroupArn] = 1
      end
      return w
    end
  end
  return nil
end

-- The ARNs a traffic point may be given as, and how to prove one exists.
local POINTS = {
  { pattern = ":listener%-rule/", kind = "rule", what = "listener rule", missing = "RuleNotFound",
    describe = function(arn) return fresh.describe_rules { RuleArns = { arn } } end,
    weights = function(res) return forward_weights(res.Rules[1].Actions) end },
  { pattern = ":listener/", kind = "listener", what = "listener", missing = "ListenerNotFound",
    describe = function(arn) return fresh.describe_listeners { ListenerArns = { arn } } end,
    weights = function(res) return forward_weights(res.Listeners[1].DefaultActions) end },
}

-- The answers of a call_each, or the first error in the order asked (what reading them one
-- after another raised first).
local function all_or_raise(oks, values)
  for i = 1, #oks do
    if not oks[i] then error(values[i], 0) end
  end
  return values
end

--[[ Every rule of every listener of the load balancers `lbs`, in order: { { listener =, rule = },
     ... }. The listeners of all of them are asked at once, then the rules of all those
     listeners at once (DescribeRules by ListenerArn cannot merge by list; asked together, the
     reads of every rollout scanning the same load balancer meet in one round and go out once). ]]
local function rules_of(lbs, opts)
  local asks = {}
  for i, lb in ipairs(lbs) do asks[i] = { LoadBalancerArn = lb } end
  local listeners, rule_asks = {}, {}
  for _, res in ipairs(all_or_raise(batch.call_each("elbv2", "DescribeListeners", asks, opts))) do
    for _, l in ipairs(res.Listeners or {}) do
      listeners[#listeners + 1] = l
      rule_asks[#rule_asks + 1] = { ListenerArn = l.ListenerArn }
    end
  end
  local out = {}
  for i, res in ipairs(all_or_raise(batch.call_each("elbv2", "DescribeRules", rule_asks, opts))) do
    for _, r in ipairs(res.Rules or {}) do out[#out + 1] = { listener = listeners[i], rule = r } end
  end
  return out
end

-- The load balancers of target groups tg_arns: from `known` descriptions, else described.
local function load_balancers_of(tg_arns, known)
  local lbs, asks = {}, {}
  for _, arn in ipairs(tg_arns) do
    local tg = known and known[arn]
    if tg then
      for _, lb in ipairs(tg.LoadBalancerArns or {}) do lbs[lb] = true end
    else
      asks[#asks + 1] = { TargetGroupArns = { arn } }
    end
  end
  for _, res in ipairs(all_or_raise(batch.call_each("elbv2", "DescribeTargetGroups", asks, READ))) do
    for _, lb in ipairs(res.TargetGroups[1].LoadBalancerArns or {}) do lbs[lb] = true end
  end
  return tables.keys(lbs)
end

--[[ The traffic point: { kind = "rule"|"listener", arn = } from a rule ARN,
     a listener ARN, or (nil) the one rule on the target groups' load balancer
     whose forward action names all of them; and its weights as read (what M.get
     answers, read a moment ago). known: { [tg_arn] = description } of target
     groups the caller described a moment ago (M.recording_target_groups), not
     described again. ]]
function M.resolve(point, tg_arns, field, known)
  field = field or "rule"
  if point ~= nil then
    if type(point) ~= "string" then bad(field .. ": expected a rule or listener ARN", field) end
    for _, p in ipairs(POINTS) do
      if point:match(p.pattern) then
        local ok, res = pcall(p.describe, point)
        if not ok then
          if errors.is(res, p.missing) then bad(field .. ": " .. p.what .. " " .. point .. " does not exist", field) end
          error(res, 0)
        end
        return { kind = p.kind, arn = point }, p.weights(res) or {}
      end
    end
    bad(field .. ": expected a listener rule ARN (…:listener-rule/…) or a listener ARN, got " .. point, field)
  end
  -- find it: the rules of the listeners of the target groups' load balancers
  local found, weights = {}, nil
  for _, lr in ipairs(rules_of(load_balancers_of(tg_arns, known), LOOKUP)) do
    local l, r = lr.listener, lr.rule
    local w = forward_weights(r.Actions)
    local all = w ~= nil
    for _, arn in ipairs(tg_arns) do if not (w and w[arn]) then all = false end end
    if all then
      found[#found + 1] = r.IsDefault and { kind = "listener", arn = l.ListenerArn }
        or { kind = "rule", arn = r.RuleArn }
      weights = w -- from the answer that matched (a default rule's actions are its listener's)
    end
  end
  if #found == 1 then return found[1], weights or {} end
  if #found == 0 then
    bad(field .. ": no listener rule forwards to all of the target groups; create a rule with a "
      .. "weighted forward action, or pass rule = \"arn:...:listener-rule/...\"", field)
  end
  bad(field .. ": several rules forward to these target groups; pass rule = one of their ARNs", field)
end

-- Current weights: { [tg_arn] = weight }.
function M.get(point)
  if point.kind == "rule" then
    local r = fresh.describe_rules({ RuleArns = { point.arn } }).Rules[1]
    return forward_weights(r.Actions) or {}
  end
  local l = fresh.describe_listeners({ ListenerArns = { point.arn } }).Listeners[1]
  return forward_weights(l.DefaultActions) or {}
end

--[[ Where target group `tg_arn` receives traffic now: { { point =, percent =,
     port = }, ... } for every rule (or default action) of its load balancers'
     listeners that forwards a share above 0 to it; {} when none does. Read
     fresh (never an answer in flight before it asked): a rollback asks this
     before it removes capacity from a side. ]]
function M.receiving(tg_arn)
  local out = {}
  local tg = fresh.describe_target_groups({ TargetGroupArns = { tg_arn } }).TargetGroups[1]
  for _, lr in ipairs(rules_of(tg and tg.LoadBalancerArns or {}, READ)) do
    local l, r = lr.listener, lr.rule
    local share = M.percent(forward_weights(r.Actions) or {})[tg_arn] or 0
    if share > 0 then
      out[#out + 1] = { percent = share, port = l.Port, point = r.IsDefault
        and { kind = "listener", arn = l.ListenerArn } or { kind = "rule", arn = r.RuleArn } }
    end
  end
  return out
end

-- Percent on each target group (weights need not add up to 100).
function M.percent(weights)
  local total = 0
  for _, w in pairs(weights) do total = total + w end
  local out = {}
  for arn, w in pairs(weights) do out[arn] = total > 0 and (100 * w / total) or 0 end
  return out
end

-- Whether weights `got` hold exactly what `want` set (weights are whole numbers).
local function holds(got, want, arns)
  for _, arn in ipairs(arns) do
    if (got[arn] or 0) ~= math.floor(want[arn] + 0.5) then return false, arn end
  end
  return true
end

--[[ One try: ModifyRule/ModifyListener, then the read-back. ModifyRule's answer is the rule as
     ELBv2 holds it after the change (ModifyListener's, the listener), so an answer holding the
     weights set is the read-back; an answer without them (an emulator that answers less, or
     other weights) is checked against a fresh read, and weights that read does not hold are
     WeightsNotApplied. ]]
local function apply(point, weights)
  local tgs = {}
  local arns = tables.keys(weights)
  for _, arn in ipairs(arns) do
    tgs[#tgs + 1] = { TargetGroupArn = arn, Weight = math.floor(weights[arn] + 0.5) }
  end
  local actions = { { Type = "forward", ForwardConfig = { TargetGroups = tgs } } }
  local answered
  if point.kind == "rule" then
    local res = elbv2.modify_rule { RuleArn = point.arn, Actions = actions }
    local rule = res.Rules and res.Rules[1]
    answered = rule and rule.RuleArn == point.arn and forward_weights(rule.Actions)
  else
    local res = elbv2.modify_listener { ListenerArn = point.arn, DefaultActions = actions }
    local listener = res.Listeners and res.Listeners[1]
    answered = listener and listener.ListenerArn == point.arn and forward_weights(listener.DefaultActions)
  end
  if answered and holds(answered, weights, arns) then return answered end
  local got = M.get(point)
  local ok, arn = holds(got, weights, arns)
  if not ok then
    -- AWS answered 200 but holds other weights: an AWS-side failure, not retried as a blip
    error(errors.new("service", { service = "elbv2", code = "WeightsNotApplied", message = string.format(
      "weights read back from %s do not match what was set: %s has %s, expected %s",
      point.arn, arn, tostring(got[arn]), tostring(weights[arn])) }), 0)
  end
  return got
end

-- "listener rule …/9683b2d02a6cabee" for logs: the ARN's last part names it well enough.
local function point_name(point)
  return (point.kind == "rule" and "listener rule " or "listener ") .. "…/"
    .. (strings.last_segment(point.arn) or point.arn)
end

--[[ Sets { [tg_arn] = weight } and reads it back (from the change's answer, see apply);
     raises when the listener does not hold exactly those weights afterwards.
     A shift outlasts a throttle: while ELBv2 answers with a transient error
     (throttling, 5xx, a dropped connection: `retryable`, once the SDK's own
     attempts are spent) it is tried again with capped backoff for up to
     M.retry_budget seconds, the budget the rollback's undo of the same shift
     has, and never past opts.deadline (the step's deadline, an epoch time). A
     forward step is then not abandoned on a throttle that its rollback would
     wait out anyway. Anything else (WeightsNotApplied, an interruption, bad
     input) is raised at once. ]]
function M.set(point, weights, opts)
  local started = sched.now()
  local deadline = started + M.retry_budget
  if opts and opts.deadline and opts.deadline < deadline then deadline = opts.deadline end
  local tries = 0
  while true do
    tries = tries + 1
    local ok, res = pcall(apply, point, weights)
    if ok then return res end
    if not (type(res) == "table" and res.retryable == true) then error(res, 0) end
    local left = deadline - sched.now()
    if left <= 0 then
      res.message = string.format("%s (weight shift on %s: %d tries in %s, gave up at its deadline)",
        res.message or "", point_name(point), tries, duration.format(sched.now() - started))
      error(res, 0)
    end
    local wait = math.min(2 ^ math.min(tries, 5), M.MAX_BACKOFF, left)
    log.event("warn", "traffic.retry", string.format("weight shift on %s: %s; trying again in %s",
      point_name(point), tostring(res.code), duration.format(math.ceil(wait))), { point = point.arn, code = res.code,
      tries = tries, wait = wait })
    sched.sleep(wait)
  end
end

-- "api-stable=75 api-canary=25" for logs.
function M.describe(weights, names)
  local parts = {}
  local arns = {}
  for arn in pairs(weights) do arns[#arns + 1] = arn end
  table.sort(arns, function(a, b) return (names[a] or a) < (names[b] or b) end)
  for _, arn in ipairs(arns) do parts[#parts + 1] = (names[arn] or arn) .. "=" .. weights[arn] end
  return table.concat(parts, " ")
end

return M
