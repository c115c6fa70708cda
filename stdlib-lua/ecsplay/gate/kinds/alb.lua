--[[
The gates on one ALB target group: its 5xx rate and latency (CloudWatch's
AWS/ApplicationELB metrics over the step's visible periods, gate.window;
inconclusive below min_requests requests) and its healthy hosts
(DescribeTargetHealth, now).
]]
local duration = require "ecsplay.duration"
local strings = require "ecsplay.util.strings"
local batch = require "ecsplay.aws.batch"
local options = require "ecsplay.gate.options"
local metrics = require "ecsplay.gate.metrics"
local window = require "ecsplay.gate.window"

local M = {}

-- DescribeTargetHealth once per target group and round however many read it (aws/batch.lua)
local elbv2 = batch.face "elbv2"

-- The options every ALB metric gate takes besides its own.
local WINDOW_OPTIONS = { window = true, period = true, delay = true, settle = true, min_requests = true }

local function allowed(own)
  for k in pairs(WINDOW_OPTIONS) do own[k] = true end
  return own
end

--[[ RequestCount over window w plus the `extra` queries: the request count
     guard shared by the traffic gates. Returns the requests and the data. ]]
local function requests_and(self, w, extra)
  local queries = { metrics.alb_query("req", "RequestCount", "Sum", self.dims, self.period) }
  for _, q in ipairs(extra) do queries[#queries + 1] = q end
  local data = metrics.data(queries, w)
  return metrics.sum(data.req), data
end

-- Too few requests to judge: inconclusive, saying how many there were.
local function quiet(req, min_requests, w)
  return { result = "inconclusive", value = req, unit = "requests",
    threshold = ">= " .. options.num(min_requests) .. " requests",
    detail = string.format("only %d requests in %s", math.floor(req), duration.format(w.to - w.from)) }
end

-- prepare for the gates on one target group: resolves it once (and again if
-- measure runs without prepare_all, as a hand-built tracker may).
local function tg_prepare(kind, opts)
  return function(self)
    self.tg_arn, self.dims = metrics.resolve_target_group(opts.target_group, kind, "target_group")
  end
end

--[[ gate.alb_5xx_rate{ target_group=, below=percent, min_requests=50, include_elb=false }:
     HTTPCode_Target_5XX_Count (plus HTTPCode_ELB_5XX_Count with include_elb)
     / RequestCount × 100 over the window (gate.window). ]]
function M.alb_5xx_rate(opts)
  local kind = "alb_5xx_rate"
  options.check(kind, opts, allowed { target_group = true, below = true, include_elb = true })
  options.target_group(kind, opts, "target_group")
  if not options.finite(opts.below) or opts.below < 0 or opts.below > 100 then
    options.bad(kind, "below", "expected a percentage from 0 to 100, got " .. strings.describe_value(opts.below))
  end
  if opts.include_elb ~= nil and type(opts.include_elb) ~= "boolean" then
    options.bad(kind, "include_elb", "expected true or false, got "
      .. strings.describe_value(opts.include_elb))
  end
  local min_requests = options.min_requests(kind, opts)
  local fields = window.check(kind, opts)
  fields.name = opts.name or ("5xx rate " .. opts.target_group)
  fields.label, fields.unit = opts.name or "5xx", "%"
  fields.prepare = tg_prepare(kind, opts)
  fields.measure = function(self, ctx)
    if not self.dims then self:prepare(ctx) end
    local w = metrics.window_for(self, ctx)
    if not w then return metrics.not_visible(self) end
    local extra = { metrics.alb_query("err", "HTTPCode_Target_5XX_Count", "Sum", self.dims, self.period) }
    if opts.include_elb then
      extra[2] = metrics.alb_query("elb", "HTTPCode_ELB_5XX_Count", "Sum", self.dims, self.period)
    end
    local req, data = requests_and(self, w, extra)
    if req <= 0 or req < min_requests then return quiet(req, min_requests, w) end
    local errors = metrics.sum(data.err) + metrics.sum(data.elb)
    local rate = 100 * errors / req
    local result, threshold = metrics.compare(rate, { below = opts.below })
    return { result = result, value = rate, unit = "%", threshold = threshold .. "%",
      detail = string.format("%d of %d requests", math.floor(errors), math.floor(req)) }
  end
  return options.new_gate(kind, opts, fields)
end

--[[ gate.alb_latency{ target_group=, p=99, below_ms=300, min_requests=50 }:
     TargetResponseTime percentile (the worst period of the window), in milliseconds. ]]
function M.alb_latency(opts)
  local kind = "alb_latency"
  options.check(kind, opts, allowed { target_group = true, p = true, below_ms = true })
  options.target_group(kind, opts, "target_group")
  if not options.finite(opts.below_ms) or opts.below_ms <= 0 then
    options.bad(kind, "below_ms", "expected milliseconds above 0, got " .. strings.describe_value(opts.below_ms))
  end
  local stat = options.percentile(kind, opts.p == nil and 99 or opts.p)
  local min_requests = options.min_requests(kind, opts)
  local fields = window.check(kind, opts)
  fields.name = opts.name or (stat .. " latency " .. opts.target_group)
  fields.label, fields.unit = opts.name or stat, "ms"
  fields.prepare = tg_prepare(kind, opts)
  fields.measure = function(self, ctx)
    if not self.dims then self:prepare(ctx) end
    local w = metrics.window_for(self, ctx)
    if not w then return metrics.not_visible(self) end
    local req, data = requests_and(self, w,
      { metrics.alb_query("lat", "TargetResponseTime", stat, self.dims, self.period) })
    if req <= 0 or req < min_requests then return quiet(req, min_requests, w) end
    local worst = metrics.max_of(data.lat)
    if not worst then return { result = "inconclusive", detail = "no latency datapoints" } end
    local ms = worst * 1000
    local result, threshold = metrics.compare(ms, { below = opts.below_ms })
    return { result = result, value = ms, unit = "ms", threshold = threshold .. " ms",
      detail = string.format("worst %s of %s", self.period == 60 and "minute" or duration.format(self.period),
        duration.format(w.to - w.from)) }
  end
  return options.new_gate(kind, opts, fields)
end

--[[ gate.alb_healthy_hosts{ target_group=, at_least=n }: from DescribeTargetHealth,
     now (not a metric), so it also works before any traffic. ]]
function M.alb_healthy_hosts(opts)
  local kind = "alb_healthy_hosts"
  options.check(kind, opts, { target_group = true, at_least = true })
  options.target_group(kind, opts, "target_group")
  if math.type(opts.at_least) ~= "integer" or opts.at_least < 1 then
    options.bad(kind, "at_least", "expected an integer of 1 or more, got "
      .. strings.describe_value(opts.at_least))
  end
  return options.new_gate(kind, opts, {
    name = opts.name or ("healthy hosts " .. opts.target_group),
    label = opts.name or "healthy", unit = "count",
    prepare = tg_prepare(kind, opts),
    measure = function(self, ctx)
      if not self.tg_arn then self:prepare(ctx) end
      local n = 0
      local health = elbv2.describe_target_health { TargetGroupArn = self.tg_arn }
      for _, d in ipairs(health.TargetHealthDescriptions or {}) do
        if d.TargetHealth and d.TargetHealth.State == "healthy" then n = n + 1 end
      end
      local result = n >= opts.at_least and "pass" or "fail"
      return { result = result, value = n, unit = "count", threshold = ">= " .. opts.at_least }
    end,
  })
end

return M
