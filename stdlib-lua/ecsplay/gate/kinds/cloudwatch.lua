--[[
gate.cloudwatch: any CloudWatch metric, or metric math over several, against
above=/below=.
  gate.cloudwatch{ name=, expression="m1/m2", metrics={ m1={namespace=, metric=,
    dimensions={Name=value}, stat="Sum", period=60}, ... }, above=/below=,
    aggregate="last"|"sum"|"max"|"min"|"avg" (over the window's datapoints) }
or with a single metric: gate.cloudwatch{ namespace=, metric=, dimensions=, stat=, below= }
The window (gate.window) is in periods of the longest metric period; `delay`
and `settle` as for every metric gate.
]]
local duration = require "ecsplay.duration"
local strings = require "ecsplay.util.strings"
local options = require "ecsplay.gate.options"
local metrics = require "ecsplay.gate.metrics"
local window = require "ecsplay.gate.window"

local M = {}

local KIND = "cloudwatch"

local ALLOWED = { expression = true, metrics = true, above = true, below = true, namespace = true,
  metric = true, dimensions = true, stat = true, period = true, aggregate = true, window = true,
  delay = true, settle = true, unit = true }

-- The fields of one metric, given inside metrics= when there is an expression.
local METRIC_FIELDS = { "namespace", "metric", "dimensions", "stat", "period" }

local function bad(field, msg) options.bad(KIND, field, msg) end

--[[ The metrics of the options -> specs (id -> metric), the sorted ids, and
     the id whose values are the gate's (the expression's, or the one metric's). ]]
local function metric_specs(opts)
  local specs, result_id
  if opts.expression ~= nil then
    if type(opts.expression) ~= "string" or opts.expression == "" then
      bad("expression", "expected a metric math expression like \"m1/m2*100\"")
    end
    if type(opts.metrics) ~= "table" or next(opts.metrics) == nil then
      bad("metrics", "required with expression=: { m1 = {namespace=, metric=, ...}, ... }")
    end
    for _, f in ipairs(METRIC_FIELDS) do
      if opts[f] ~= nil then bad(f, "goes inside metrics= when expression= is given") end
    end
    specs, result_id = opts.metrics, "gate"
  elseif opts.metrics ~= nil then
    bad("metrics", "needs expression= (or give one metric with namespace= and metric=)")
  else
    if opts.metric == nil then bad("metric", "give metric= (one metric) or expression= with metrics=") end
    specs, result_id = { m1 = { namespace = opts.namespace, metric = opts.metric,
      dimensions = opts.dimensions, stat = opts.stat, period = opts.period } }, "m1"
  end
  local ids = {}
  for id, m in pairs(specs) do
    if type(id) ~= "string" or not id:match("^[a-z][%w_]*$") or id == "gate" then
      bad("metrics", "ids must start with a lowercase letter (CloudWatch's rule) and not be "
        .. "`gate`, got " .. strings.describe_value(id))
    end
    options.metric_spec(KIND, opts.expression and ("metrics." .. id .. ".") or "", m)
    ids[#ids + 1] = id
  end
  table.sort(ids)
  if opts.expression then M.check_expression_ids(opts.expression, specs) end
  return specs, ids, result_id
end

--[[ Every metric id the expression names must be one of metrics=: CloudWatch
     would answer ValidationError at the first measurement, minutes into the
     rollout, so it is bad input before any change. In metric math, ids start
     with a lowercase letter and functions and keywords are upper case; quoted
     strings (SEARCH('...')) name no ids. ]]
function M.check_expression_ids(expression, specs)
  local bare = expression:gsub("'[^']*'", "''"):gsub('"[^"]*"', '""')
  for id in bare:gmatch("%f[%w_]([a-z][%w_]*)") do
    if specs[id] == nil then
      bad("expression", string.format("names metric id `%s`, which metrics= does not define%s",
        id, strings.did_you_mean(id, specs)))
    end
  end
end

function M.cloudwatch(opts)
  options.check(KIND, opts, ALLOWED)
  options.thresholds(KIND, opts)
  local specs, ids, result_id = metric_specs(opts)
  local aggregate = opts.aggregate or "last"
  if not metrics.AGGREGATES[aggregate] then
    bad("aggregate", "expected \"last\", \"sum\", \"max\", \"min\" or \"avg\", got "
      .. strings.describe_value(aggregate))
  end
  local function queries() return metrics.queries(specs, ids, opts.expression) end
  local period = 0
  for _, id in ipairs(ids) do period = math.max(period, specs[id].period or 60) end
  local fields = window.check(KIND, opts, period)
  fields.name = opts.name or (opts.expression or opts.metric)
  if opts.unit ~= nil and (type(opts.unit) ~= "string" or opts.unit == "") then
    bad("unit", "expected the unit its values are in, like \"%\", \"ms\" or \"count\", got "
      .. strings.describe_value(opts.unit))
  end
  fields.label, fields.unit = fields.name, opts.unit
  fields.prepare = function(self)
    local ok, why = metrics.check_queries(queries())
    if not ok then bad(nil, string.format("`%s`: its query is not valid: %s", self.name, why)) end
  end
  fields.measure = function(self, ctx)
    local w = metrics.window_for(self, ctx)
    if not w then return metrics.not_visible(self) end
    local values = metrics.data(queries(), w)[result_id] or {}
    local _, threshold = metrics.compare(0, opts)
    if #values == 0 then
      return { result = "inconclusive", threshold = threshold,
        detail = "no datapoints in " .. duration.format(w.to - w.from) }
    end
    local v = metrics.aggregate(values, aggregate)
    local result
    result, threshold = metrics.compare(v, opts)
    return { result = result, value = v, unit = opts.unit, threshold = threshold,
      detail = aggregate ~= "last" and string.format("%s of %d datapoints", aggregate, #values) or nil }
  end
  return options.new_gate(KIND, opts, fields)
end

return M
