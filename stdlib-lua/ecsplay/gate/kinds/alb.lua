--[[
The gates on one ALB target group: its 5xx rate and latency (CloudWatch's
AWS/ApplicationELB metrics over the window, inconclusive below min_requests
requests) and its healthy hosts (DescribeTargetHealth, now).
]]
local duration = require "ecsplay.duration"
local elbv2 = require "ecsplay.elbv2"
local options = require "ecsplay.gate.options"
local metrics = require "ecsplay.gate.metrics"

local M = {}

-- RequestCount over the window plus the `extra` queries: the request count
-- guard shared by the traffic gates. Returns the requests, the data, the window.
local function requests_and(self, ctx, extra)
  local window = metrics.window_of(self, ctx)
  local queries = { metrics.alb_query("req", "RequestCount", "Sum", self.dims) }
  for _, q in ipairs(extra) do queries[#queries + 1] = q end
  local data = metrics.data(queries, window, ctx.now)
  return metrics.sum(data.req), data, window
end

-- Too few requests to judge: inconclusive, saying how many there were.
local function quiet(req, min_requests, window)
  return { result = "inconclusive", value = req, threshold = ">= " .. options.num(min_requests) .. " requests",
    detail = string.format("only %d requests in %s", math.floor(req), duration.format(window)) }
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
     / RequestCount × 100 over the window. ]]
function M.alb_5xx_rate(opts)
  local kind = "alb_5xx_rate"
  options.check(kind, opts, { target_group = true, below = true, include_elb = true,
    window = true, min_requests = true })
  options.target_group(kind, opts, "target_group")
  if not options.finite(opts.below) or opts.below < 0 or opts.below > 100 then
    options.bad(kind, "below", "expected a percentage from 0 to 100, got " .. tostring(opts.below))
  end
  if opts.include_elb ~= nil and type(opts.include_elb) ~= "boolean" then
    options.bad(kind, "include_elb", "expected true or false, got " .. tostring(opts.include_elb))
  end
  local min_requests = options.min_requests(kind, opts)
  return options.new_gate(kind, opts, {
    name = opts.name or ("5xx rate " .. opts.target_group),
    prepare = tg_prepare(kind, opts),
    measure = function(self, ctx)
      if not self.dims then self:prepare(ctx) end
      local extra = { metrics.alb_query("err", "HTTPCode_Target_5XX_Count", "Sum", self.dims) }
      if opts.include_elb then extra[2] = metrics.alb_query("elb", "HTTPCode_ELB_5XX_Count", "Sum", self.dims) end
      local req, data, window = requests_and(self, ctx, extra)
      if req <= 0 or req < min_requests then return quiet(req, min_requests, window) end
      local errors = metrics.sum(data.err) + metrics.sum(data.elb)
      local rate = 100 * errors / req
      local result, threshold = metrics.compare(rate, { below = opts.below })
      return { result = result, value = rate, threshold = threshold .. "%",
        detail = string.format("%d of %d requests", math.floor(errors), math.floor(req)) }
    end,
  })
end

--[[ gate.alb_latency{ target_group=, p=99, below_ms=300, min_requests=50 }:
     TargetResponseTime percentile (worst minute of the window), in milliseconds. ]]
function M.alb_latency(opts)
  local kind = "alb_latency"
  options.check(kind, opts, { target_group = true, p = true, below_ms = true, window = true,
    min_requests = true })
  options.target_group(kind, opts, "target_group")
  if not options.finite(opts.below_ms) or opts.below_ms <= 0 then
    options.bad(kind, "below_ms", "expected milliseconds above 0, got " .. tostring(opts.below_ms))
  end
  local stat = options.percentile(kind, opts.p == nil and 99 or opts.p)
  local min_requests = options.min_requests(kind, opts)
  return options.new_gate(kind, opts, {
    name = opts.name or (stat .. " latency " .. opts.target_group),
    prepare = tg_prepare(kind, opts),
    measure = function(self, ctx)
      if not self.dims then self:prepare(ctx) end
      local req, data, window = requests_and(self, ctx,
        { metrics.alb_query("lat", "TargetResponseTime", stat, self.dims) })
      if req <= 0 or req < min_requests then return quiet(req, min_requests, window) end
      local worst = metrics.max_of(data.lat)
      if not worst then return { result = "inconclusive", detail = "no latency datapoints" } end
      local ms = worst * 1000
      local result, threshold = metrics.compare(ms, { below = opts.below_ms })
      return { result = result, value = ms, threshold = threshold .. " ms",
        detail = string.format("worst minute of %s", duration.format(window)) }
    end,
  })
end

--[[ gate.alb_healthy_hosts{ target_group=, at_least=n }: from DescribeTargetHealth,
     now (not a metric), so it also works before any traffic. ]]
function M.alb_healthy_hosts(opts)
  local kind = "alb_healthy_hosts"
  options.check(kind, opts, { target_group = true, at_least = true })
  options.target_group(kind, opts, "target_group")
  if math.type(opts.at_least) ~= "integer" or opts.at_least < 1 then
    options.bad(kind, "at_least", "expected an integer of 1 or more, got " .. tostring(opts.at_least))
  end
  return options.new_gate(kind, opts, {
    name = opts.name or ("healthy hosts " .. opts.target_group),
    prepare = tg_prepare(kind, opts),
    measure = function(self, ctx)
      if not self.tg_arn then self:prepare(ctx) end
      local n = 0
      local health = elbv2.describe_target_health { TargetGroupArn = self.tg_arn }
      for _, d in ipairs(health.TargetHealthDescriptions or {}) do
        if d.TargetHealth and d.TargetHealth.State == "healthy" then n = n + 1 end
      end
      local result = n >= opts.at_least and "pass" or "fail"
      return { result = result, value = n, threshold = ">= " .. opts.at_least .. " healthy" }
    end,
  })
end

return M
