--[[
Metric storage of the simulated CloudWatch: one series per (namespace, metric
name, exact dimension set); a series holds samples (sim/cloudwatch/stats.lua
describes them) in time order. Also the reading side every query shares
(samples grouped into periods, a metric's statistic as a time series) and the
NextToken paging of the List/Describe operations.

State (world.state.cloudwatch): series (key -> series), series_list
(creation order, which ListMetrics answers in), alarms, history, scripts
(sim/cloudwatch/alarms.lua), last_minute (the tick), delay (seconds from a
period's end until its ALB datapoints are visible: scenario metrics.delay).

A sample may carry `visible` (epoch seconds): queries and alarms at an
earlier time do not see it, as CloudWatch shows a service's datapoints only
once it has published them.

A series may be `lazy` (the ALB metrics of sim/cloudwatch/alb.lua): its
samples are computed when read, by the source registered for its namespace
(register_source), and `last_t` stamps its newest one; samples put into it
directly are read along with them.
]]
local tables = require "ecsplay.util.tables"
local stats = require "ecsplay.sim.cloudwatch.stats"
local MM = require "ecsplay.sim.cloudwatch.metric_math"

local M = {}

function M.st(world) return world.state.cloudwatch end

-- namespace -> fn(world, ser, from, stop, now) → the lazy series' samples in [from, stop)
local sources = {}

function M.register_source(namespace, fn) sources[namespace] = fn end

local function by_name(a, b) return a.Name < b.Name end

-- Dimensions as a list sorted by name: { {Name=, Value=}, ... } or { Name = Value, ... } in.
function M.norm_dims(dims)
  local out = {}
  if dims == nil then return out end
  if dims[1] ~= nil or next(dims) == nil then
    for _, d in ipairs(dims) do out[#out + 1] = { Name = d.Name, Value = d.Value } end
  else
    for k, v in pairs(dims) do out[#out + 1] = { Name = k, Value = v } end
  end
  if #out > 1 then table.sort(out, by_name) end
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

local function sample_from(value, t, unit, visible)
  local smp
  if type(value) == "number" then
    smp = { t = t, n = 1, sum = value, min = value, max = value, vals = { { value, 1 } }, unit = unit }
  else
    smp = tables.copy(value)
    smp.t, smp.unit = t, unit or value.unit
  end
  smp.visible = visible
  return smp
end

--[[ put(world, namespace, name, dims, t, value, unit?, visible?): stores one sample.
     dims: { {Name=, Value=}, ... } or { Name = Value, ... }; value: a number,
     or a sample table { n=, sum=, min=, max=, vals=?, dists=? }. visible: the
     time from which queries see it (CloudWatch's publishing delay; nil: at once). ]]
function M.put(world, namespace, name, dims, t, value, unit, visible)
  local ser = M.get_series(world, namespace, name, M.norm_dims(dims), true)
  add_sample(ser, sample_from(value, t, unit, visible))
end

-- The index of a series' first sample at or after time t (samples are in time order), so a
-- query reads only its own range however long the series is.
local function first_at(list, t)
  local lo, hi = 1, #list + 1
  while lo < hi do
    local mid = (lo + hi) // 2
    if list[mid].t < t then lo = mid + 1 else hi = mid end
  end
  return lo
end

-- The time of a series' newest sample (nil: none).
function M.last_time(ser)
  local last = ser.samples[#ser.samples]
  local t = last and last.t
  if ser.last_t and (not t or ser.last_t > t) then t = ser.last_t end
  return t
end

--[[ Drops the samples older than `cutoff` (CloudWatch keeps 1-minute datapoints 15 days;
     the simulator keeps no coarser copies) and the series left empty, so a long-running
     world's metrics take bounded memory. ]]
function M.prune(world, cutoff)
  local s = M.st(world)
  local kept = {}
  for _, ser in ipairs(s.series_list) do
    local i = first_at(ser.samples, cutoff)
    if i > 1 then
      local n = #ser.samples
      table.move(ser.samples, i, n, 1)
      for k = n - i + 2, n do ser.samples[k] = nil end
    end
    if #ser.samples > 0 or (ser.last_t and ser.last_t >= cutoff) then
      kept[#kept + 1] = ser
    else
      s.series[series_key(ser.ns, ser.name, ser.dims)] = nil
    end
  end
  s.series_list = kept
end

-- A lazy series' samples in [from, stop) visible at `now`, with any put into it, in time order.
local function lazy_samples(world, ser, from, stop, now)
  local list = sources[ser.ns](world, ser, from, stop, now)
  if #ser.samples == 0 then return list end
  for i = first_at(ser.samples, from), #ser.samples do
    local smp = ser.samples[i]
    if smp.t >= stop then break end
    add_sample({ samples = list }, smp)
  end
  return list
end

--[[ Samples of a series grouped into periods over [start, end), only those
     visible at `now` (nil: all): { [bucket_t] = {samples} }, ordered keys.
     `world` is needed for a lazy series (its samples are computed now). ]]
function M.buckets(ser, period, start, stop, unit, now, world)
  local base = stats.align_start(start, period)
  local by, order = {}, {}
  if not ser then return by, order end
  local list = ser.samples
  if ser.lazy and sources[ser.ns] then list = lazy_samples(world, ser, base, stop, now) end
  for i = first_at(list, base), #list do
    local smp = list[i]
    if smp.t >= stop then break end
    if (not unit or smp.unit == unit) and not (now and smp.visible and smp.visible > now) then
      local b = base + math.floor((smp.t - base) / period) * period
      if not by[b] then by[b] = {}; order[#order + 1] = b end
      local bucket = by[b]
      bucket[#bucket + 1] = smp
    end
  end
  table.sort(order)
  return by, order
end

--[[ A metric's statistic per period over [start, stop) as a metric math series
     (periods without data left out), from the samples visible at `now`. ]]
function M.metric_series(world, metric, period, stat, unit, start, stop, now)
  local ser = M.get_series(world, metric.Namespace, metric.MetricName, M.norm_dims(metric.Dimensions), false)
  local by, order = M.buckets(ser, period, start, stop, unit, now or world.now, world)
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
