--[[
Reading and moving weighted traffic on an ALB listener rule (or a listener's
default action). Every change is read back: a ModifyRule that answered 200
but left other weights is an error, not a success.
]]
local M = {}

local function elbv2() return require "ecsplay.elbv2" end

local function bad(msg) error(require("ecsplay.errors").bad_input(msg), 0) end

-- Target group name or ARN -> ARN (and proof that it exists).
function M.target_group_arn(name_or_arn, field)
  if name_or_arn:match("^arn:") then
    local ok, res = pcall(elbv2().describe_target_groups, { TargetGroupArns = { name_or_arn } })
    if ok then return res.TargetGroups[1].TargetGroupArn, res.TargetGroups[1] end
    if type(res) == "table" and res.code == "TargetGroupNotFound" then
      bad((field or "target_group") .. ": target group " .. name_or_arn .. " does not exist")
    end
    error(res, 0)
  end
  local ok, res = pcall(elbv2().describe_target_groups, { Names = { name_or_arn } })
  if ok then return res.TargetGroups[1].TargetGroupArn, res.TargetGroups[1] end
  if type(res) == "table" and res.code == "TargetGroupNotFound" then
    bad((field or "target_group") .. ": target group `" .. name_or_arn .. "` does not exist")
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

--[[ The traffic point: { kind = "rule"|"listener", arn = } from a rule ARN,
     a listener ARN, or (nil) the one rule on the target groups' load balancer
     whose forward action names all of them. ]]
function M.resolve(point, tg_arns, field)
  field = field or "rule"
  if point ~= nil then
    if type(point) ~= "string" then bad(field .. ": expected a rule or listener ARN") end
    if point:match(":listener%-rule/") then
      local ok, res = pcall(elbv2().describe_rules, { RuleArns = { point } })
      if not ok then
        if type(res) == "table" and res.code == "RuleNotFound" then
          bad(field .. ": listener rule " .. point .. " does not exist")
        end
        error(res, 0)
      end
      return { kind = "rule", arn = point }
    elseif point:match(":listener/") then
      local ok, res = pcall(elbv2().describe_listeners, { ListenerArns = { point } })
      if not ok then
        if type(res) == "table" and res.code == "ListenerNotFound" then
          bad(field .. ": listener " .. point .. " does not exist")
        end
        error(res, 0)
      end
      return { kind = "listener", arn = point }
    end
    bad(field .. ": expected a listener rule ARN (…:listener-rule/…) or a listener ARN, got " .. point)
  end
  -- find it: listeners of the target groups' load balancer
  local lbs = {}
  for _, arn in ipairs(tg_arns) do
    local tg = elbv2().describe_target_groups({ TargetGroupArns = { arn } }).TargetGroups[1]
    for _, lb in ipairs(tg.LoadBalancerArns or {}) do lbs[lb] = true end
  end
  local found = {}
  local lb_list = {}
  for lb in pairs(lbs) do lb_list[#lb_list + 1] = lb end
  table.sort(lb_list)
  for _, lb in ipairs(lb_list) do
    for _, l in ipairs(elbv2().describe_listeners({ LoadBalancerArn = lb }).Listeners or {}) do
      for _, r in ipairs(elbv2().describe_rules({ ListenerArn = l.ListenerArn }).Rules or {}) do
        local w = forward_weights(r.Actions)
        local all = w ~= nil
        for _, arn in ipairs(tg_arns) do if not (w and w[arn]) then all = false end end
        if all then
          found[#found + 1] = r.IsDefault and { kind = "listener", arn = l.ListenerArn }
            or { kind = "rule", arn = r.RuleArn }
        end
      end
    end
  end
  if #found == 1 then return found[1] end
  if #found == 0 then
    bad(field .. ": no listener rule forwards to all of the target groups; create a rule with a "
      .. "weighted forward action, or pass rule = \"arn:...:listener-rule/...\"")
  end
  bad(field .. ": several rules forward to these target groups; pass rule = one of their ARNs")
end

-- Current weights: { [tg_arn] = weight }.
function M.get(point)
  if point.kind == "rule" then
    local r = elbv2().describe_rules({ RuleArns = { point.arn } }).Rules[1]
    return forward_weights(r.Actions) or {}
  end
  local l = elbv2().describe_listeners({ ListenerArns = { point.arn } }).Listeners[1]
  return forward_weights(l.DefaultActions) or {}
end

-- Percent on each target group (weights need not add up to 100).
function M.percent(weights)
  local total = 0
  for _, w in pairs(weights) do total = total + w end
  local out = {}
  for arn, w in pairs(weights) do out[arn] = total > 0 and (100 * w / total) or 0 end
  return out
end

--[[ Sets { [tg_arn] = weight } and reads it back; raises when the listener
     does not hold exactly those weights afterwards. ]]
function M.set(point, weights)
  local tgs = {}
  local arns = {}
  for arn in pairs(weights) do arns[#arns + 1] = arn end
  table.sort(arns)
  for _, arn in ipairs(arns) do
    tgs[#tgs + 1] = { TargetGroupArn = arn, Weight = math.floor(weights[arn] + 0.5) }
  end
  local actions = { { Type = "forward", ForwardConfig = { TargetGroups = tgs } } }
  if point.kind == "rule" then
    elbv2().modify_rule { RuleArn = point.arn, Actions = actions }
  else
    elbv2().modify_listener { ListenerArn = point.arn, DefaultActions = actions }
  end
  local got = M.get(point)
  for _, arn in ipairs(arns) do
    if (got[arn] or 0) ~= math.floor(weights[arn] + 0.5) then
      error({ code = "WeightsNotApplied", message = string.format(
        "weights read back from %s do not match what was set: %s has %s, expected %s",
        point.arn, arn, tostring(got[arn]), tostring(weights[arn])) }, 0)
    end
  end
  return got
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
