--[[
The metric operations of the simulated CloudWatch: PutMetricData,
GetMetricData (MetricDataQueries with metric math, sim/cloudwatch/metric_math.lua),
GetMetricStatistics and ListMetrics, and `run_queries`, which metric math
alarms evaluate through as well.
]]
local tables = require "ecsplay.util.tables"
local stats = require "ecsplay.sim.cloudwatch.stats"
local store = require "ecsplay.sim.cloudwatch.store"
local MM = require "ecsplay.sim.cloudwatch.metric_math"
local limits = require "ecsplay.sim.limits"

local M = {}
M.ops = {}
local ops = M.ops

---------------------------------------------------------------- MetricDataQueries

-- Checks one MetricStat query; returns its parsed statistic.
local function check_metric_stat(world, ms, where)
  local stat = stats.parse_stat(ms.Stat)
  if not stat then
    world:fail("ValidationError", "The value for parameter " .. where .. ".MetricStat.Stat is not a valid statistic.")
  end
  if not stats.valid_period(ms.Period) then
    world:fail("ValidationError", "The parameter " .. where .. ".MetricStat.Period must be 1, 5, 10, 20, 30, " ..
      "or a multiple of 60.")
  end
  if not ms.Metric or not ms.Metric.Namespace or not ms.Metric.MetricName then
    world:fail("ValidationError", "The parameter " .. where .. ".MetricStat.Metric needs Namespace and MetricName.")
  end
  return stat
end

-- Checks one expression query; returns its parsed expression.
local function check_expression(world, q, where)
  local ast, err = MM.parse(q.Expression)
  if not ast then
    world:fail("ValidationError", string.format("Error in expression '%s' (%s): %s", q.Id, q.Expression, err))
  end
  if q.Period ~= nil and not stats.valid_period(q.Period) then
    world:fail("ValidationError", "The parameter " .. where .. ".Period must be 1, 5, 10, 20, 30, or a multiple of 60.")
  end
  return ast
end

--[[ Checks MetricDataQueries (ids, one of MetricStat and Expression, statistics, periods,
     expression syntax): the entries by id { q=, where=, stat= | ast= } and the ids in order.
     Raises ValidationError naming the parameter (`param`). ]]
local function check_queries(world, queries, param)
  local by_id, order = {}, {}
  local max = limits.CLOUDWATCH.QUERIES_PER_GET_METRIC_DATA
  if #(queries or {}) > max then
    world:fail("ValidationError", string.format("The collection %s must not have a size greater than %d.",
      param, max))
  end
  for i, q in ipairs(queries or {}) do
    local where = string.format("%s.member.%d", param, i)
    if type(q.Id) ~= "string" or not q.Id:match("^[a-z][%w_]*$") then
      world:fail("ValidationError", string.format("The value %s for parameter %s.Id is invalid: it must start " ..
        "with a lowercase letter and contain only letters, digits and underscores.", tostring(q.Id), where))
    end
    if by_id[q.Id] then
      world:fail("ValidationError", "The values for parameter id in " .. param .. " are not unique: " .. q.Id)
    end
    if (q.MetricStat ~= nil) == (q.Expression ~= nil) then
      world:fail("ValidationError", "Exactly one element of the MetricStat or Expression fields must be set " ..
        "in " .. where .. ".")
    end
    local entry = { q = q, where = where }
    if q.MetricStat then
      entry.stat = check_metric_stat(world, q.MetricStat, where)
    else
      entry.ast = check_expression(world, q, where)
    end
    by_id[q.Id] = entry
    order[#order + 1] = q.Id
  end
  if #order == 0 then world:fail("ValidationError", "The parameter " .. param .. " is required.") end
  return by_id, order
end

-- The bucket starts of `period` over [start, stop) (at most 100800, CloudWatch's limit).
local function grid(run, period)
  local out = {}
  local t = stats.align_start(run.start, period)
  while t < run.stop and #out < 100800 do out[#out + 1] = t; t = t + period end
  return out
end

local value

-- What metric_math sees while evaluating the expression of `entry`.
local function env_for(run, entry)
  return {
    period = entry.q.Period or 60,
    grid = function(period) return grid(run, period) end,
    lookup = function(id)
      if not run.by_id[id] then return nil end
      return value(run, id)
    end,
    metrics = function(filter)
      local list = {}
      for _, id in ipairs(run.order) do
        local e = run.by_id[id]
        if e.q.MetricStat and (not filter or id:find(filter, 1, true) or
            (e.q.Label and e.q.Label:find(filter, 1, true))) then
          list[#list + 1] = value(run, id)
        end
      end
      return list
    end,
  }
end

-- An expression's value as a time series: a scalar spread over the grid; an array refused.
local function expression_series(run, id, entry)
  local world, q = run.world, entry.q
  local v, err = MM.eval(entry.ast, env_for(run, entry))
  if not v then
    world:fail("ValidationError", string.format("Error in expression '%s' (%s): %s", id, q.Expression, err))
  end
  if v.k == "scalar" then
    local g = grid(run, q.Period or 60)
    local vs = {}
    for i = 1, #g do vs[i] = v.v end
    v = MM.series(g, vs, q.Period or 60)
  elseif v.k == "array" then
    world:fail("ValidationError", string.format("Error in expression '%s' (%s): the expression returns more " ..
      "than one time series; wrap it in SUM, AVG, MIN or MAX", id, q.Expression))
  elseif v.k ~= "series" then
    world:fail("ValidationError", string.format("Error in expression '%s' (%s): the expression must return " ..
      "a time series", id, q.Expression))
  end
  return v
end

-- The series of query `id`, computed once (expressions ask for the ids they use, in any order).
value = function(run, id)
  if run.values[id] then return run.values[id] end
  local entry = run.by_id[id]
  if run.busy[id] then
    run.world:fail("ValidationError", "Circular dependency between expressions involving '" .. id .. "'")
  end
  run.busy[id] = true
  local v
  if entry.q.MetricStat then
    local ms = entry.q.MetricStat
    v = store.metric_series(run.world, ms.Metric, ms.Period, entry.stat, ms.Unit, run.start, run.stop, run.now)
  else
    v = expression_series(run, id, entry)
  end
  run.busy[id] = nil
  run.values[id] = v
  return v
end

--[[ Evaluates MetricDataQueries over [start, stop): returns { [id] = series } for every
     query, the entries by id ({ q=, ... }) and the ids in order. Raises ValidationError for
     malformed queries or expressions. `param` names the parameter in messages
     (MetricDataQueries by default; Metrics for alarms); the data is what is
     visible at `now` (default: the world's time). ]]
function M.run_queries(world, queries, start, stop, param, now)
  local by_id, order = check_queries(world, queries, param or "MetricDataQueries")
  local run = { world = world, by_id = by_id, order = order, start = start, stop = stop, values = {}, busy = {},
    now = now or world.now }
  for _, id in ipairs(order) do value(run, id) end
  return run.values, by_id, order
end

---------------------------------------------------------------- PutMetricData

--[[ A value CloudWatch stores: a finite number within -2^360 .. 2^360 (PutMetricData
     rejects NaN, the infinities and anything larger). ]]
local function check_number(world, v, what)
  local big = limits.CLOUDWATCH.VALUE_MAGNITUDE
  if type(v) ~= "number" or v ~= v or v > big or v < -big then
    world:fail("InvalidParameterValue", string.format("The value %s for parameter %s is invalid: values "
      .. "must be finite numbers from -2^360 to 2^360.", tostring(v), what))
  end
end

-- A MetricData member's Values (and Counts) as one sample with its raw values.
local function values_sample(world, d, where)
  if d.Counts and #d.Counts ~= #d.Values then
    world:fail("InvalidParameterValue", "The parameters " .. where .. ".Values and " .. where ..
      ".Counts must be of the same size.")
  end
  if #d.Values > limits.CLOUDWATCH.VALUES_PER_DATUM then
    world:fail("InvalidParameterValue", string.format("The collection %s.Values must not have a size "
      .. "greater than %d.", where, limits.CLOUDWATCH.VALUES_PER_DATUM))
  end
  for j, v in ipairs(d.Values) do
    check_number(world, v, where .. ".Values.member." .. j)
    local c = d.Counts and d.Counts[j]
    if c ~= nil then check_number(world, c, where .. ".Counts.member." .. j) end
  end
  local smp = { n = 0, sum = 0, min = math.huge, max = -math.huge, vals = {} }
  for j, v in ipairs(d.Values) do
    local c = d.Counts and d.Counts[j] or 1
    smp.n, smp.sum = smp.n + c, smp.sum + v * c
    smp.min, smp.max = math.min(smp.min, v), math.max(smp.max, v)
    smp.vals[#smp.vals + 1] = { v, c }
  end
  if smp.n == 0 then
    world:fail("InvalidParameterValue", "The parameter " .. where .. ".Values must contain at least one value.")
  end
  return smp
end

-- A MetricData member's StatisticValues as one sample (no raw values: no percentiles).
local function statistic_sample(world, sv, where)
  if not (sv.SampleCount and sv.Sum and sv.Minimum and sv.Maximum) then
    world:fail("MissingParameter", "The parameter " .. where .. ".StatisticValues needs SampleCount, Sum, " ..
      "Minimum and Maximum.")
  end
  for _, k in ipairs { "SampleCount", "Sum", "Minimum", "Maximum" } do
    check_number(world, sv[k], where .. ".StatisticValues." .. k)
  end
  if sv.SampleCount <= 0 or sv.Minimum > sv.Maximum then
    world:fail("InvalidParameterValue", "The parameter " .. where .. ".StatisticValues is inconsistent " ..
      "(SampleCount must be positive and Minimum at most Maximum).")
  end
  return { n = sv.SampleCount, sum = sv.Sum, min = sv.Minimum, max = sv.Maximum }
end

-- The value one MetricData member stores: a number or a sample table.
local function datum_value(world, d, where)
  if not d.MetricName then world:fail("MissingParameter", "The parameter " .. where .. ".MetricName is required.") end
  local given = (d.Value ~= nil and 1 or 0) + (d.Values ~= nil and 1 or 0) + (d.StatisticValues ~= nil and 1 or 0)
  if given > 1 then
    world:fail("InvalidParameterCombination", "The parameters " .. where .. ".Value, " .. where ..
      ".Values and " .. where .. ".StatisticValues are mutually exclusive and you have specified more than one.")
  end
  if given == 0 then
    world:fail("MissingParameter", "One of the parameters " .. where .. ".Value, " .. where .. ".Values or " ..
      where .. ".StatisticValues is required.")
  end
  if d.Value ~= nil then
    check_number(world, d.Value, where .. ".Value")
    return d.Value
  end
  if d.Values then return values_sample(world, d, where) end
  return statistic_sample(world, d.StatisticValues, where)
end

-- Every member is checked before any is stored, so a refused request stores nothing.
function ops.PutMetricData(world, input, caller)
  local ns = input.Namespace
  if type(ns) ~= "string" or ns == "" then world:fail("MissingParameter", "The parameter Namespace is required.") end
  if caller == nil and ns:sub(1, 4) == "AWS/" then
    world:fail("InvalidParameterValue", "The value AWS/ for parameter Namespace is invalid.")
  end
  local cw = limits.CLOUDWATCH
  if #(input.MetricData or {}) > cw.METRIC_DATA_PER_PUT then
    world:fail("InvalidParameterValue", string.format("The collection MetricData must not have a size "
      .. "greater than %d.", cw.METRIC_DATA_PER_PUT))
  end
  local prepared = {}
  for i, d in ipairs(input.MetricData or {}) do
    local where = "MetricData.member." .. i
    local t = d.Timestamp
    if t ~= nil and (t < world.now - cw.PAST_SECONDS or t > world.now + cw.FUTURE_SECONDS) then
      world:fail("InvalidParameterValue", string.format("The parameter %s.Timestamp must be no more than "
        .. "two weeks in the past and no more than two hours in the future.", where))
    end
    prepared[#prepared + 1] = { d = d, value = datum_value(world, d, where) }
  end
  for _, p in ipairs(prepared) do
    store.put(world, ns, p.d.MetricName, p.d.Dimensions, p.d.Timestamp or world.now, p.value, p.d.Unit or "None")
  end
  return {}
end

---------------------------------------------------------------- GetMetricData

local function check_range(world, start, stop)
  if type(start) ~= "number" or type(stop) ~= "number" then
    world:fail("ValidationError", "The parameters StartTime and EndTime are required.")
  end
  if start >= stop then
    world:fail("ValidationError", "The parameter StartTime must be less than the parameter EndTime.")
  end
end

--[[ The returned queries' datapoints, newest first unless TimestampAscending, from the
     `offset`-th (the NextToken) up to MaxDatapoints over all of them: results, how many were
     emitted, and whether some were left for a next page. ]]
local function emit_results(input, values, by_id, order, offset)
  local descending = input.ScanBy ~= "TimestampAscending"
  local max = math.min(input.MaxDatapoints or math.huge, limits.CLOUDWATCH.DATAPOINTS_PER_GET_METRIC_DATA)
  local results, seen, emitted, truncated = {}, 0, 0, false
  for _, id in ipairs(order) do
    local e = by_id[id]
    if e.q.ReturnData ~= false then
      local s = values[id]
      local ts, vs = {}, {}
      local n = #s.ts
      for k = 1, n do
        local i = descending and (n - k + 1) or k
        seen = seen + 1
        if seen > offset then
          if emitted < max then
            ts[#ts + 1] = s.ts[i]; vs[#vs + 1] = s.vs[i]
            emitted = emitted + 1
          else
            truncated = true
          end
        end
      end
      local label = e.q.Label or (e.q.MetricStat and e.q.MetricStat.Metric.MetricName) or id
      results[#results + 1] = {
        Id = id, Label = label, Timestamps = ts, Values = vs,
        StatusCode = truncated and "PartialData" or "Complete", Messages = {},
      }
    end
  end
  return results, emitted, truncated
end

function ops.GetMetricData(world, input)
  local start, stop = input.StartTime, input.EndTime
  check_range(world, start, stop)
  local maxdp = input.MaxDatapoints
  if maxdp ~= nil and maxdp < 1 then
    world:fail("ValidationError", "The parameter MaxDatapoints must be at least 1.")
  end
  local offset = 0
  if input.NextToken then
    offset = tonumber(input.NextToken:match("^dp(%d+)$") or "")
    if not offset then world:fail("InvalidNextToken", "The NextToken '" .. input.NextToken .. "' is not valid.") end
  end
  local values, by_id, order = M.run_queries(world, input.MetricDataQueries, start, stop)
  local returned = 0
  for _, id in ipairs(order) do
    if by_id[id].q.ReturnData ~= false then returned = returned + 1 end
  end
  if returned == 0 then
    world:fail("ValidationError", "At least one MetricDataQuery must have ReturnData set to true.")
  end
  local results, emitted, truncated = emit_results(input, values, by_id, order, offset)
  return {
    MetricDataResults = results, Messages = {},
    NextToken = truncated and ("dp" .. (offset + emitted)) or nil,
  }
end

---------------------------------------------------------------- GetMetricStatistics

local function datapoint_limit(world, start, stop, period)
  local n = math.ceil((stop - stats.align_start(start, period)) / period)
  if n > 1440 then
    world:fail("InvalidParameterCombination", string.format("You have requested up to %d datapoints, which " ..
      "exceeds the limit of 1,440. You may reduce the datapoints requested by increasing Period, or decreasing " ..
      "the time range.", n))
  end
end

-- The ExtendedStatistics asked for, parsed; each must be a percentile.
local function percentiles(world, ext)
  local parsed = {}
  for i, e in ipairs(ext) do
    local p = stats.parse_stat(e)
    if not p or p.kind ~= "p" then
      world:fail("InvalidParameterValue", "The value " .. tostring(e) .. " for parameter ExtendedStatistics.member." ..
        i .. " is not a valid percentile statistic (p0.0 to p100).")
    end
    parsed[i] = p
  end
  return parsed
end

function ops.GetMetricStatistics(world, input)
  local start, stop, period = input.StartTime, input.EndTime, input.Period
  if not stats.valid_period(period) then
    world:fail("InvalidParameterValue", "The parameter Period must be 1, 5, 10, 20, 30, or a multiple of 60.")
  end
  if start >= stop then
    world:fail("InvalidParameterValue", "The parameter StartTime must be less than the parameter EndTime.")
  end
  local wanted = input.Statistics or {}
  local ext = input.ExtendedStatistics or {}
  if #wanted == 0 and #ext == 0 then
    world:fail("MissingParameter", "The parameter Statistics or ExtendedStatistics must be specified.")
  end
  local ext_parsed = percentiles(world, ext)
  datapoint_limit(world, start, stop, period)
  local ser = store.get_series(world, input.Namespace, input.MetricName, store.norm_dims(input.Dimensions), false)
  local by, order = store.buckets(ser, period, start, stop, input.Unit, world.now, world)
  local dps = {}
  for _, b in ipairs(order) do
    local samples = by[b]
    local dp = { Timestamp = b, Unit = input.Unit or samples[1].unit or "None" }
    for _, s in ipairs(wanted) do dp[s] = stats.compute(samples, { kind = s }) end
    if #ext > 0 then
      dp.ExtendedStatistics = {}
      for i, e in ipairs(ext) do dp.ExtendedStatistics[e] = stats.compute(samples, ext_parsed[i]) end
    end
    dps[#dps + 1] = dp
  end
  return { Label = input.MetricName, Datapoints = dps }
end

---------------------------------------------------------------- ListMetrics

-- Does series `ser` match ListMetrics' filters (namespace, name, dimensions, recently active)?
local function listed(ser, input, recent)
  local ok = (not input.Namespace or ser.ns == input.Namespace) and
    (not input.MetricName or ser.name == input.MetricName)
  for _, f in ipairs(ok and input.Dimensions or {}) do
    local found = false
    for _, d in ipairs(ser.dims) do
      if d.Name == f.Name and (f.Value == nil or f.Value == d.Value) then found = true end
    end
    if not found then ok = false end
  end
  if ok and recent then
    local last = store.last_time(ser)
    ok = last ~= nil and last >= recent
  end
  return ok
end

function ops.ListMetrics(world, input)
  local s = store.st(world)
  local recent = input.RecentlyActive == "PT3H" and (world.now - 3 * 3600) or nil
  local list = {}
  for _, ser in ipairs(s.series_list) do
    if listed(ser, input, recent) then
      list[#list + 1] = { Namespace = ser.ns, MetricName = ser.name, Dimensions = tables.copy(ser.dims) }
    end
  end
  local out, token = store.token_page(world, list, input.NextToken, "m", 500)
  return { Metrics = out, NextToken = token }
end

return M
