--[[
Metric storage of the simulated CloudWatch: one series per (namespace, metric
name, exact dimension set); a series holds samples (sim/cloudwatch/stats.lua
describes them) in time order. Also the reading side every query shares
(samples grouped into periods, a metric's statistic as a time series) and the
NextToken paging of the List/Describe operations.

State (world.state.cloudwatch): series (key -> series), series_list
(creation order, which ListMetrics answers in), alarms, history, scripts
(sim/cloudwatch/alarms.lua), last_minute (the tick).
]]
local tables = require "ecsplay.util.tables"
local stats = require "ecsplay.sim.cloudwatch.stats"
local MM = require "ecsplay.sim.cloudwatch.metric_math"

local M = {}

function M.st(world) return world.state.cloudwatch end

-- Dimensions as a list sorted by name: { {Name=, Value=}, ... } or { Name = Value, ... } in.
function M.norm_dims(dims)
  local out = {}
  if dims == nil then return out end
  if dims[1] ~= nil or next(dims) == nil then
    for _, d in ipairs(dims) do out[#out + 1] = { Name = d.Name, Value = d.Value } end
  else
    for k, v in pairs(dims) do out[#out + 1] = { Name = k, Value = v } end
  end
  table.sort(out, function(a, b) return a.Name < b.Name end)
  return out
end

local function series_key(ns, name, dims)
  local parts = { ns, name }
  for _, d in ipairs(dims) do parts[#parts + 1] = d.Name .. "=" .. tostring(d.Value) end
  return table.concat(parts, "\0")
end

-- The series of (ns, name, normalized dims); with `create`, made when missing.
function M.get_series(world, ns, name, dims, create)
  local s = M.st(world)
  local key = series_key(ns, name, dims)
  local ser = s.series[key]
  if not ser and create then
    ser = { ns = ns, name = name, dims = dims, samples = {} }
    s.series[key] = ser
    s.series_list[#s.series_list + 1] = ser
  end
  return ser
end

local function add_sample(ser, sample)
  local list = ser.samples
  local i = #list
  while i >= 1 and list[i].t > sample.t do i = i - 1 end
  table.insert(list, i + 1, sample)
end

local function sample_from(value, t, unit)
  if type(value) == "number" then
    return { t = t, n = 1, sum = value, min = value, max = value, vals = { { value, 1 } }, unit = unit }
  end
  local smp = tables.copy(value)
  smp.t, smp.unit = t, unit or value.unit
  return smp
end

--[[ put(world, namespace, name, dims, t, value[, unit]): stores one sample.
     dims: { {Name=, Value=}, ... } or { Name = Value, ... }; value: a number,
     or a sample table { n=, sum=, min=, max=, vals=?, dists=? }. ]]
function M.put(world, namespace, name, dims, t, value, unit)
  local ser = M.get_series(world, namespace, name, M.norm_dims(dims), true)
  add_sample(ser, sample_from(value, t, unit))
end

-- Samples of a series grouped into periods over [start, end): { [bucket_t] = {samples} }, ordered keys.
function M.buckets(ser, period, start, stop, unit)
  local base = stats.align_start(start, period)
  local by, order = {}, {}
  if not ser then return by, order end
  for _, smp in ipairs(ser.samples) do
    if smp.t >= base and smp.t < stop and (not unit or smp.unit == unit) then
      local b = base + math.floor((smp.t - base) / period) * period
      if not by[b] then by[b] = {}; order[#order + 1] = b end
      local list = by[b]
      list[#list + 1] = smp
    end
  end
  table.sort(order)
  return by, order
end

-- A metric's statistic per period over [start, stop) as a metric math series (periods without data left out).
function M.metric_series(world, metric, period, stat, unit, start, stop)
  local ser = M.get_series(world, metric.Namespace, metric.MetricName, M.norm_dims(metric.Dimensions), false)
  local by, order = M.buckets(ser, period, start, stop, unit)
  local ts, vs = {}, {}
  for _, b in ipairs(order) do
    local v = stats.compute(by[b], stat)
    if v ~= nil then ts[#ts + 1] = b; vs[#vs + 1] = v end
  end
  return MM.series(ts, vs, period)
end

--[[ NextToken paging of ListMetrics, DescribeAlarms and DescribeAlarmHistory: the token is
     `prefix` and the 1-based index of the next item, so one operation refuses another's token.
     Returns the page, each item through `render` when given, and the next token or nil. ]]
function M.token_page(world, list, token, prefix, max, render)
  local from = 1
  if token then
    from = tonumber(token:match("^" .. prefix .. "(%d+)$") or "")
    if not from then world:fail("InvalidNextToken", "The NextToken '" .. token .. "' is not valid.") end
  end
  local out = {}
  for i = from, math.min(#list, from + max - 1) do
    local x = list[i]
    if render then x = render(x) end
    out[#out + 1] = x
  end
  return out, (from + max <= #list) and (prefix .. (from + max)) or nil
end

return M
