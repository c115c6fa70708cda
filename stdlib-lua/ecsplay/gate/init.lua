--[[
Metric gates: the checks a rollout runs while it bakes at each step.

A gate is a table { name=, kind=, prepare=fn(ctx), measure=fn(ctx) } plus its
limits. measure returns one measurement:
  { result = "pass"|"fail"|"inconclusive", value = number|nil,
    threshold = string, detail = string|nil }
and may raise (an API error, a provider that is down): that counts as an
{ result = "error" } measurement, as does a measurement that is not one. The tracker (gate.tracker) turns measurements into the
decision: keep baking, promote, or abort, per gate:
  failure_limit      consecutive failed measurements before abort (default 1)
  inconclusive_limit consecutive measurements without data before abort (3)
  error_limit        consecutive errors of the provider before abort (3)
  dry_run            measure and report, never abort
A step is promoted only when its last measurement of every gate (dry-run
gates aside) passed, so a quiet canary is never promoted on no data; the ALB
traffic gates are inconclusive below min_requests (50) requests in the window.
Options are checked when the gate is built (unknown ones with a did-you-mean),
names of AWS resources in prepare (gate.prepare_all), both before any change:
each a BadInput error naming the field.

Metric windows: each measurement looks at the last `window` seconds (default:
the rollout's interval, at least one 60 s period).
]]
local duration = require "ecsplay.duration"

local M = {}

-- Options every gate takes; the metric gates add `window` (and the ALB
-- traffic gates `min_requests`) to their own lists.
local COMMON = {
  failure_limit = true, inconclusive_limit = true, error_limit = true, dry_run = true, name = true,
}

local bad_input = require("ecsplay.errors").bad_input

local function bad(kind, msg) error(bad_input("gate." .. kind .. ": " .. msg), 0) end

-- Thresholds and values as people write them: 1 not 1.0, 0.95 not 0.94999999.
local function num(v)
  if math.type(v) == "integer" then return tostring(v) end
  if v == math.floor(v) and math.abs(v) < 1e15 then return string.format("%d", v) end
  return string.format("%.6g", v)
end

local function levenshtein(a, b)
  local prev = {}
  for j = 0, #b do prev[j] = j end
  for i = 1, #a do
    local cur = { [0] = i }
    for j = 1, #b do
      local cost = a:byte(i) == b:byte(j) and 0 or 1
      cur[j] = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
    end
    prev = cur
  end
  return prev[#b]
end

local function suggest(key, allowed)
  local names = {}
  for k in pairs(allowed) do names[#names + 1] = k end
  table.sort(names) -- ties resolve the same way every run
  local best, best_d
  for _, k in ipairs(names) do
    local d = levenshtein(key:lower(), k:lower())
    if not best_d or d < best_d then best, best_d = k, d end
  end
  if best and best_d <= math.max(2, #key // 3) then return "; did you mean `" .. best .. "`?" end
  return "; expected one of " .. table.concat(names, ", ")
end

--[[ Checks a gate's options before anything is sent: unknown keys, the
     limits, dry_run, name and window; each error names the field. ]]
local function check_opts(kind, opts, allowed)
  if type(opts) ~= "table" then bad(kind, "expected a table of options, got " .. type(opts)) end
  local all = {}
  for a in pairs(allowed) do all[a] = true end
  for a in pairs(COMMON) do all[a] = true end
  for k in pairs(opts) do
    if type(k) == "string" and not all[k] then
      bad(kind, "unknown option `" .. k .. "`" .. suggest(k, all))
    end
  end
  for _, lim in ipairs { "failure_limit", "inconclusive_limit", "error_limit" } do
    local v = opts[lim]
    if v ~= nil and (math.type(v) ~= "integer" or v < 1) then
      bad(kind, lim .. ": expected an integer of 1 or more, got " .. tostring(v))
    end
  end
  if opts.dry_run ~= nil and type(opts.dry_run) ~= "boolean" then
    bad(kind, "dry_run: expected true or false, got " .. tostring(opts.dry_run))
  end
  if opts.name ~= nil and type(opts.name) ~= "string" then
    bad(kind, "name: expected a string, got " .. type(opts.name))
  end
  if opts.window ~= nil then
    local w, err = duration.parse(opts.window)
    if not w then bad(kind, "window: " .. err) end
    if w < 60 then bad(kind, "window: expected at least 60s (one CloudWatch period), got " .. duration.format(w)) end
  end
end

local function finite(v) return type(v) == "number" and v == v and v ~= math.huge and v ~= -math.huge end

-- above=/below= thresholds: numbers, at least one, and not contradictory.
local function check_thresholds(kind, opts)
  for _, f in ipairs { "above", "below" } do
    if opts[f] ~= nil and not finite(opts[f]) then
      bad(kind, f .. ": expected a number, got " .. (type(opts[f]) == "string" and string.format("%q", opts[f])
        or tostring(opts[f])))
    end
  end
  if opts.above == nil and opts.below == nil then bad(kind, "give a threshold: above= or below=") end
  if opts.above ~= nil and opts.below ~= nil and opts.above >= opts.below then
    bad(kind, string.format("above: %s is not below below= %s, so no value could pass", num(opts.above),
      num(opts.below)))
  end
end

local function check_min_requests(kind, opts)
  local v = opts.min_requests
  if v ~= nil and not (finite(v) and v >= 0) then
    bad(kind, "min_requests: expected a number of requests (0 or more), got " .. tostring(v))
  end
  return v or 50
end

local function check_target_group(kind, opts, field)
  local v = opts[field]
  if type(v) ~= "string" or v == "" then
    bad(kind, field .. ": required: a target group name or ARN, got " .. tostring(v))
  end
end

-- Percentile p (0 < p < 100) -> CloudWatch's statistic name ("p99", "p99.9").
local function percentile_stat(kind, p)
  if not finite(p) or p <= 0 or p >= 100 then
    bad(kind, "p: expected a percentile between 0 and 100, like 99 or 99.9, got "
      .. (type(p) == "string" and string.format("%q", p) or tostring(p)))
  end
  return "p" .. num(p)
end

local function new_gate(kind, opts, fields)
  local g = {
    kind = kind,
    name = opts.name or fields.name or kind,
    failure_limit = opts.failure_limit,
    inconclusive_limit = opts.inconclusive_limit,
    error_limit = opts.error_limit,
    dry_run = opts.dry_run and true or false,
    window = opts.window and duration.parse(opts.window) or nil,
  }
  for k, v in pairs(fields) do g[k] = v end
  if opts.name then g.name = opts.name end
  return g
end

local function compare(value, opts)
  local parts = {}
  if opts.above ~= nil then parts[#parts + 1] = "> " .. num(opts.above) end
  if opts.below ~= nil then parts[#parts + 1] = "< " .. num(opts.below) end
  local threshold = table.concat(parts, " and ")
  if opts.below ~= nil and not (value < opts.below) then return "fail", threshold end
  if opts.above ~= nil and not (value > opts.above) then return "fail", threshold end
  return "pass", threshold
end

local function window_of(g, ctx)
  return math.max(60, g.window or ctx.interval or 60)
end

-- CloudWatch -----------------------------------------------------------------

--[[ Resolves a target group name or ARN: its ARN and its ALB metric
     dimensions. `kind` and `field` name the option in the error when the
     group does not exist or has no load balancer (so no ALB metrics). ]]
local function resolve_target_group(target_group, kind, field)
  local where = "gate" .. (kind and ("." .. kind) or "") .. ": " .. (field or "target_group") .. ": "
  local elbv2 = require "ecsplay.elbv2"
  local params = target_group:match("^arn:") and { TargetGroupArns = { target_group } }
    or { Names = { target_group } }
  local ok, res = pcall(elbv2.describe_target_groups, params)
  if not ok then
    if type(res) == "table" and (res.code == "TargetGroupNotFound" or res.code == "ValidationError") then
      error(bad_input(where .. "target group `" .. target_group .. "` does not exist"), 0)
    end
    error(res, 0)
  end
  local tg = res.TargetGroups and res.TargetGroups[1]
  if not tg then error(bad_input(where .. "target group `" .. target_group .. "` does not exist"), 0) end
  local lb = tg.LoadBalancerArns and tg.LoadBalancerArns[1]
  if not lb then
    error(bad_input(where .. "target group `" .. target_group .. "` is not attached to a load balancer, "
      .. "so it has no ALB metrics"), 0)
  end
  return tg.TargetGroupArn, {
    { Name = "TargetGroup", Value = tg.TargetGroupArn:match(":(targetgroup/.+)$") },
    { Name = "LoadBalancer", Value = lb:match(":loadbalancer/(.+)$") },
  }
end

-- Target group name or ARN -> its ALB metric dimensions (TargetGroup, LoadBalancer).
function M.alb_dimensions(target_group, kind, field)
  local _, dims = resolve_target_group(target_group, kind, field)
  return dims
end

-- One GetMetricData over the window; returns id -> array of values (newest first).
local function metric_data(queries, window, now)
  local cloudwatch = require "ecsplay.cloudwatch"
  local out = {}
  local token
  repeat
    local res = cloudwatch.get_metric_data {
      MetricDataQueries = queries, StartTime = now - window, EndTime = now, NextToken = token,
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

local function sum(values)
  local s = 0
  for _, v in ipairs(values or {}) do s = s + v end
  return s
end

local function max_of(values)
  local m
  for _, v in ipairs(values or {}) do if not m or v > m then m = v end end
  return m
end

local function min_of(values)
  local m
  for _, v in ipairs(values or {}) do if not m or v < m then m = v end end
  return m
end

local STATS = { SampleCount = true, Sum = true, Average = true, Minimum = true, Maximum = true }
local AGGREGATES = { last = true, sum = true, max = true, min = true, avg = true }

local function valid_stat(stat)
  if STATS[stat] then return true end
  local p = type(stat) == "string" and tonumber(stat:match("^p(%d+%.?%d*)$") or "")
  return p ~= nil and p > 0 and p < 100
end

local function valid_period(p)
  return math.type(p) == "integer" and p > 0 and (p % 60 == 0 or p == 1 or p == 5 or p == 10
    or p == 20 or p == 30)
end

local function check_metric(kind, where, m)
  if type(m) ~= "table" then bad(kind, where .. ": expected {namespace=, metric=, dimensions=, stat=}") end
  for _, f in ipairs { "namespace", "metric" } do
    if type(m[f]) ~= "string" or m[f] == "" then
      bad(kind, where .. f .. ": required: a string, got " .. tostring(m[f]))
    end
  end
  if m.dimensions ~= nil and type(m.dimensions) ~= "table" then
    bad(kind, where .. "dimensions: expected { Name = value, ... } or { {Name=, Value=}, ... }")
  end
  if m.stat ~= nil and not valid_stat(m.stat) then
    bad(kind, where .. "stat: expected SampleCount, Sum, Average, Minimum, Maximum or a percentile like "
      .. "p99, got " .. tostring(m.stat))
  end
  if m.period ~= nil and not valid_period(m.period) then
    bad(kind, where .. "period: expected seconds: 1, 5, 10, 20, 30 or a multiple of 60, got " .. tostring(m.period))
  end
end

local function dimension_list(dimensions)
  local dims = {}
  for k, v in pairs(dimensions or {}) do
    dims[#dims + 1] = type(k) == "number" and v or { Name = k, Value = tostring(v) }
  end
  table.sort(dims, function(a, b) return tostring(a.Name) < tostring(b.Name) end)
  return dims
end

--[[ gate.cloudwatch{ name=, expression="m1/m2", metrics={ m1={namespace=, metric=,
     dimensions={Name=value}, stat="Sum", period=60}, ... }, above=/below=,
     aggregate="last"|"sum"|"max"|"min"|"avg" (over the window's datapoints) }
     or with a single metric: gate.cloudwatch{ namespace=, metric=, dimensions=, stat=, below= } ]]
function M.cloudwatch(opts)
  check_opts("cloudwatch", opts, { expression = true, metrics = true, above = true, below = true,
    namespace = true, metric = true, dimensions = true, stat = true, period = true, aggregate = true,
    window = true })
  check_thresholds("cloudwatch", opts)
  local metrics, result_id
  if opts.expression ~= nil then
    if type(opts.expression) ~= "string" or opts.expression == "" then
      bad("cloudwatch", "expression: expected a metric math expression like \"m1/m2*100\"")
    end
    if type(opts.metrics) ~= "table" or next(opts.metrics) == nil then
      bad("cloudwatch", "metrics: required with expression=: { m1 = {namespace=, metric=, ...}, ... }")
    end
    for _, f in ipairs { "namespace", "metric", "dimensions", "stat", "period" } do
      if opts[f] ~= nil then bad("cloudwatch", f .. ": goes inside metrics= when expression= is given") end
    end
    metrics, result_id = opts.metrics, "gate"
  elseif opts.metrics ~= nil then
    bad("cloudwatch", "metrics: needs expression= (or give one metric with namespace= and metric=)")
  else
    if opts.metric == nil then bad("cloudwatch", "metric: give metric= (one metric) or expression= with metrics=") end
    metrics, result_id = { m1 = { namespace = opts.namespace, metric = opts.metric,
      dimensions = opts.dimensions, stat = opts.stat, period = opts.period } }, "m1"
  end
  local ids = {}
  for id, m in pairs(metrics) do
    if type(id) ~= "string" or not id:match("^[a-z][%w_]*$") or id == "gate" then
      bad("cloudwatch", "metrics: ids must start with a lowercase letter (CloudWatch's rule) and not be "
        .. "`gate`, got " .. tostring(id))
    end
    check_metric("cloudwatch", opts.expression and ("metrics." .. id .. ".") or "", m)
    ids[#ids + 1] = id
  end
  table.sort(ids)
  local aggregate = opts.aggregate or "last"
  if not AGGREGATES[aggregate] then
    bad("cloudwatch", "aggregate: expected \"last\", \"sum\", \"max\", \"min\" or \"avg\", got " .. tostring(aggregate))
  end
  local function build_queries()
    local queries = {}
    for _, id in ipairs(ids) do
      local m = metrics[id]
      queries[#queries + 1] = { Id = id, ReturnData = opts.expression == nil, MetricStat = {
        Metric = { Namespace = m.namespace, MetricName = m.metric, Dimensions = dimension_list(m.dimensions) },
        Period = m.period or 60, Stat = m.stat or "Average" } }
    end
    if opts.expression then
      queries[#queries + 1] = { Id = "gate", Expression = opts.expression, ReturnData = true }
    end
    return queries
  end
  return new_gate("cloudwatch", opts, {
    name = opts.name or (opts.expression or opts.metric),
    -- the query is checked against CloudWatch's model before any change, so a
    -- bad dimension is a usage error now rather than three failed measurements later
    prepare = function(self)
      local ok, err = require("ecsplay.aws.validate").check(require("ecsplay.aws.model").load("cloudwatch"),
        "GetMetricData", { MetricDataQueries = build_queries(), StartTime = 0, EndTime = 60 })
      if not ok then
        bad("cloudwatch", string.format("`%s`: its query is not valid: %s", self.name,
          tostring(err.message or err):gsub("^cloudwatch GetMetricData: ", "")))
      end
    end,
    measure = function(self, ctx)
      local window = window_of(self, ctx)
      local values = metric_data(build_queries(), window, ctx.now)[result_id] or {}
      local _, threshold = compare(0, opts)
      if #values == 0 then
        return { result = "inconclusive", threshold = threshold,
          detail = "no datapoints in the last " .. duration.format(window) }
      end
      local v
      if aggregate == "sum" then v = sum(values)
      elseif aggregate == "max" then v = max_of(values)
      elseif aggregate == "min" then v = min_of(values)
      elseif aggregate == "avg" then v = sum(values) / #values
      else v = values[1] end -- newest first (TimestampDescending)
      local result
      result, threshold = compare(v, opts)
      return { result = result, value = v, threshold = threshold,
        detail = aggregate ~= "last" and string.format("%s of %d datapoints", aggregate, #values) or nil }
    end,
  })
end

-- The request count guard shared by the ALB gates.
local function requests_and(self, ctx, extra)
  local window = window_of(self, ctx)
  local queries = { { Id = "req", ReturnData = true, MetricStat = { Period = 60, Stat = "Sum",
    Metric = { Namespace = "AWS/ApplicationELB", MetricName = "RequestCount", Dimensions = self.dims } } } }
  for _, q in ipairs(extra) do queries[#queries + 1] = q end
  local data = metric_data(queries, window, ctx.now)
  return sum(data.req), data, window
end

local function alb_query(id, metric, stat, dims)
  return { Id = id, ReturnData = true, MetricStat = { Period = 60, Stat = stat,
    Metric = { Namespace = "AWS/ApplicationELB", MetricName = metric, Dimensions = dims } } }
end

local function quiet(req, min_requests, window)
  return { result = "inconclusive", value = req, threshold = ">= " .. num(min_requests) .. " requests",
    detail = string.format("only %d requests in %s", math.floor(req), duration.format(window)) }
end

-- prepare for the gates on one target group: resolves it once (and again if
-- measure runs without prepare_all, as a hand-built tracker may).
local function tg_prepare(kind, opts)
  return function(self)
    self.tg_arn, self.dims = resolve_target_group(opts.target_group, kind, "target_group")
  end
end

--[[ gate.alb_5xx_rate{ target_group=, below=percent, min_requests=50, include_elb=false }:
     HTTPCode_Target_5XX_Count (plus HTTPCode_ELB_5XX_Count with include_elb)
     / RequestCount × 100 over the window. ]]
function M.alb_5xx_rate(opts)
  check_opts("alb_5xx_rate", opts, { target_group = true, below = true, include_elb = true,
    window = true, min_requests = true })
  check_target_group("alb_5xx_rate", opts, "target_group")
  if not finite(opts.below) or opts.below < 0 or opts.below > 100 then
    bad("alb_5xx_rate", "below: expected a percentage from 0 to 100, got " .. tostring(opts.below))
  end
  if opts.include_elb ~= nil and type(opts.include_elb) ~= "boolean" then
    bad("alb_5xx_rate", "include_elb: expected true or false, got " .. tostring(opts.include_elb))
  end
  local min_requests = check_min_requests("alb_5xx_rate", opts)
  return new_gate("alb_5xx_rate", opts, {
    name = opts.name or ("5xx rate " .. opts.target_group),
    prepare = tg_prepare("alb_5xx_rate", opts),
    measure = function(self, ctx)
      if not self.dims then self:prepare(ctx) end
      local extra = { alb_query("err", "HTTPCode_Target_5XX_Count", "Sum", self.dims) }
      if opts.include_elb then extra[2] = alb_query("elb", "HTTPCode_ELB_5XX_Count", "Sum", self.dims) end
      local req, data, window = requests_and(self, ctx, extra)
      if req <= 0 or req < min_requests then return quiet(req, min_requests, window) end
      local errors = sum(data.err) + sum(data.elb)
      local rate = 100 * errors / req
      local result, threshold = compare(rate, { below = opts.below })
      return { result = result, value = rate, threshold = threshold .. "%",
        detail = string.format("%d of %d requests", math.floor(errors), math.floor(req)) }
    end,
  })
end

--[[ gate.alb_latency{ target_group=, p=99, below_ms=300, min_requests=50 }:
     TargetResponseTime percentile (worst minute of the window), in milliseconds. ]]
function M.alb_latency(opts)
  check_opts("alb_latency", opts, { target_group = true, p = true, below_ms = true, window = true,
    min_requests = true })
  check_target_group("alb_latency", opts, "target_group")
  if not finite(opts.below_ms) or opts.below_ms <= 0 then
    bad("alb_latency", "below_ms: expected milliseconds above 0, got " .. tostring(opts.below_ms))
  end
  local stat = percentile_stat("alb_latency", opts.p == nil and 99 or opts.p)
  local min_requests = check_min_requests("alb_latency", opts)
  return new_gate("alb_latency", opts, {
    name = opts.name or (stat .. " latency " .. opts.target_group),
    prepare = tg_prepare("alb_latency", opts),
    measure = function(self, ctx)
      if not self.dims then self:prepare(ctx) end
      local req, data, window = requests_and(self, ctx,
        { alb_query("lat", "TargetResponseTime", stat, self.dims) })
      if req <= 0 or req < min_requests then return quiet(req, min_requests, window) end
      local worst = max_of(data.lat)
      if not worst then return { result = "inconclusive", detail = "no latency datapoints" } end
      local ms = worst * 1000
      local result, threshold = compare(ms, { below = opts.below_ms })
      return { result = result, value = ms, threshold = threshold .. " ms",
        detail = string.format("worst minute of %s", duration.format(window)) }
    end,
  })
end

--[[ gate.alb_healthy_hosts{ target_group=, at_least=n }: from DescribeTargetHealth,
     now (not a metric), so it also works before any traffic. ]]
function M.alb_healthy_hosts(opts)
  check_opts("alb_healthy_hosts", opts, { target_group = true, at_least = true })
  check_target_group("alb_healthy_hosts", opts, "target_group")
  if math.type(opts.at_least) ~= "integer" or opts.at_least < 1 then
    bad("alb_healthy_hosts", "at_least: expected an integer of 1 or more, got " .. tostring(opts.at_least))
  end
  return new_gate("alb_healthy_hosts", opts, {
    name = opts.name or ("healthy hosts " .. opts.target_group),
    prepare = tg_prepare("alb_healthy_hosts", opts),
    measure = function(self, ctx)
      if not self.tg_arn then self:prepare(ctx) end
      local elbv2 = require "ecsplay.elbv2"
      local n = 0
      for _, d in ipairs(elbv2.describe_target_health { TargetGroupArn = self.tg_arn }.TargetHealthDescriptions or {}) do
        if d.TargetHealth and d.TargetHealth.State == "healthy" then n = n + 1 end
      end
      local result = n >= opts.at_least and "pass" or "fail"
      return { result = result, value = n, threshold = ">= " .. opts.at_least .. " healthy" }
    end,
  })
end

--[[ gate.alarm{ "api-high-cpu", "api-5xx" } (or one name as a string): fails
     when any is in ALARM; INSUFFICIENT_DATA is inconclusive. ]]
function M.alarm(opts)
  if type(opts) == "string" then opts = { opts } end
  check_opts("alarm", opts, {})
  local names = {}
  for k in pairs(opts) do
    if type(k) ~= "string" and (math.type(k) ~= "integer" or k < 1 or k > #opts) then
      bad("alarm", "expected alarm names as a list: gate.alarm{ \"api-5xx-high\", ... }")
    end
  end
  for i, n in ipairs(opts) do
    if type(n) ~= "string" or n == "" then bad("alarm", "[" .. i .. "]: expected an alarm name, got " .. tostring(n)) end
    names[i] = n
  end
  if #names == 0 then bad("alarm", "give at least one alarm name: gate.alarm{ \"api-5xx-high\" }") end
  return new_gate("alarm", opts, {
    name = opts.name or ("alarm " .. table.concat(names, ",")),
    prepare = function()
      local cloudwatch = require "ecsplay.cloudwatch"
      local res = cloudwatch.describe_alarms { AlarmNames = names }
      local found = {}
      for _, a in ipairs(res.MetricAlarms or {}) do found[a.AlarmName] = true end
      for _, a in ipairs(res.CompositeAlarms or {}) do found[a.AlarmName] = true end
      for i, n in ipairs(names) do
        if not found[n] then
          error(bad_input("gate.alarm: [" .. i .. "]: alarm `" .. n .. "` does not exist"), 0)
        end
      end
    end,
    measure = function()
      local cloudwatch = require "ecsplay.cloudwatch"
      local res = cloudwatch.describe_alarms { AlarmNames = names }
      local alarming, unknown, seen = {}, {}, 0
      for _, list in ipairs { res.MetricAlarms or {}, res.CompositeAlarms or {} } do
        for _, a in ipairs(list) do
          seen = seen + 1
          if a.StateValue == "ALARM" then alarming[#alarming + 1] = a.AlarmName
          elseif a.StateValue ~= "OK" then unknown[#unknown + 1] = a.AlarmName end
        end
      end
      local threshold = "no alarm in ALARM"
      if #alarming > 0 then
        return { result = "fail", value = #alarming, threshold = threshold,
          detail = "in ALARM: " .. table.concat(alarming, ", ") }
      end
      if #unknown > 0 then
        return { result = "inconclusive", threshold = threshold,
          detail = "INSUFFICIENT_DATA: " .. table.concat(unknown, ", ") }
      end
      if seen < #names then
        return { result = "inconclusive", threshold = threshold,
          detail = string.format("only %d of %d alarms exist", seen, #names) }
      end
      return { result = "pass", value = 0, threshold = threshold }
    end,
  })
end

--[[ gate.http{ url=, status=200, body=pattern, timeout="5s", method=, headers= }:
     one probe per measurement; a connection failure is a failed measurement. ]]
function M.http(opts)
  check_opts("http", opts, { url = true, status = true, body = true, timeout = true, method = true,
    headers = true })
  if type(opts.url) ~= "string" or not opts.url:match("^https?://.") then
    bad("http", "url: expected an http:// or https:// address, got " .. tostring(opts.url))
  end
  local want = opts.status == nil and 200 or opts.status
  if math.type(want) ~= "integer" or want < 100 or want > 599 then
    bad("http", "status: expected an HTTP status code from 100 to 599, got " .. tostring(want))
  end
  local timeout = 5
  if opts.timeout ~= nil then
    local err
    timeout, err = duration.parse(opts.timeout)
    if not timeout then bad("http", "timeout: " .. err) end
    if timeout <= 0 then bad("http", "timeout: expected a duration above 0") end
  end
  if opts.body ~= nil then
    local ok, err = pcall(string.find, "", type(opts.body) == "string" and opts.body or nil)
    if type(opts.body) ~= "string" or not ok then
      bad("http", "body: expected a Lua pattern the body must match" .. (ok and "" or (": " .. tostring(err))))
    end
  end
  if opts.method ~= nil and (type(opts.method) ~= "string" or not opts.method:match("^%a+$")) then
    bad("http", "method: expected an HTTP method like \"GET\", got " .. tostring(opts.method))
  end
  if opts.headers ~= nil and type(opts.headers) ~= "table" then
    bad("http", "headers: expected a table { Name = value }")
  end
  local threshold = "status " .. want
  return new_gate("http", opts, {
    name = opts.name or ("http " .. opts.url),
    measure = function()
      local res, err, kind = require("ecsplay.http").request { url = opts.url, method = opts.method,
        headers = opts.headers, timeout = timeout }
      if not res then
        return { result = "fail", threshold = threshold,
          detail = (kind and (kind .. ": ") or "") .. tostring(err) }
      end
      if res.status ~= want then
        return { result = "fail", value = res.status, threshold = threshold }
      end
      if opts.body and not tostring(res.body):find(opts.body) then
        return { result = "fail", value = res.status, threshold = threshold .. ", body matches " .. opts.body,
          detail = "the body does not match" }
      end
      return { result = "pass", value = res.status, threshold = threshold }
    end,
  })
end

local RESULTS = { pass = true, fail = true, inconclusive = true }

--[[ gate.check(name, fn, opts): any Lua function. fn(ctx) returns true
     (pass), false (fail), nil (inconclusive), "pass"/"fail"/"inconclusive",
     or a measurement table; it may also return a second value, the measured
     number. ]]
function M.check(name, fn, opts)
  if type(name) == "function" then name, fn, opts = "check", name, fn end
  opts = opts or {}
  check_opts("check", opts, {})
  if type(name) ~= "string" then bad("check", "name: expected gate.check(\"name\", function(ctx) ... end)") end
  if type(fn) ~= "function" then bad("check", "expected gate.check(name, function(ctx) ... end), got a " .. type(fn)) end
  return new_gate("check", opts, {
    name = name,
    measure = function(_, ctx)
      local r, value = fn(ctx)
      if type(r) == "table" then return r end
      if r == nil then return { result = "inconclusive", value = value } end
      if type(r) == "string" and RESULTS[r] then return { result = r, value = value } end
      if type(r) ~= "boolean" then
        error(string.format("gate.check `%s`: the function returned %s; expected true, false, nil, "
          .. "\"pass\", \"fail\", \"inconclusive\" or a measurement table", name, tostring(r)), 0)
      end
      return { result = r and "pass" or "fail", value = value }
    end,
  })
end

-- gate.mann_whitney(a, b) -> p, U (see ecsplay/gate/stats.lua)
M.mann_whitney = require("ecsplay.gate.stats").mann_whitney

--[[ gate.baseline{ metric="5xx_rate"|"latency", canary=tg, stable=tg, p=99,
     min_samples=5, confidence=0.95 }: per-minute samples of
     the canary's target group against the stable one's over the bake so far;
     fails when the canary is worse with the given confidence (Mann-Whitney U);
     inconclusive until both sides have min_samples minutes of data. ]]
function M.baseline(opts)
  check_opts("baseline", opts, { metric = true, canary = true, stable = true, p = true,
    min_samples = true, confidence = true, window = true })
  if opts.metric ~= "5xx_rate" and opts.metric ~= "latency" then
    bad("baseline", "metric: expected \"5xx_rate\" or \"latency\", got " .. tostring(opts.metric))
  end
  check_target_group("baseline", opts, "canary")
  check_target_group("baseline", opts, "stable")
  local confidence = opts.confidence == nil and 0.95 or opts.confidence
  if not finite(confidence) or confidence <= 0.5 or confidence >= 1 then
    bad("baseline", "confidence: expected a number between 0.5 and 1, like 0.95, got " .. tostring(confidence))
  end
  local min_samples = opts.min_samples == nil and 5 or opts.min_samples
  if math.type(min_samples) ~= "integer" or min_samples < 3 then
    bad("baseline", "min_samples: expected an integer of 3 or more (minutes of data on each side), got "
      .. tostring(min_samples))
  end
  if opts.p ~= nil and opts.metric ~= "latency" then bad("baseline", "p: only with metric = \"latency\"") end
  local stat = percentile_stat("baseline", opts.p == nil and 99 or opts.p)
  local alpha = 1 - confidence
  local function series(dims, window, now)
    local q
    if opts.metric == "latency" then
      q = { alb_query("v", "TargetResponseTime", stat, dims) }
    else
      local e, r = alb_query("e", "HTTPCode_Target_5XX_Count", "Sum", dims),
        alb_query("r", "RequestCount", "Sum", dims)
      e.ReturnData, r.ReturnData = false, false
      q = { e, r, { Id = "v", Expression = "100 * FILL(e, 0) / r", ReturnData = true } }
    end
    return metric_data(q, window, now).v or {}
  end
  return new_gate("baseline", opts, {
    -- it is inconclusive until min_samples minutes of data exist on both sides,
    -- so its own default limit leaves room for that
    inconclusive_limit = opts.inconclusive_limit or (min_samples + 2),
    name = opts.name or ("baseline " .. opts.metric .. " " .. opts.canary .. " vs " .. opts.stable),
    prepare = function(self)
      self.cdims = M.alb_dimensions(opts.canary, "baseline", "canary")
      self.sdims = M.alb_dimensions(opts.stable, "baseline", "stable")
    end,
    measure = function(self, ctx)
      if not self.cdims then self:prepare(ctx) end
      -- the whole bake so far, so samples accumulate
      local window = math.max(60, ctx.now - (ctx.bake_started or ctx.now - window_of(self, ctx)))
      local c = series(self.cdims, window, ctx.now)
      local s = series(self.sdims, window, ctx.now)
      local threshold = string.format("p >= %s", num(alpha))
      if #c < min_samples or #s < min_samples then
        return { result = "inconclusive", value = math.min(#c, #s),
          threshold = ">= " .. min_samples .. " samples each",
          detail = string.format("%d canary and %d stable samples", #c, #s) }
      end
      local p = M.mann_whitney(c, s)
      if p < alpha then
        return { result = "fail", value = p, threshold = threshold, detail = string.format(
          "canary %s worse than stable (%d vs %d samples)", opts.metric, #c, #s) }
      end
      return { result = "pass", value = p, threshold = threshold, detail = string.format(
        "no evidence the canary's %s is worse (%d vs %d samples)", opts.metric, #c, #s) }
    end,
  })
end

-- Tracker ----------------------------------------------------------------------

-- One line for an error a provider raised (error objects have __tostring).
local function error_text(err)
  if type(err) == "table" then
    local mt = getmetatable(err)
    if mt and mt.__tostring then return tostring(err) end
    return tostring(err.message or err.code or "error")
  end
  return tostring(err)
end

--[[ gate.tracker(gates, defaults) -> tracker with
       :measure(ctx)  -> list of {gate=, m=measurement}
       :verdict()     -> "ok" | "abort", reason
       :all_passed()  -> true when every non-dry-run gate's last measurement passed
     defaults: { failure_limit=, inconclusive_limit=, error_limit= } (the
     rollout's), a gate's own limits win. Counting, per gate: a pass resets
     everything; a fail resets the inconclusive and error streaks; no data
     resets the error streak; only a pass ends a failure streak (fail, no data,
     fail is two failures in a row: missing data is no evidence of recovery). ]]
function M.tracker(gates, defaults)
  defaults = defaults or {}
  local t = { entries = {} }
  for i, g in ipairs(gates or {}) do
    t.entries[i] = {
      gate = g,
      failure_limit = g.failure_limit or defaults.failure_limit or 1,
      inconclusive_limit = g.inconclusive_limit or defaults.inconclusive_limit or 3,
      error_limit = g.error_limit or defaults.error_limit or 3,
      fails = 0, inconclusive = 0, errors = 0, last = nil,
    }
  end

  function t:measure(ctx)
    local out = {}
    for _, e in ipairs(self.entries) do
      local ok, m = pcall(e.gate.measure, e.gate, ctx)
      if not ok then
        if require("ecsplay.sched").is_interrupt(m) then error(m, 0) end
        m = { result = "error", detail = error_text(m) }
      elseif type(m) ~= "table" or not RESULTS[m.result] then
        -- a custom gate's bug is the provider failing, not a crash of the rollout
        m = { result = "error", detail = string.format("gate `%s` returned %s; expected a measurement "
          .. "{ result = \"pass\"|\"fail\"|\"inconclusive\", value=, threshold= }", tostring(e.gate.name),
          type(m) == "table" and ("result = " .. tostring(m.result)) or tostring(m)) }
      end
      if m.result == "pass" then
        e.fails, e.inconclusive, e.errors = 0, 0, 0
      elseif m.result == "fail" then
        e.fails, e.inconclusive, e.errors = e.fails + 1, 0, 0
      elseif m.result == "inconclusive" then
        e.inconclusive, e.errors = e.inconclusive + 1, 0
      else
        e.errors = e.errors + 1
      end
      e.last = m
      out[#out + 1] = { gate = e.gate, m = m }
    end
    return out
  end

  function t:verdict()
    for _, e in ipairs(self.entries) do
      if not e.gate.dry_run then
        local g = e.gate.name
        if e.fails >= e.failure_limit then
          return "abort", string.format("gate `%s` failed %d time(s) in a row (limit %d): %s",
            g, e.fails, e.failure_limit, M.describe(e.last))
        end
        if e.inconclusive >= e.inconclusive_limit then
          return "abort", string.format("gate `%s` was inconclusive %d time(s) in a row (limit %d): %s",
            g, e.inconclusive, e.inconclusive_limit, M.describe(e.last))
        end
        if e.errors >= e.error_limit then
          return "abort", string.format("gate `%s` could not be measured %d time(s) in a row (limit %d): %s",
            g, e.errors, e.error_limit, M.describe(e.last))
        end
      end
    end
    return "ok"
  end

  function t:all_passed()
    for _, e in ipairs(self.entries) do
      if not e.gate.dry_run and (not e.last or e.last.result ~= "pass") then return false end
    end
    return true
  end

  return t
end

-- One line: "fail 6.1 (want < 1%) 61 of 1000 requests" (result, value, threshold, detail).
function M.describe(m)
  if not m then return "not measured" end
  local parts = { m.result }
  if m.value ~= nil then
    parts[#parts + 1] = type(m.value) == "number" and string.format("%.4g", m.value) or tostring(m.value)
  end
  if m.threshold then parts[#parts + 1] = "(want " .. m.threshold .. ")" end
  if m.detail then parts[#parts + 1] = m.detail end
  return table.concat(parts, " ")
end

-- Calls every gate's prepare (resolving names, proving resources exist).
function M.prepare_all(gates, ctx)
  for i, g in ipairs(gates or {}) do
    if type(g) ~= "table" or type(g.measure) ~= "function" then
      error(bad_input("gates[" .. i .. "]: expected a gate (gate.alb_5xx_rate{...}, gate.check(...), ...), got "
        .. type(g)), 0)
    end
    if g.prepare then g:prepare(ctx) end
  end
end

return M
