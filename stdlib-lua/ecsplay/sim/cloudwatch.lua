--[[
The simulated CloudWatch: metric storage and statistics, GetMetricData with
metric math (sim/metric_math.lua), GetMetricStatistics, ListMetrics, metric
alarms evaluated on the virtual clock, and the ALB target-group metrics
synthesized every minute from the ELBv2 traffic weights and each image's
behaviour.

Storage: one series per (namespace, metric name, exact dimension set); a
series holds samples in time order. A sample is a statistic set
{ t, n, sum, min, max, unit } plus, when known, the raw values
(vals = { {v, count}, ... }) or a latency distribution (dists = { {mu, sigma,
w}, ... }, lognormal in seconds) so percentiles can be answered: exactly from
raw values, by bisection on the mixture CDF when distributions are present.
Statistic sets alone (PutMetricData StatisticValues) answer no percentiles.

Why synthesized samples are stamped at the start of their minute: CloudWatch
labels a datapoint with the start of its period, and a tick at 10:05:00
describes the minute 10:04:00-10:05:00.
]]
local MM = require "ecsplay.sim.metric_math"

local M = { name = "cloudwatch" }

local ALB_NS = "AWS/ApplicationELB"

local function st(world) return world.state.cloudwatch end

---------------------------------------------------------------- small helpers

local util = require "ecsplay.sim.util"
local copy = util.copy

-- Durations in scenario scripts: seconds, or strings "90s", "5m", "1h30m", "2d".
local parse_duration = util.duration
M.parse_duration = parse_duration

local function json_string(s)
  return '"' .. tostring(s):gsub('[%c"\\]', function(c)
    local map = { ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }
    return map[c] or string.format("\\u%04x", c:byte())
  end) .. '"'
end

local function fmt_num(v)
  if v == math.floor(v) and math.abs(v) < 1e15 then return string.format("%.1f", v) end
  return string.format("%.6g", v)
end

-- "26/11/26 10:05:00", the layout alarm StateReasons use.
local function fmt_reason_time(t)
  return os.date("!%d/%m/%y %H:%M:%S", math.floor(t))
end

local function fmt_iso(t)
  return os.date("!%Y-%m-%dT%H:%M:%S", math.floor(t)) .. ".000+0000"
end

--[[ NextToken paging of ListMetrics, DescribeAlarms and DescribeAlarmHistory: the token is
     `prefix` and the 1-based index of the next item, so one operation refuses another's token.
     Returns the page, each item through `render` when given, and the next token or nil. ]]
local function token_page(world, list, token, prefix, max, render)
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

---------------------------------------------------------------- normal distribution

-- erf by Abramowitz-Stegun 7.1.26 (|error| < 1.5e-7), plenty for percentiles.
local function erf(x)
  local sign = x < 0 and -1 or 1
  x = math.abs(x)
  local t = 1 / (1 + 0.3275911 * x)
  local y = 1 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t
    + 0.254829592) * t * math.exp(-x * x)
  return sign * y
end
local function phi(z) return 0.5 * (1 + erf(z / math.sqrt(2))) end

-- Inverse standard normal CDF (Acklam's rational approximation).
local function probit(p)
  if p <= 0 then return -math.huge end
  if p >= 1 then return math.huge end
  local a = { -3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
    1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00 }
  local b = { -5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
    6.680131188771972e+01, -1.328068155288572e+01 }
  local c = { -7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
    -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00 }
  local d = { 7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00, 3.754408661907416e+00 }
  local lo = 0.02425
  if p < lo then
    local q = math.sqrt(-2 * math.log(p))
    return (((((c[1] * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) * q + c[6]) /
      ((((d[1] * q + d[2]) * q + d[3]) * q + d[4]) * q + 1)
  elseif p <= 1 - lo then
    local q = p - 0.5
    local r = q * q
    return (((((a[1] * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * r + a[6]) * q /
      (((((b[1] * r + b[2]) * r + b[3]) * r + b[4]) * r + b[5]) * r + 1)
  end
  local q = math.sqrt(-2 * math.log(1 - p))
  return -(((((c[1] * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) * q + c[6]) /
    ((((d[1] * q + d[2]) * q + d[3]) * q + d[4]) * q + 1)
end
M.probit = probit

---------------------------------------------------------------- storage

local function norm_dims(dims)
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

local function get_series(world, ns, name, dims, create)
  local s = st(world)
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
  local smp = copy(value)
  smp.t, smp.unit = t, unit or value.unit
  return smp
end

--[[ put(world, namespace, name, dims, t, value[, unit]): stores one sample.
     dims: { {Name=, Value=}, ... } or { Name = Value, ... }; value: a number,
     or a sample table { n=, sum=, min=, max=, vals=?, dists=? }. ]]
function M.put(world, namespace, name, dims, t, value, unit)
  local ser = get_series(world, namespace, name, norm_dims(dims), true)
  add_sample(ser, sample_from(value, t, unit))
end

---------------------------------------------------------------- statistics

local function parse_stat(stat)
  if stat == "SampleCount" or stat == "Sum" or stat == "Average" or stat == "Minimum" or stat == "Maximum" then
    return { kind = stat }
  end
  local p = type(stat) == "string" and stat:match("^p(%d+%.?%d*)$")
  p = p and tonumber(p)
  if p and p >= 0 and p <= 100 then return { kind = "p", p = p } end
  return nil
end

local function percentile(samples, p)
  local vals, dists, total, lo, hi = {}, {}, 0, math.huge, -math.huge
  for _, smp in ipairs(samples) do
    if smp.dists then
      for _, d in ipairs(smp.dists) do
        dists[#dists + 1] = d
        total = total + d[3]
        lo = math.min(lo, math.exp(d[1] - 8 * d[2]))
        hi = math.max(hi, math.exp(d[1] + 8 * d[2]))
      end
    elseif smp.vals then
      for _, vc in ipairs(smp.vals) do
        vals[#vals + 1] = vc
        total = total + vc[2]
        lo = math.min(lo, vc[1])
        hi = math.max(hi, vc[1])
      end
    end
  end
  if total <= 0 then return nil end
  if #dists == 0 then
    table.sort(vals, function(a, b) return a[1] < b[1] end)
    local rank, acc = p / 100 * total, 0
    for _, vc in ipairs(vals) do
      acc = acc + vc[2]
      if acc >= rank - 1e-9 then return vc[1] end
    end
    return vals[#vals][1]
  end
  local target = p / 100
  local function cdf(x)
    local acc = 0
    for _, d in ipairs(dists) do
      if x > 0 then acc = acc + d[3] * phi((math.log(x) - d[1]) / d[2]) end
    end
    for _, vc in ipairs(vals) do if vc[1] <= x then acc = acc + vc[2] end end
    return acc / total
  end
  for _ = 1, 100 do
    local mid = (lo + hi) / 2
    if cdf(mid) < target then lo = mid else hi = mid end
  end
  return hi
end

-- The statistic of one period's samples, or nil when it has no value.
local function compute(samples, stat)
  if #samples == 0 then return nil end
  local k = stat.kind
  if k == "p" then return percentile(samples, stat.p) end
  local n, sum, mn, mx = 0, 0, math.huge, -math.huge
  for _, smp in ipairs(samples) do
    n = n + smp.n
    sum = sum + smp.sum
    if smp.min < mn then mn = smp.min end
    if smp.max > mx then mx = smp.max end
  end
  if k == "SampleCount" then return n
  elseif k == "Sum" then return sum
  elseif k == "Average" then return n > 0 and sum / n or nil
  elseif k == "Minimum" then return mn
  else return mx end
end

-- CloudWatch rounds StartTime down to the minute (to the period below a minute).
local function align_start(start, period)
  if period < 60 then return math.floor(start / period) * period end
  return math.floor(start / 60) * 60
end

-- Samples of a series grouped into periods over [start, end): { [bucket_t] = {samples} }, ordered keys.
local function buckets(ser, period, start, stop, unit)
  local base = align_start(start, period)
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

local function metric_series(world, metric, period, stat, unit, start, stop)
  local ser = get_series(world, metric.Namespace, metric.MetricName, norm_dims(metric.Dimensions), false)
  local by, order = buckets(ser, period, start, stop, unit)
  local ts, vs = {}, {}
  for _, b in ipairs(order) do
    local v = compute(by[b], stat)
    if v ~= nil then ts[#ts + 1] = b; vs[#vs + 1] = v end
  end
  return MM.series(ts, vs, period)
end

local function valid_period(p)
  return type(p) == "number" and p == math.floor(p) and p > 0 and
    (p % 60 == 0 or p == 1 or p == 5 or p == 10 or p == 20 or p == 30)
end

--[[ Evaluates MetricDataQueries over [start, stop): returns { [id] = value }
     for the queries asked (all when `want` is nil), the queries by id, and
     the order. Raises ValidationError for malformed queries or expressions. ]]
local function run_queries(world, queries, start, stop, param)
  param = param or "MetricDataQueries"
  local by_id, order = {}, {}
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
      local ms = q.MetricStat
      entry.stat = parse_stat(ms.Stat)
      if not entry.stat then
        world:fail("ValidationError", "The value for parameter " .. where .. ".MetricStat.Stat is not a valid statistic.")
      end
      if not valid_period(ms.Period) then
        world:fail("ValidationError", "The parameter " .. where .. ".MetricStat.Period must be 1, 5, 10, 20, 30, " ..
          "or a multiple of 60.")
      end
      if not ms.Metric or not ms.Metric.Namespace or not ms.Metric.MetricName then
        world:fail("ValidationError", "The parameter " .. where .. ".MetricStat.Metric needs Namespace and MetricName.")
      end
    else
      local ast, err = MM.parse(q.Expression)
      if not ast then
        world:fail("ValidationError", string.format("Error in expression '%s' (%s): %s", q.Id, q.Expression, err))
      end
      entry.ast = ast
      if q.Period ~= nil and not valid_period(q.Period) then
        world:fail("ValidationError", "The parameter " .. where .. ".Period must be 1, 5, 10, 20, 30, or a multiple of 60.")
      end
    end
    by_id[q.Id] = entry
    order[#order + 1] = q.Id
  end
  if #order == 0 then world:fail("ValidationError", "The parameter " .. param .. " is required.") end

  local values, busy = {}, {}
  local function grid(period)
    local out = {}
    local t = align_start(start, period)
    while t < stop and #out < 100800 do out[#out + 1] = t; t = t + period end
    return out
  end
  local value
  local function env_for(entry)
    return {
      period = entry.q.Period or 60,
      grid = grid,
      lookup = function(id)
        if not by_id[id] then return nil end
        return value(id)
      end,
      metrics = function(filter)
        local list = {}
        for _, id in ipairs(order) do
          local e = by_id[id]
          if e.q.MetricStat and (not filter or id:find(filter, 1, true) or
              (e.q.Label and e.q.Label:find(filter, 1, true))) then
            list[#list + 1] = value(id)
          end
        end
        return list
      end,
    }
  end
  value = function(id)
    if values[id] then return values[id] end
    local entry = by_id[id]
    if busy[id] then
      world:fail("ValidationError", "Circular dependency between expressions involving '" .. id .. "'")
    end
    busy[id] = true
    local v
    if entry.q.MetricStat then
      local ms = entry.q.MetricStat
      v = metric_series(world, ms.Metric, ms.Period, entry.stat, ms.Unit, start, stop)
    else
      local err
      v, err = MM.eval(entry.ast, env_for(entry))
      if not v then
        world:fail("ValidationError", string.format("Error in expression '%s' (%s): %s", id, entry.q.Expression, err))
      end
      if v.k == "scalar" then
        local g = grid(entry.q.Period or 60)
        local vs = {}
        for i = 1, #g do vs[i] = v.v end
        v = MM.series(g, vs, entry.q.Period or 60)
      elseif v.k == "array" then
        world:fail("ValidationError", string.format("Error in expression '%s' (%s): the expression returns more " ..
          "than one time series; wrap it in SUM, AVG, MIN or MAX", id, entry.q.Expression))
      elseif v.k ~= "series" then
        world:fail("ValidationError", string.format("Error in expression '%s' (%s): the expression must return " ..
          "a time series", id, entry.q.Expression))
      end
    end
    busy[id] = nil
    values[id] = v
    return v
  end
  for _, id in ipairs(order) do value(id) end
  return values, by_id, order
end

---------------------------------------------------------------- operations

M.ops = {}
local ops = M.ops

function ops.PutMetricData(world, input, caller)
  local ns = input.Namespace
  if type(ns) ~= "string" or ns == "" then world:fail("MissingParameter", "The parameter Namespace is required.") end
  if caller == nil and ns:sub(1, 4) == "AWS/" then
    world:fail("InvalidParameterValue", "The value AWS/ for parameter Namespace is invalid.")
  end
  local prepared = {}
  for i, d in ipairs(input.MetricData or {}) do
    local where = "MetricData.member." .. i
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
    local value
    if d.Value ~= nil then
      value = d.Value
    elseif d.Values then
      if d.Counts and #d.Counts ~= #d.Values then
        world:fail("InvalidParameterValue", "The parameters " .. where .. ".Values and " .. where ..
          ".Counts must be of the same size.")
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
      value = smp
    else
      local sv = d.StatisticValues
      if not (sv.SampleCount and sv.Sum and sv.Minimum and sv.Maximum) then
        world:fail("MissingParameter", "The parameter " .. where .. ".StatisticValues needs SampleCount, Sum, " ..
          "Minimum and Maximum.")
      end
      if sv.SampleCount <= 0 or sv.Minimum > sv.Maximum then
        world:fail("InvalidParameterValue", "The parameter " .. where .. ".StatisticValues is inconsistent " ..
          "(SampleCount must be positive and Minimum at most Maximum).")
      end
      value = { n = sv.SampleCount, sum = sv.Sum, min = sv.Minimum, max = sv.Maximum }
    end
    prepared[#prepared + 1] = { d = d, value = value }
  end
  for _, p in ipairs(prepared) do
    M.put(world, ns, p.d.MetricName, p.d.Dimensions, p.d.Timestamp or world.now, p.value, p.d.Unit or "None")
  end
  return {}
end

function ops.GetMetricData(world, input)
  local start, stop = input.StartTime, input.EndTime
  if type(start) ~= "number" or type(stop) ~= "number" then
    world:fail("ValidationError", "The parameters StartTime and EndTime are required.")
  end
  if start >= stop then
    world:fail("ValidationError", "The parameter StartTime must be less than the parameter EndTime.")
  end
  local offset = 0
  if input.NextToken then
    offset = tonumber(input.NextToken:match("^dp(%d+)$") or "")
    if not offset then world:fail("InvalidNextToken", "The NextToken '" .. input.NextToken .. "' is not valid.") end
  end
  local values, by_id, order = run_queries(world, input.MetricDataQueries, start, stop)
  local returned = 0
  for _, id in ipairs(order) do
    if by_id[id].q.ReturnData ~= false then returned = returned + 1 end
  end
  if returned == 0 then
    world:fail("ValidationError", "At least one MetricDataQuery must have ReturnData set to true.")
  end
  local descending = input.ScanBy ~= "TimestampAscending"
  local max = input.MaxDatapoints or 100800
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
  return {
    MetricDataResults = results, Messages = {},
    NextToken = truncated and ("dp" .. (offset + emitted)) or nil,
  }
end

local function datapoint_limit(world, start, stop, period)
  local n = math.ceil((stop - align_start(start, period)) / period)
  if n > 1440 then
    world:fail("InvalidParameterCombination", string.format("You have requested up to %d datapoints, which " ..
      "exceeds the limit of 1,440. You may reduce the datapoints requested by increasing Period, or decreasing " ..
      "the time range.", n))
  end
end

function ops.GetMetricStatistics(world, input)
  local start, stop, period = input.StartTime, input.EndTime, input.Period
  if not valid_period(period) then
    world:fail("InvalidParameterValue", "The parameter Period must be 1, 5, 10, 20, 30, or a multiple of 60.")
  end
  if start >= stop then
    world:fail("InvalidParameterValue", "The parameter StartTime must be less than the parameter EndTime.")
  end
  local stats = input.Statistics or {}
  local ext = input.ExtendedStatistics or {}
  if #stats == 0 and #ext == 0 then
    world:fail("MissingParameter", "The parameter Statistics or ExtendedStatistics must be specified.")
  end
  local ext_parsed = {}
  for i, e in ipairs(ext) do
    local p = parse_stat(e)
    if not p or p.kind ~= "p" then
      world:fail("InvalidParameterValue", "The value " .. tostring(e) .. " for parameter ExtendedStatistics.member." ..
        i .. " is not a valid percentile statistic (p0.0 to p100).")
    end
    ext_parsed[i] = p
  end
  datapoint_limit(world, start, stop, period)
  local ser = get_series(world, input.Namespace, input.MetricName, norm_dims(input.Dimensions), false)
  local by, order = buckets(ser, period, start, stop, input.Unit)
  local dps = {}
  for _, b in ipairs(order) do
    local samples = by[b]
    local dp = { Timestamp = b, Unit = input.Unit or samples[1].unit or "None" }
    for _, s in ipairs(stats) do dp[s] = compute(samples, { kind = s }) end
    if #ext > 0 then
      dp.ExtendedStatistics = {}
      for i, e in ipairs(ext) do dp.ExtendedStatistics[e] = compute(samples, ext_parsed[i]) end
    end
    dps[#dps + 1] = dp
  end
  return { Label = input.MetricName, Datapoints = dps }
end

function ops.ListMetrics(world, input)
  local s = st(world)
  local recent = input.RecentlyActive == "PT3H" and (world.now - 3 * 3600) or nil
  local list = {}
  for _, ser in ipairs(s.series_list) do
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
      local last = ser.samples[#ser.samples]
      ok = last ~= nil and last.t >= recent
    end
    if ok then list[#list + 1] = { Namespace = ser.ns, MetricName = ser.name, Dimensions = copy(ser.dims) } end
  end
  local out, token = token_page(world, list, input.NextToken, "m", 500)
  return { Metrics = out, NextToken = token }
end

---------------------------------------------------------------- alarms

local COMPARE = {
  GreaterThanOrEqualToThreshold = { function(v, th) return v >= th end, "greater than or equal to" },
  GreaterThanThreshold = { function(v, th) return v > th end, "greater than" },
  LessThanThreshold = { function(v, th) return v < th end, "less than" },
  LessThanOrEqualToThreshold = { function(v, th) return v <= th end, "less than or equal to" },
}
local STATES = { OK = true, ALARM = true, INSUFFICIENT_DATA = true }
local TREAT = { breaching = true, notBreaching = true, ignore = true, missing = true }

local function history(world, alarm, kind, summary, data)
  local s = st(world)
  s.history[#s.history + 1] = {
    AlarmName = alarm.name, AlarmType = "MetricAlarm", Timestamp = world.now,
    HistoryItemType = kind, HistorySummary = summary, HistoryData = data,
  }
end

local function set_state(world, alarm, state, reason, reason_data)
  if alarm.state == state then return false end
  local old_state, old_reason = alarm.state, alarm.reason
  alarm.state, alarm.reason, alarm.reason_data = state, reason, reason_data
  alarm.state_updated = world.now
  alarm.state_transitioned = world.now
  history(world, alarm, "StateUpdate", string.format("Alarm updated from %s to %s", old_state, state),
    string.format('{"version":"1.0","oldState":{"stateValue":%s,"stateReason":%s},' ..
      '"newState":{"stateValue":%s,"stateReason":%s}}',
      json_string(old_state), json_string(old_reason or ""), json_string(state), json_string(reason)))
  return true
end

-- A script's `then` is a list of steps or a chain ({ ..., ["then"] = { ... } }); as a list either way.
local function script_steps(script)
  local step = script["then"]
  if type(step) == "table" and step[1] then return step end
  local steps = {}
  while type(step) == "table" do steps[#steps + 1] = step; step = step["then"] end
  return steps
end

-- The scenario-scripted state of an alarm at time t, or nil when not scripted.
local function scripted_state(world, script, t)
  if not script then return nil end
  local state = script.state
  for _, s in ipairs(script_steps(script)) do
    if t >= world.start + s._at then state = s.state end
  end
  return state
end

local function check_script(name, script)
  local where = "scenario alarms[\"" .. name .. "\"]"
  if type(script) ~= "table" then error(where .. ": expected a table { state = ..., [\"then\"] = ... }", 0) end
  if script.state ~= nil and not STATES[script.state] then
    error(where .. ".state: expected \"OK\", \"ALARM\" or \"INSUFFICIENT_DATA\", got " .. tostring(script.state), 0)
  end
  local i = 0
  for _, s in ipairs(script_steps(script)) do
    i = i + 1
    local w = where .. ".then" .. (i > 1 and ("[" .. i .. "]") or "")
    s._at = parse_duration(s.at, w .. ".at")
    if not STATES[s.state] then
      error(w .. ".state: expected \"OK\", \"ALARM\" or \"INSUFFICIENT_DATA\", got " .. tostring(s.state), 0)
    end
  end
end

local function apply_scripts(world)
  local s = st(world)
  for name, script in pairs(s.scripts) do
    local alarm = s.alarms[name]
    local state = alarm and scripted_state(world, script, world.now)
    if state then set_state(world, alarm, state, "Scenario-scripted state: " .. state) end
  end
end

local function new_alarm(world, name)
  return {
    name = name, arn = world:arn("cloudwatch", "alarm:" .. name),
    state = "INSUFFICIENT_DATA", reason = "Unchecked: Initial alarm creation",
    state_updated = world.now, state_transitioned = world.now,
  }
end

function M.init(world)
  local s = { series = {}, series_list = {}, alarms = {}, history = {}, scripts = {}, last_minute = nil }
  local scripted = world.scenario and world.scenario.alarms or {}
  local names = {}
  for name in pairs(scripted) do names[#names + 1] = name end
  table.sort(names)
  for _, name in ipairs(names) do
    check_script(name, scripted[name])
    s.scripts[name] = scripted[name]
    -- A scripted alarm exists even when nothing creates it, so gates can name it.
    local a = new_alarm(world, name)
    a.namespace, a.metric_name, a.statistic = "ecsplay/Scenario", name, "Maximum"
    a.period, a.evaluation_periods, a.threshold = 60, 1, 0
    a.comparison, a.treat_missing, a.dimensions = "GreaterThanThreshold", "missing", {}
    a.actions_enabled, a.ok_actions, a.alarm_actions, a.insufficient_actions = true, {}, {}, {}
    a.config_updated = world.now
    s.alarms[name] = a
  end
  return s
end

function ops.PutMetricAlarm(world, input)
  local s = st(world)
  local name = input.AlarmName
  local single = input.MetricName ~= nil or input.Namespace ~= nil
  if single == (input.Metrics ~= nil) then
    world:fail("ValidationError", "Specify either MetricName, Namespace, Statistic/ExtendedStatistic and Period " ..
      "(a single metric) or Metrics (metric math), not both and not neither.")
  end
  if not COMPARE[input.ComparisonOperator] then
    world:fail("ValidationError", "ComparisonOperator '" .. tostring(input.ComparisonOperator) .. "' is not " ..
      "supported by the simulator (use GreaterThan[OrEqualTo]Threshold or LessThan[OrEqualTo]Threshold).")
  end
  if input.Threshold == nil then world:fail("ValidationError", "Threshold is required for a static threshold alarm.") end
  local n = input.EvaluationPeriods
  if type(n) ~= "number" or n < 1 then world:fail("ValidationError", "EvaluationPeriods must be at least 1.") end
  local m = input.DatapointsToAlarm or n
  if m < 1 or m > n then
    world:fail("ValidationError", "DatapointsToAlarm must be between 1 and EvaluationPeriods (" .. n .. ").")
  end
  if input.TreatMissingData and not TREAT[input.TreatMissingData] then
    world:fail("ValidationError", "TreatMissingData must be one of breaching, notBreaching, ignore, missing.")
  end
  local period, stat
  if single then
    if not input.Namespace or not input.MetricName then
      world:fail("ValidationError", "A single-metric alarm needs both Namespace and MetricName.")
    end
    if (input.Statistic ~= nil) == (input.ExtendedStatistic ~= nil) then
      world:fail("ValidationError", "Exactly one of Statistic and ExtendedStatistic must be specified.")
    end
    stat = parse_stat(input.Statistic or input.ExtendedStatistic)
    if not stat then
      world:fail("ValidationError", "The value " .. tostring(input.ExtendedStatistic) ..
        " for parameter ExtendedStatistic is not a valid statistic.")
    end
    period = input.Period
    if not valid_period(period) then
      world:fail("ValidationError", "Period must be 10, 30 or a multiple of 60.")
    end
  else
    local ret = 0
    for _, q in ipairs(input.Metrics) do
      if q.ReturnData ~= false then
        ret = ret + 1
        period = q.MetricStat and q.MetricStat.Period or q.Period
      end
    end
    if ret ~= 1 then
      world:fail("ValidationError", "Exactly one element of Metrics must have ReturnData set to true.")
    end
    if not period then
      for _, q in ipairs(input.Metrics) do if q.MetricStat then period = q.MetricStat.Period break end end
    end
    period = period or 60
    -- check the queries now (ids, stats, expression syntax) so errors surface at creation
    run_queries(world, input.Metrics, world.now - period, world.now, "Metrics")
  end
  local alarm = s.alarms[name]
  local created = alarm == nil
  if created then
    alarm = new_alarm(world, name)
    s.alarms[name] = alarm
  end
  alarm.description = input.AlarmDescription
  alarm.actions_enabled = input.ActionsEnabled ~= false
  alarm.ok_actions = copy(input.OKActions or {})
  alarm.alarm_actions = copy(input.AlarmActions or {})
  alarm.insufficient_actions = copy(input.InsufficientDataActions or {})
  alarm.namespace, alarm.metric_name = input.Namespace, input.MetricName
  alarm.statistic, alarm.extended = input.Statistic, input.ExtendedStatistic
  alarm.dimensions = norm_dims(input.Dimensions)
  alarm.dimensions_given = copy(input.Dimensions or {}) -- DescribeAlarms answers in the caller's order
  alarm.metrics = copy(input.Metrics)
  alarm.period = period
  alarm.unit = input.Unit
  alarm.evaluation_periods, alarm.datapoints = n, input.DatapointsToAlarm
  alarm.threshold, alarm.comparison = input.Threshold, input.ComparisonOperator
  alarm.treat_missing = input.TreatMissingData or "missing"
  alarm.config_updated = world.now
  history(world, alarm, "ConfigurationUpdate", string.format('Alarm "%s" %s', name, created and "created" or "updated"),
    string.format('{"type":%s,"version":"1.0"}', json_string(created and "Create" or "Update")))
  apply_scripts(world)
  return {}
end

-- The alarm's datapoints for its last EvaluationPeriods periods: { {t, v|nil}, ... } oldest first.
local function alarm_points(world, alarm, now)
  local p, n = alarm.period, alarm.evaluation_periods
  local stop = math.floor(now / p) * p
  local start = stop - n * p
  local ser
  if alarm.metrics then
    local values, by_id = run_queries(world, alarm.metrics, start, stop, "Metrics")
    for id, e in pairs(by_id) do if e.q.ReturnData ~= false then ser = values[id] end end
  else
    local stat = parse_stat(alarm.statistic or alarm.extended)
    ser = metric_series(world, { Namespace = alarm.namespace, MetricName = alarm.metric_name,
      Dimensions = alarm.dimensions }, p, stat, alarm.unit, start, stop)
  end
  local at = {}
  for i, t in ipairs(ser.ts) do at[t] = ser.vs[i] end
  local out = {}
  for k = 0, n - 1 do
    local t = start + k * p
    out[#out + 1] = { t = t, v = at[t] }
  end
  return out
end

local function evaluate(world, alarm, now)
  local ok, points = pcall(alarm_points, world, alarm, now)
  if not ok then
    -- a configuration that no longer evaluates (e.g. a bad expression): no data
    return set_state(world, alarm, "INSUFFICIENT_DATA", "Unable to evaluate: " .. tostring(points.message or points))
  end
  local cmp = COMPARE[alarm.comparison]
  local n = #points
  local need = alarm.datapoints or n
  local present, breaching, missing = 0, 0, 0
  local shown = {}
  for i = n, 1, -1 do
    local pt = points[i]
    if pt.v == nil then
      missing = missing + 1
    else
      present = present + 1
      if cmp[1](pt.v, alarm.threshold) then breaching = breaching + 1 end
      shown[#shown + 1] = string.format("%s (%s)", fmt_num(pt.v), fmt_reason_time(pt.t))
    end
  end
  local treat = alarm.treat_missing
  if treat == "breaching" then breaching = breaching + missing; present = n end
  if treat == "notBreaching" then present = n end
  if present == 0 then
    if treat == "ignore" then return false end
    return set_state(world, alarm, "INSUFFICIENT_DATA", string.format("Insufficient Data: %d datapoint%s %s unknown.",
      missing, missing == 1 and "" or "s", missing == 1 and "was" or "were"))
  end
  local list = "[" .. table.concat(shown, ", ") .. "]"
  if breaching >= need then
    return set_state(world, alarm, "ALARM", string.format(
      "Threshold Crossed: %d out of the last %d datapoints %s %s %s the threshold (%s) " ..
      "(minimum %d datapoint%s for OK -> ALARM transition).", breaching, n, list,
      breaching == 1 and "was" or "were", cmp[2], fmt_num(alarm.threshold), need, need == 1 and "" or "s"))
  end
  local fine = present - breaching
  return set_state(world, alarm, "OK", string.format(
    "Threshold Crossed: %d out of the last %d datapoints %s %s not %s the threshold (%s) " ..
    "(minimum 1 datapoint for ALARM -> OK transition).", fine, n, list,
    fine == 1 and "was" or "were", cmp[2], fmt_num(alarm.threshold)))
end

local function out_alarm(a)
  return {
    AlarmName = a.name, AlarmArn = a.arn, AlarmDescription = a.description,
    AlarmConfigurationUpdatedTimestamp = a.config_updated, ActionsEnabled = a.actions_enabled,
    OKActions = copy(a.ok_actions), AlarmActions = copy(a.alarm_actions),
    InsufficientDataActions = copy(a.insufficient_actions),
    StateValue = a.state, StateReason = a.reason, StateReasonData = a.reason_data,
    StateUpdatedTimestamp = a.state_updated, StateTransitionedTimestamp = a.state_transitioned,
    MetricName = a.metric_name, Namespace = a.namespace, Statistic = a.statistic,
    ExtendedStatistic = a.extended, Dimensions = a.metrics and nil or copy(a.dimensions_given or a.dimensions),
    Period = not a.metrics and a.period or nil, Unit = a.unit,
    EvaluationPeriods = a.evaluation_periods, DatapointsToAlarm = a.datapoints,
    Threshold = a.threshold, ComparisonOperator = a.comparison, TreatMissingData = a.treat_missing,
    Metrics = copy(a.metrics),
  }
end

local function sorted_alarm_names(s)
  local names = {}
  for name in pairs(s.alarms) do names[#names + 1] = name end
  table.sort(names)
  return names
end

function ops.DescribeAlarms(world, input)
  local s = st(world)
  apply_scripts(world)
  local want_metric, want_composite = true, false
  if input.AlarmTypes and #input.AlarmTypes > 0 then
    want_metric = false
    for _, t in ipairs(input.AlarmTypes) do
      if t == "MetricAlarm" then want_metric = true end
      if t == "CompositeAlarm" then want_composite = true end
    end
  end
  if input.AlarmNames and #input.AlarmNames > 0 and input.AlarmNamePrefix then
    world:fail("InvalidParameterCombination", "AlarmNames and AlarmNamePrefix cannot be used together.")
  end
  local names_filter
  if input.AlarmNames and #input.AlarmNames > 0 then
    names_filter = {}
    for _, nm in ipairs(input.AlarmNames) do names_filter[nm] = true end
  end
  local list = {}
  if want_metric then
    for _, name in ipairs(sorted_alarm_names(s)) do
      local a = s.alarms[name]
      local ok = (not names_filter or names_filter[name]) and
        (not input.AlarmNamePrefix or name:sub(1, #input.AlarmNamePrefix) == input.AlarmNamePrefix) and
        (not input.StateValue or a.state == input.StateValue)
      if ok and input.ActionPrefix then
        ok = false
        for _, group in ipairs({ a.ok_actions, a.alarm_actions, a.insufficient_actions }) do
          for _, act in ipairs(group or {}) do
            if act:sub(1, #input.ActionPrefix) == input.ActionPrefix then ok = true end
          end
        end
      end
      if ok then list[#list + 1] = a end
    end
  end
  local out, token = token_page(world, list, input.NextToken, "a", input.MaxRecords or 50, out_alarm)
  return { MetricAlarms = out, CompositeAlarms = want_composite and {} or nil, NextToken = token }
end

function ops.DeleteAlarms(world, input)
  local s = st(world)
  -- AWS deletes the names that exist and ignores the others
  for _, name in ipairs(input.AlarmNames or {}) do s.alarms[name] = nil end
  return {}
end

function ops.SetAlarmState(world, input)
  local s = st(world)
  local alarm = s.alarms[input.AlarmName]
  if not alarm then
    world:fail("ResourceNotFound", "Alarm " .. tostring(input.AlarmName) .. " not found", 404)
  end
  if not STATES[input.StateValue] then
    world:fail("ValidationError", "StateValue must be OK, ALARM or INSUFFICIENT_DATA.")
  end
  if input.StateReasonData and not input.StateReasonData:match("^%s*{.*}%s*$") then
    world:fail("InvalidFormat", "The StateReasonData must be a JSON object.")
  end
  -- temporary, like AWS: the next evaluation (each minute) sets the real state again
  if alarm.state == input.StateValue then
    alarm.reason, alarm.reason_data, alarm.state_updated = input.StateReason, input.StateReasonData, world.now
  else
    set_state(world, alarm, input.StateValue, input.StateReason, input.StateReasonData)
  end
  return {}
end

function ops.DescribeAlarmHistory(world, input)
  local s = st(world)
  local list = {}
  for _, h in ipairs(s.history) do
    local ok = (not input.AlarmName or h.AlarmName == input.AlarmName) and
      (not input.HistoryItemType or h.HistoryItemType == input.HistoryItemType) and
      (not input.StartDate or h.Timestamp >= input.StartDate) and
      (not input.EndDate or h.Timestamp <= input.EndDate)
    if ok and input.AlarmTypes and #input.AlarmTypes > 0 then
      ok = false
      for _, t in ipairs(input.AlarmTypes) do if t == h.AlarmType then ok = true end end
    end
    if ok then list[#list + 1] = h end
  end
  if input.ScanBy ~= "TimestampAscending" then
    local rev = {}
    for i = #list, 1, -1 do rev[#rev + 1] = list[i] end
    list = rev
  end
  local out, token = token_page(world, list, input.NextToken, "h", input.MaxRecords or 100, copy)
  return { AlarmHistoryItems = out, NextToken = token }
end

-- alarm_state(world, name) -> "OK"|"ALARM"|"INSUFFICIENT_DATA"|nil (no such alarm).
function M.alarm_state(world, name)
  local s = st(world)
  local alarm = s.alarms[name]
  if not alarm then return nil end
  local scripted = scripted_state(world, s.scripts[name], world.now)
  if scripted then
    set_state(world, alarm, scripted, "Scenario-scripted state: " .. scripted)
  end
  return alarm.state
end

---------------------------------------------------------------- ALB metrics

local function noisy_count(world, expected, ...)
  if expected <= 0 then return 0 end
  local v = expected + math.sqrt(expected) * world:normal(...)
  return math.max(0, math.floor(v + 0.5))
end

local function latency_dist(world, b, ctx, ...)
  local lat = world:eval(b.latency_ms, ctx) or {}
  local p50 = world:eval(lat.p50, ctx) or 40
  local p99 = world:eval(lat.p99, ctx) or math.max(p50 * 3, p50 + 1)
  p50 = math.max(p50, 0.001)
  p99 = math.max(p99, p50 * 1.0001)
  local sigma = (math.log(p99) - math.log(p50)) / probit(0.99)
  local mu = math.log(p50 / 1000) + 0.02 * world:normal(...)
  return mu, math.max(sigma, 1e-3)
end

--[[ Publishes one minute [m-60, m) of ALB metrics for every target group
     attached to a load balancer. Dimensions: TargetGroup + LoadBalancer (and
     LoadBalancer alone for the load-balancer-wide counts). No requests: no
     RequestCount/HTTPCode/TargetResponseTime datapoint, as AWS. A target
     group with traffic but no healthy target: every request is an
     HTTPCode_ELB_5XX_Count (the simulator does not model ALB's fail-open). ]]
local function synthesize(world, m)
  local elb = world.svc.elbv2
  if not (elb and elb.traffic) then return end
  local ecs = world.svc.ecs
  local traffic = elb.traffic(world)
  local arns = {}
  for arn, e in pairs(traffic) do if e.lb then arns[#arns + 1] = arn end end
  table.sort(arns)
  local t0 = m - 60
  local lb_totals, lb_order = {}, {}
  for _, tg_arn in ipairs(arns) do
    local e = traffic[tg_arn]
    local tg = elb.target_group(world, tg_arn)
    local lb_dim = elb.arn_suffix(e.lb, "lb")
    local dims = { LoadBalancer = lb_dim, TargetGroup = elb.arn_suffix(tg_arn, "tg") }
    local healthy, unhealthy, by_image, images = 0, 0, {}, {}
    for _, key in ipairs(tg.target_list) do
      local t = tg.targets[key]
      local state = elb.target_health(world, tg_arn, t.id, t.port)
      if state == "healthy" then
        healthy = healthy + 1
        local info = t.task_arn and ecs and ecs.task_info and ecs.task_info(world, t.task_arn)
        local image = info and info.image or ""
        if not by_image[image] then by_image[image] = 0; images[#images + 1] = image end
        by_image[image] = by_image[image] + 1
      elseif state == "unhealthy" then
        unhealthy = unhealthy + 1
      end
    end
    table.sort(images)
    M.put(world, ALB_NS, "HealthyHostCount", dims, t0, healthy, "Count")
    M.put(world, ALB_NS, "UnHealthyHostCount", dims, t0, unhealthy, "Count")
    local requests = 0
    if e.rps > 0 then
      requests = math.max(0, math.floor(e.rps * 60 * (1 + 0.02 * world:normal(tg_arn, m, "RequestCount")) + 0.5))
    end
    local lbt = lb_totals[lb_dim]
    if not lbt then
      lbt = { req = 0, t5 = 0, e5 = 0 }
      lb_totals[lb_dim] = lbt
      lb_order[#lb_order + 1] = lb_dim
    end
    if requests > 0 then
      M.put(world, ALB_NS, "RequestCount", dims, t0, requests, "Count")
      lbt.req = lbt.req + requests
      if healthy == 0 then
        M.put(world, ALB_NS, "HTTPCode_ELB_5XX_Count", dims, t0, requests, "Count")
        lbt.e5 = lbt.e5 + requests
      else
        local expected_errors, dists, sum, lo, hi = 0, {}, 0, math.huge, 0
        for _, image in ipairs(images) do
          local share = requests * by_image[image] / healthy
          local b = world:behaviour(image)
          local first = ecs and ecs.image_first_start and image ~= "" and ecs.image_first_start(world, image)
          local ctx = { t = m - (first or m), weight = e.weight, now = m }
          local rate = tonumber(world:eval(b.error_rate, ctx)) or 0
          rate = math.min(1, math.max(0, rate))
          expected_errors = expected_errors + share * rate
          local mu, sigma = latency_dist(world, b, ctx, tg_arn, m, image, "latency")
          dists[#dists + 1] = { mu, sigma, share }
          sum = sum + share * math.exp(mu + sigma * sigma / 2)
          lo = math.min(lo, math.exp(mu - 3 * sigma))
          hi = math.max(hi, math.exp(mu + 3.7 * sigma))
        end
        local errors = math.min(requests, noisy_count(world, expected_errors, tg_arn, m, "5xx"))
        M.put(world, ALB_NS, "HTTPCode_Target_5XX_Count", dims, t0, errors, "Count")
        M.put(world, ALB_NS, "HTTPCode_Target_2XX_Count", dims, t0, requests - errors, "Count")
        M.put(world, ALB_NS, "TargetResponseTime", dims, t0,
          { n = requests, sum = sum, min = lo, max = hi, dists = dists }, "Seconds")
        lbt.t5 = lbt.t5 + errors
      end
    end
  end
  for _, lb_dim in ipairs(lb_order) do
    local lbt = lb_totals[lb_dim]
    local dims = { LoadBalancer = lb_dim }
    if lbt.req > 0 then
      M.put(world, ALB_NS, "RequestCount", dims, t0, lbt.req, "Count")
      M.put(world, ALB_NS, "HTTPCode_Target_5XX_Count", dims, t0, lbt.t5, "Count")
      if lbt.e5 > 0 then M.put(world, ALB_NS, "HTTPCode_ELB_5XX_Count", dims, t0, lbt.e5, "Count") end
    end
  end
end

function M.tick(world, t)
  local s = st(world)
  local minute = math.floor(t / 60) * 60
  if s.last_minute == nil then s.last_minute = minute end
  -- every minute boundary passed since the last tick (one, with the usual 5 s tick)
  for m = s.last_minute + 60, minute, 60 do
    s.last_minute = m
    synthesize(world, m)
    for _, name in ipairs(sorted_alarm_names(s)) do
      local alarm = s.alarms[name]
      if not (s.scripts[name] and scripted_state(world, s.scripts[name], t)) then
        evaluate(world, alarm, m)
      end
    end
  end
  apply_scripts(world)
end

return M
