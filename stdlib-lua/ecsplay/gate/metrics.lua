--[[
ecsplay.gate.metrics: the CloudWatch side of the metric gates: resolving a
target group to its ALB metric dimensions, building GetMetricData queries
(single metrics, metric math, the ALB metrics), checking them against
CloudWatch's model, running them over a window and reading the results.

  metrics.resolve_target_group(tg, kind, field) -> arn, dims
  metrics.alb_dimensions(tg, kind, field)       -> dims (TargetGroup, LoadBalancer)
  metrics.alb_query(id, metric, stat, dims, period)  one AWS/ApplicationELB query
  metrics.queries(specs, ids, expression)       gate.cloudwatch's queries
  metrics.check_queries(queries)                -> true | false, message
  metrics.window_for(g, ctx)                    -> the periods to judge (gate.window), or nil
  metrics.not_visible(g)                        the measurement when there are none yet
  metrics.data(queries, w)                      -> id -> values (newest first) in window w
  metrics.aggregate(values, how) / sum / max_of
  metrics.compare(value, opts)
]]
local duration = require "ecsplay.duration"
local batch = require "ecsplay.aws.batch"
local errors = require "ecsplay.errors"
local model = require "ecsplay.aws.model"
local validate = require "ecsplay.aws.validate"
local options = require "ecsplay.gate.options"
local step_window = require "ecsplay.gate.window"

local M = {}

-- every gate's reads go through the shared batcher (aws/batch.lua): all the gates of all the
-- rollouts that measure in one round share GetMetricData calls
local cloudwatch, elbv2 = batch.face "cloudwatch", batch.face "elbv2"

local ALB = "AWS/ApplicationELB"

-- What DescribeTargetGroups answers for a group that is not there.
local NOT_FOUND = { "TargetGroupNotFound", "ValidationError" }

--[[ Resolves a target group name or ARN: its ARN and its ALB metric
     dimensions. `kind` and `field` name the option in the error when the
     group does not exist or has no load balancer (so no ALB metrics). ]]
function M.resolve_target_group(target_group, kind, field)
  field = field or "target_group"
  local params = target_group:match("^arn:") and { TargetGroupArns = { target_group } }
    or { Names = { target_group } }
  local missing = "target group `" .. target_group .. "` does not exist" .. options.in_region()
  local ok, res = pcall(elbv2.describe_target_groups, params)
  if not ok then
    if errors.is(res, NOT_FOUND) then options.bad(kind, field, missing) end
    error(res, 0)
  end
  local tg = res.TargetGroups and res.TargetGroups[1]
  if not tg then options.bad(kind, field, missing) end
  local lb = tg.LoadBalancerArns and tg.LoadBalancerArns[1]
  if not lb then
    options.bad(kind, field, "target group `" .. target_group .. "` is not attached to a load balancer, "
      .. "so it has no ALB metrics")
  end
  return tg.TargetGroupArn, {
    { Name = "TargetGroup", Value = tg.TargetGroupArn:match(":(targetgroup/.+)$") },
    { Name = "LoadBalancer", Value = lb:match(":loadbalancer/(.+)$") },
  }
end

-- Target group name or ARN -> its ALB metric dimensions (TargetGroup, LoadBalancer).
function M.alb_dimensions(target_group, kind, field)
  local _, dims = M.resolve_target_group(target_group, kind, field)
  return dims
end

-- One query of an ALB metric, per minute unless `period` says otherwise.
function M.alb_query(id, metric, stat, dims, period)
  return { Id = id, ReturnData = true, MetricStat = { Period = period or 60, Stat = stat,
    Metric = { Namespace = ALB, MetricName = metric, Dimensions = dims } } }
end

-- { Name = value } or { {Name=, Value=}, ... } -> CloudWatch's list, in a stable order.
local function dimension_list(dimensions)
  local dims = {}
  for k, v in pairs(dimensions or {}) do
    dims[#dims + 1] = type(k) == "number" and v or { Name = k, Value = tostring(v) }
  end
  table.sort(dims, function(a, b) return tostring(a.Name) < tostring(b.Name) end)
  return dims
end

--[[ gate.cloudwatch's queries: one MetricStat per id of `specs` (checked by
     options.metric_spec), returned as data without an expression; with one,
     only the expression (id "gate") is returned. ]]
function M.queries(specs, ids, expression)
  local queries = {}
  for _, id in ipairs(ids) do
    local m = specs[id]
    queries[#queries + 1] = { Id = id, ReturnData = expression == nil, MetricStat = {
      Metric = { Namespace = m.namespace, MetricName = m.metric, Dimensions = dimension_list(m.dimensions) },
      Period = m.period or 60, Stat = m.stat or "Average" } }
  end
  if expression then
    queries[#queries + 1] = { Id = "gate", Expression = expression, ReturnData = true }
  end
  return queries
end

--[[ Checks queries against CloudWatch's model without sending them, so a bad
     dimension is a usage error before any change rather than three failed
     measurements later. Returns true, or false and what is wrong. ]]
function M.check_queries(queries)
  local ok, err = validate.check(model.load("cloudwatch"), "GetMetricData",
    { MetricDataQueries = queries, StartTime = 0, EndTime = 60 })
  if ok then return true end
  return false, (tostring(err.message or err):gsub("^cloudwatch GetMetricData: ", ""))
end

--[[ The periods a measurement judges: the one the tracker chose for this
     round (ctx.window), else gate.window's answer now (a gate measured by
     hand). nil: none of the step's periods is visible yet. ]]
function M.window_for(g, ctx)
  return ctx.window or step_window.of(g, ctx)
end

-- A measurement for a gate none of whose periods is visible yet.
function M.not_visible(g)
  return { result = "inconclusive", detail = string.format("no period of the step visible yet "
    .. "(CloudWatch publishes a period %s after it ends)", duration.format(g.delay or 0)) }
end

-- GetMetricData over window w = {from=, to=}, every page; id -> array of values (newest first).
function M.data(queries, w)
  local out = {}
  local token
  repeat
    local res = cloudwatch.get_metric_data {
      MetricDataQueries = queries, StartTime = w.from, EndTime = w.to, NextToken = token,
    }
    for _, r in ipairs(res.MetricDataResults or {}) do
      local list = out[r.Id] or {}
      for _, v in ipairs(r.Values or {}) do list[#list + 1] = v end
      out[r.Id] = list
    end
    token = res.NextToken
  until not token
  return out
end

function M.sum(values)
  local s = 0
  for _, v in ipairs(values or {}) do s = s + v end
  return s
end

function M.max_of(values)
  local m
  for _, v in ipairs(values or {}) do if not m or v > m then m = v end end
  return m
end

local function min_of(values)
  local m
  for _, v in ipairs(values or {}) do if not m or v < m then m = v end end
  return m
end

-- How gate.cloudwatch folds a window's datapoints into one value.
M.AGGREGATES = { last = true, sum = true, max = true, min = true, avg = true }

function M.aggregate(values, how)
  if how == "sum" then return M.sum(values) end
  if how == "max" then return M.max_of(values) end
  if how == "min" then return min_of(values) end
  if how == "avg" then return M.sum(values) / #values end
  return values[1] -- "last": newest first (TimestampDescending)
end

--[[ value against above=/below= -> "pass"|"fail", and the threshold as text
     ("> 3 and < 10"). ]]
function M.compare(value, opts)
  local parts = {}
  if opts.above ~= nil then parts[#parts + 1] = "> " .. options.num(opts.above) end
  if opts.below ~= nil then parts[#parts + 1] = "< " .. options.num(opts.below) end
  local threshold = table.concat(parts, " and ")
  if opts.below ~= nil and not (value < opts.below) then return "fail", threshold end
  if opts.above ~= nil and not (value > opts.above) then return "fail", threshold end
  return "pass", threshold
end

return M
