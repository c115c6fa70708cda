--[[
Metric gates: the checks a rollout runs while it bakes at each step.

A gate is a table { name=, kind=, prepare=fn(ctx), measure=fn(ctx) } plus its
limits. measure returns one measurement:
  { result = "pass"|"fail"|"inconclusive", value = number|nil,
    threshold = string, detail = string|nil }
and may raise (an API error, a provider that is down): that counts as an
error measurement. The tracker (gate.tracker) turns measurements into the
decision: keep baking, promote, or abort, per gate:
  failure_limit      consecutive failed measurements before abort (default 1)
  inconclusive_limit consecutive measurements without data before abort (3)
  error_limit        consecutive errors of the provider before abort (3)
  dry_run            measure and report, never abort
A step is promoted only when its last measurement of every gate passed, so a
quiet canary is never promoted on no data.

Metric windows: each measurement looks at the last `window` seconds (default:
the rollout's interval, at least one 60 s period).
]]
local duration = require "ecsplay.duration"

local M = {}

local COMMON = {
  failure_limit = true, inconclusive_limit = true, error_limit = true, dry_run = true,
  name = true, window = true, min_requests = true,
}

local function bad(kind, msg)
  error(setmetatable({ code = "BadInput", bad_input = true,
    message = "gate." .. kind .. ": " .. msg }, { __tostring = function(e) return e.message end }), 3)
end

local function suggest(key, allowed)
  local best, best_d
  for k in pairs(allowed) do
    local a, b = key:lower(), k:lower()
    local d = 0
    -- cheap distance: common-prefix mismatch plus length gap, enough for typos
    for i = 1, math.max(#a, #b) do if a:sub(i, i) ~= b:sub(i, i) then d = d + 1 end end
    if not best_d or d < best_d then best, best_d = k, d end
  end
  if best and best_d <= math.max(2, #key // 3) then return "; did you mean `" .. best .. "`?" end
  return ""
end

-- Checks a gate's options: unknown keys are errors that name the key.
local function check_opts(kind, opts, allowed)
  if type(opts) ~= "table" then bad(kind, "expected a table of options, got " .. type(opts)) end
  for k in pairs(opts) do
    if type(k) == "string" and not allowed[k] and not COMMON[k] then
      local all = {}
      for a in pairs(allowed) do all[a] = true end
      for a in pairs(COMMON) do all[a] = true end
      bad(kind, "unknown option `" .. k .. "`" .. suggest(k, all))
    end
  end
  for _, lim in ipairs { "failure_limit", "inconclusive_limit", "error_limit" } do
    local v = opts[lim]
    if v ~= nil and (math.type(v) ~= "integer" or v < 1) then
      bad(kind, lim .. ": expected an integer of 1 or more, got " .. tostring(v))
    end
  end
  if opts.window ~= nil then
    local w, err = duration.parse(opts.window)
    if not w then bad(kind, "window: " .. err) end
  end
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
  return g
end

local function compare(value, opts)
  if opts.below ~= nil and not (value < opts.below) then return "fail", "< " .. opts.below end
  if opts.above ~= nil and not (value > opts.above) then return "fail", "> " .. opts.above end
  local parts = {}
  if opts.below ~= nil then parts[#parts + 1] = "< " .. opts.below end
  if opts.above ~= nil then parts[#parts + 1] = "> " .. opts.above end
  return "pass", table.concat(parts, " and ")
end

local function window_of(g, ctx)
  return math.max(60, g.window or ctx.interval or 60)
end

-- CloudWatch -----------------------------------------------------------------

-- Resolves a target group name or ARN to its ALB metric dimensions.
local function alb_dimensions(target_group)
  local elbv2 = require "ecsplay.elbv2"
  local params = target_group:match("^arn:") and { TargetGroupArns = { target_group } }
    or { Names = { target_group } }
  local ok, res = pcall(elbv2.describe_target_groups, params)
  if not ok then
    if type(res) == "table" and res.code == "TargetGroupNotFound" then
      error(setmetatable({ code = "BadInput", bad_input = true,
        message = "gate: target group `" .. target_group .. "` does not exist" },
        { __tostring = function(e) return e.message end }), 0)
    end
    error(res, 0)
  end
  local tg = res.TargetGroups[1]
  local lb = tg.LoadBalancerArns and tg.LoadBalancerArns[1]
  if not lb then
    error(setmetatable({ code = "BadInput", bad_input = true,
      message = "gate: target group `" .. target_group .. "` is not attached to a load balancer, "
        .. "so it has no ALB metrics" }, { __tostring = function(e) return e.message end }), 0)
  end
  return {
    { Name = "TargetGroup", Value = tg.TargetGroupArn:match(":(targetgroup/.+)$") },
    { Name = "LoadBalancer", Value = lb:match(":loadbalancer/(.+)$") },
  }
end
M.alb_dimensions = alb_dimensions

-- One GetMetricData over the window; returns id -> array of values.
local function metric_data(queries, window, now)
  local cloudwatch = require "ecsplay.cloudwatch"
  local res = cloudwatch.get_metric_data {
    MetricDataQueries = queries,
    StartTime = now - window,
    EndTime = now,
  }
  local out = {}
  for _, r in ipairs(res.MetricDataResults or {}) do out[r.Id] = r.Values or {} end
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

--[[ gate.cloudwatch{ name=, expression="m1/m2", metrics={ m1={namespace=, metric=,
     dimensions={Name=value}, stat="Sum", period=60}, ... }, above=/below=,
     aggregate="last"|"sum"|"max"|"avg" }
     or with a single metric: gate.cloudwatch{ namespace=, metric=, dimensions=, stat=, below= } ]]
function M.cloudwatch(opts)
  check_opts("cloudwatch", opts, { expression = true, metrics = true, above = true, below = true,
    namespace = true, metric = true, dimensions = true, stat = true, period = true, aggregate = true })
  if opts.above == nil and opts.below == nil then bad("cloudwatch", "give a threshold: above= or below=") end
  if opts.expression == nil and opts.metric == nil then
    bad("cloudwatch", "give metric= (one metric) or expression= with metrics=")
  end
  local metrics = opts.metrics or { m1 = { namespace = opts.namespace, metric = opts.metric,
    dimensions = opts.dimensions, stat = opts.stat, period = opts.period } }
  for id, m in pairs(metrics) do
    if type(id) ~= "string" or not id:match("^[a-z][%w_]*$") then
      bad("cloudwatch", "metrics: ids must start with a lowercase letter (CloudWatch's rule), got "
        .. tostring(id))
    end
    if type(m) ~= "table" or type(m.namespace) ~= "string" or type(m.metric) ~= "string" then
      bad("cloudwatch", "metrics." .. id .. ": expected {namespace=, metric=, dimensions=, stat=}")
    end
  end
  local aggregate = opts.aggregate or "last"
  return new_gate("cloudwatch", opts, {
    name = opts.name or (opts.expression or opts.metric),
    threshold_text = nil,
    measure = function(self, ctx)
      local window = window_of(self, ctx)
      local queries = {}
      local ids = {}
      for id in pairs(metrics) do ids[#ids + 1] = id end
      table.sort(ids)
      for _, id in ipairs(ids) do
        local m = metrics[id]
        local dims = {}
        for k, v in pairs(m.dimensions or {}) do
          dims[#dims + 1] = type(k) == "number" and v or { Name = k, Value = tostring(v) }
        end
        queries[#queries + 1] = { Id = id, ReturnData = opts.expression == nil, MetricStat = {
          Metric = { Namespace = m.namespace, MetricName = m.metric, Dimensions = dims },
          Period = m.period or 60, Stat = m.stat or "Average" } }
      end
      if opts.expression then
        queries[#queries + 1] = { Id = "gate", Expression = opts.expression, ReturnData = true }
      end
      local data = metric_data(queries, window, ctx.now)
      local values = data[opts.expression and "gate" or "m1"] or {}
      if #values == 0 then
        return { result = "inconclusive", detail = "no datapoints in the last " .. duration.format(window) }
      end
      local v
      if aggregate == "sum" then v = sum(values)
      elseif aggregate == "max" then v = max_of(values)
      elseif aggregate == "avg" then v = sum(values) / #values
      else v = values[1] end -- newest first (TimestampDescending)
      local result, threshold = compare(v, opts)
      return { result = result, value = v, threshold = threshold }
    end,
  })
end

-- The request count guard shared by the ALB gates.
local function requests_and(self, ctx, dims, extra)
  local window = window_of(self, ctx)
  local queries = { { Id = "req", ReturnData = true, MetricStat = { Period = 60, Stat = "Sum",
    Metric = { Namespace = "AWS/ApplicationELB", MetricName = "RequestCount", Dimensions = dims } } } }
  if extra then queries[2] = extra end
  local data = metric_data(queries, window, ctx.now)
  return sum(data.req), data, window
end

--[[ gate.alb_5xx_rate{ target_group=, below=percent, min_requests=50 }:
     HTTPCode_Target_5XX_Count / RequestCount × 100 over the window. ]]
function M.alb_5xx_rate(opts)
  check_opts("alb_5xx_rate", opts, { target_group = true, below = true, include_elb = true })
  if type(opts.target_group) ~= "string" then bad("alb_5xx_rate", "target_group: expected a name or ARN") end
  if type(opts.below) ~= "number" or opts.below < 0 or opts.below > 100 then
    bad("alb_5xx_rate", "below: expected a percentage from 0 to 100, got " .. tostring(opts.below))
  end
  local min_requests = opts.min_requests or 50
  return new_gate("alb_5xx_rate", opts, {
    name = opts.name or ("5xx rate " .. opts.target_group),
    prepare = function(self) self.dims = alb_dimensions(opts.target_group) end,
    measure = function(self, ctx)
      local req, data, window = requests_and(self, ctx, self.dims, { Id = "err", ReturnData = true,
        MetricStat = { Period = 60, Stat = "Sum", Metric = { Namespace = "AWS/ApplicationELB",
          MetricName = "HTTPCode_Target_5XX_Count", Dimensions = self.dims } } })
      if req < min_requests then
        return { result = "inconclusive", value = req, threshold = ">= " .. min_requests .. " requests",
          detail = string.format("only %d requests in %s", math.floor(req), duration.format(window)) }
      end
      local rate = 100 * sum(data.err) / req
      local result, threshold = compare(rate, { below = opts.below })
      return { result = result, value = rate, threshold = threshold .. "%",
        detail = string.format("%d of %d requests", math.floor(sum(data.err)), math.floor(req)) }
    end,
  })
end

--[[ gate.alb_latency{ target_group=, p=99, below_ms=300 }: TargetResponseTime
     percentile (worst minute of the window), in milliseconds. ]]
function M.alb_latency(opts)
  check_opts("alb_latency", opts, { target_group = true, p = true, below_ms = true })
  if type(opts.target_group) ~= "string" then bad("alb_latency", "target_group: expected a name or ARN") end
  if type(opts.below_ms) ~= "number" or opts.below_ms <= 0 then
    bad("alb_latency", "below_ms: expected milliseconds above 0, got " .. tostring(opts.below_ms))
  end
  local p = opts.p or 99
  if type(p) ~= "number" or p <= 0 or p >= 100 then
    bad("alb_latency", "p: expected a percentile between 0 and 100, like 99 or 99.9")
  end
  local min_requests = opts.min_requests or 50
  local stat = string.format("p%s", (p == math.floor(p)) and string.format("%d", p) or tostring(p))
  return new_gate("alb_latency", opts, {
    name = opts.name or (stat .. " latency " .. opts.target_group),
    prepare = function(self) self.dims = alb_dimensions(opts.target_group) end,
    measure = function(self, ctx)
      local req, data, window = requests_and(self, ctx, self.dims, { Id = "lat", ReturnData = true,
        MetricStat = { Period = 60, Stat = stat, Metric = { Namespace = "AWS/ApplicationELB",
          MetricName = "TargetResponseTime", Dimensions = self.dims } } })
      if req < min_requests then
        return { result = "inconclusive", value = req, threshold = ">= " .. min_requests .. " requests",
          detail = string.format("only %d requests in %s", math.floor(req), duration.format(window)) }
      end
      local worst = max_of(data.lat)
      if not worst then return { result = "inconclusive", detail = "no latency datapoints" } end
      local ms = worst * 1000
      local result, threshold = compare(ms, { below = opts.below_ms })
      return { result = result, value = ms, threshold = threshold .. " ms" }
    end,
  })
end

--[[ gate.alb_healthy_hosts{ target_group=, at_least=n }: from DescribeTargetHealth,
     now (not a metric), so it also works before any traffic. ]]
function M.alb_healthy_hosts(opts)
  check_opts("alb_healthy_hosts", opts, { target_group = true, at_least = true })
  if type(opts.target_group) ~= "string" then bad("alb_healthy_hosts", "target_group: expected a name or ARN") end
  if math.type(opts.at_least) ~= "integer" or opts.at_least < 0 then
    bad("alb_healthy_hosts", "at_least: expected an integer of 0 or more")
  end
  return new_gate("alb_healthy_hosts", opts, {
    name = opts.name or ("healthy hosts " .. opts.target_group),
    prepare = function(self)
      alb_dimensions(opts.target_group) -- proves it exists and has a load balancer
      local elbv2 = require "ecsplay.elbv2"
      local params = opts.target_group:match("^arn:") and { TargetGroupArns = { opts.target_group } }
        or { Names = { opts.target_group } }
      self.arn = elbv2.describe_target_groups(params).TargetGroups[1].TargetGroupArn
    end,
    measure = function(self)
      local elbv2 = require "ecsplay.elbv2"
      local n = 0
      for _, d in ipairs(elbv2.describe_target_health { TargetGroupArn = self.arn }.TargetHealthDescriptions or {}) do
        if d.TargetHealth and d.TargetHealth.State == "healthy" then n = n + 1 end
      end
      local result = n >= opts.at_least and "pass" or "fail"
      return { result = result, value = n, threshold = ">= " .. opts.at_least }
    end,
  })
end

--[[ gate.alarm{ "api-high-cpu", "api-5xx" }: fails when any is in ALARM;
     INSUFFICIENT_DATA is inconclusive. ]]
function M.alarm(opts)
  if type(opts) == "string" then opts = { opts } end
  check_opts("alarm", opts, {})
  local names = {}
  for i, n in ipairs(opts) do
    if type(n) ~= "string" then bad("alarm", "item " .. i .. ": expected an alarm name") end
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
      for _, n in ipairs(names) do
        if not found[n] then
          error(setmetatable({ code = "BadInput", bad_input = true,
            message = "gate.alarm: alarm `" .. n .. "` does not exist" },
            { __tostring = function(e) return e.message end }), 0)
        end
      end
    end,
    measure = function()
      local cloudwatch = require "ecsplay.cloudwatch"
      local res = cloudwatch.describe_alarms { AlarmNames = names }
      local alarming, unknown = {}, {}
      for _, list in ipairs { res.MetricAlarms or {}, res.CompositeAlarms or {} } do
        for _, a in ipairs(list) do
          if a.StateValue == "ALARM" then alarming[#alarming + 1] = a.AlarmName
          elseif a.StateValue == "INSUFFICIENT_DATA" then unknown[#unknown + 1] = a.AlarmName end
        end
      end
      if #alarming > 0 then
        return { result = "fail", value = #alarming, threshold = "no alarm in ALARM",
          detail = "in ALARM: " .. table.concat(alarming, ", ") }
      end
      if #unknown > 0 then
        return { result = "inconclusive", detail = "INSUFFICIENT_DATA: " .. table.concat(unknown, ", ") }
      end
      return { result = "pass", value = 0, threshold = "no alarm in ALARM" }
    end,
  })
end

--[[ gate.http{ url=, status=200, body=pattern, timeout="5s" }: one probe per
     measurement; a connection failure is a failed measurement. ]]
function M.http(opts)
  check_opts("http", opts, { url = true, status = true, body = true, timeout = true, method = true,
    headers = true })
  if type(opts.url) ~= "string" or not opts.url:match("^https?://") then
    bad("http", "url: expected an http:// or https:// address")
  end
  local want = opts.status or 200
  return new_gate("http", opts, {
    name = opts.name or ("http " .. opts.url),
    measure = function()
      local res, err = require("ecsplay.http").request { url = opts.url, method = opts.method,
        headers = opts.headers, timeout = opts.timeout or 5 }
      if not res then
        return { result = "fail", threshold = "status " .. want, detail = err }
      end
      if res.status ~= want then
        return { result = "fail", value = res.status, threshold = "status " .. want }
      end
      if opts.body and not tostring(res.body):find(opts.body) then
        return { result = "fail", value = res.status, threshold = "body matches " .. opts.body }
      end
      return { result = "pass", value = res.status, threshold = "status " .. want }
    end,
  })
end

--[[ gate.check(name, fn): any Lua function. fn(ctx) returns true (pass),
     false (fail), nil (inconclusive), or a measurement table; it may also
     return a second value, the measured number. ]]
function M.check(name, fn, opts)
  if type(name) == "function" then name, fn, opts = "check", name, fn end
  opts = opts or {}
  check_opts("check", opts, {})
  if type(fn) ~= "function" then bad("check", "expected gate.check(name, function(ctx) ... end)") end
  return new_gate("check", opts, {
    name = name,
    measure = function(_, ctx)
      local r, value = fn(ctx)
      if type(r) == "table" then return r end
      if r == nil then return { result = "inconclusive", value = value } end
      return { result = r and "pass" or "fail", value = value, threshold = "true" }
    end,
  })
end

-- Mann-Whitney U, normal approximation with tie correction. Returns the
-- one-sided p-value that `a` tends to be larger than `b`.
function M.mann_whitney(a, b)
  local all = {}
  for _, v in ipairs(a) do all[#all + 1] = { v = v, g = 1 } end
  for _, v in ipairs(b) do all[#all + 1] = { v = v, g = 2 } end
  table.sort(all, function(x, y) return x.v < y.v end)
  local n1, n2, n = #a, #b, #all
  local ranks_a, tie_term = 0, 0
  local i = 1
  while i <= n do
    local j = i
    while j < n and all[j + 1].v == all[i].v do j = j + 1 end
    local rank = (i + j) / 2
    local t = j - i + 1
    if t > 1 then tie_term = tie_term + (t ^ 3 - t) end
    for k = i, j do if all[k].g == 1 then ranks_a = ranks_a + rank end end
    i = j + 1
  end
  local u = ranks_a - n1 * (n1 + 1) / 2
  local mean = n1 * n2 / 2
  local var = n1 * n2 / 12 * ((n + 1) - tie_term / (n * (n - 1)))
  if var <= 0 then return 0.5, u end
  local z = (u - mean - 0.5) / math.sqrt(var) -- continuity correction
  -- upper tail of the standard normal (Abramowitz-Stegun 7.1.26 via erfc)
  local x = z / math.sqrt(2)
  local t = 1 / (1 + 0.3275911 * math.abs(x))
  local erfc = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027
    + t * 1.061405429)))) * math.exp(-x * x)
  if x < 0 then erfc = 2 - erfc end
  return erfc / 2, u
end

--[[ gate.baseline{ metric="5xx_rate"|"latency", canary=tg, stable=tg, p=99,
     min_samples=5, confidence=0.95 }: per-minute samples of the canary's
     target group against the stable one's over the window; fails when the
     canary is worse with the given confidence (Mann-Whitney U). ]]
function M.baseline(opts)
  check_opts("baseline", opts, { metric = true, canary = true, stable = true, p = true,
    min_samples = true, confidence = true })
  if opts.metric ~= "5xx_rate" and opts.metric ~= "latency" then
    bad("baseline", "metric: expected \"5xx_rate\" or \"latency\", got " .. tostring(opts.metric))
  end
  if type(opts.canary) ~= "string" or type(opts.stable) ~= "string" then
    bad("baseline", "canary= and stable= target groups are required")
  end
  local confidence = opts.confidence or 0.95
  if type(confidence) ~= "number" or confidence <= 0.5 or confidence >= 1 then
    bad("baseline", "confidence: expected a number between 0.5 and 1, like 0.95")
  end
  local min_samples = opts.min_samples or 5
  local stat = "p" .. tostring(opts.p or 99)
  local function series(dims, window, now)
    local q
    if opts.metric == "latency" then
      q = { { Id = "v", ReturnData = true, MetricStat = { Period = 60, Stat = stat, Metric = {
        Namespace = "AWS/ApplicationELB", MetricName = "TargetResponseTime", Dimensions = dims } } } }
    else
      q = {
        { Id = "e", ReturnData = false, MetricStat = { Period = 60, Stat = "Sum", Metric = {
          Namespace = "AWS/ApplicationELB", MetricName = "HTTPCode_Target_5XX_Count", Dimensions = dims } } },
        { Id = "r", ReturnData = false, MetricStat = { Period = 60, Stat = "Sum", Metric = {
          Namespace = "AWS/ApplicationELB", MetricName = "RequestCount", Dimensions = dims } } },
        { Id = "v", Expression = "100 * FILL(e, 0) / r", ReturnData = true },
      }
    end
    return metric_data(q, window, now).v or {}
  end
  return new_gate("baseline", opts, {
    name = opts.name or ("baseline " .. opts.metric),
    prepare = function(self)
      self.cdims = alb_dimensions(opts.canary)
      self.sdims = alb_dimensions(opts.stable)
    end,
    measure = function(self, ctx)
      -- the whole bake so far, so samples accumulate
      local window = math.max(60, ctx.now - (ctx.bake_started or ctx.now - window_of(self, ctx)))
      local c = series(self.cdims, window, ctx.now)
      local s = series(self.sdims, window, ctx.now)
      if #c < min_samples or #s < min_samples then
        return { result = "inconclusive", value = #c, threshold = ">= " .. min_samples .. " samples",
          detail = string.format("%d canary and %d stable samples", #c, #s) }
      end
      local p = M.mann_whitney(c, s)
      local result = p < (1 - confidence) and "fail" or "pass"
      return { result = result, value = p, threshold = string.format("p >= %.3g", 1 - confidence),
        detail = "canary worse than stable with p=" .. string.format("%.3g", p) }
    end,
  })
end

-- Tracker ----------------------------------------------------------------------

--[[ gate.tracker(gates, defaults) -> tracker with
       :measure(ctx)  -> list of {gate=, m=measurement, verdict=}
       :verdict()     -> "ok" | "abort", reason
       :all_passed()  -> true when every non-dry-run gate's last measurement passed ]]
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
        m = { result = "error", detail = tostring(type(m) == "table" and (m.message or m.code) or m) }
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

-- "5xx rate api-canary: fail 6.1 (< 1%) 61 of 1000 requests"
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
      error(setmetatable({ code = "BadInput", bad_input = true,
        message = "gates[" .. i .. "]: expected a gate (gate.alb_5xx_rate{...}, gate.check(...), ...), got "
          .. type(g) }, { __tostring = function(e) return e.message end }), 0)
    end
    if g.prepare then g:prepare(ctx) end
  end
end

return M
