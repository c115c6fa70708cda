--[[
gate.baseline{ metric="5xx_rate"|"latency", canary=tg, stable=tg, p=99,
min_samples=5, confidence=0.95 }: per-period (per-minute by default) samples
of the canary's target group against the stable one's over every visible
period of the step so far (gate.window; `window` limits it to the last
`window` seconds); fails when the canary is worse with the given confidence
(Mann-Whitney U, gate.stats); inconclusive until both sides have min_samples
periods of data.
]]
local strings = require "ecsplay.util.strings"
local options = require "ecsplay.gate.options"
local metrics = require "ecsplay.gate.metrics"
local stats = require "ecsplay.gate.stats"
local window = require "ecsplay.gate.window"

local M = {}

local KIND = "baseline"

local ALLOWED = { metric = true, canary = true, stable = true, p = true, min_samples = true,
  confidence = true, window = true, period = true, delay = true, settle = true }

local function bad(field, msg) options.bad(KIND, field, msg) end

-- The options -> confidence, min_samples and the latency statistic ("p99").
local function check_baseline(opts)
  if opts.metric ~= "5xx_rate" and opts.metric ~= "latency" then
    bad("metric", "expected \"5xx_rate\" or \"latency\", got " .. strings.describe_value(opts.metric))
  end
  options.target_group(KIND, opts, "canary")
  options.target_group(KIND, opts, "stable")
  local confidence = opts.confidence == nil and 0.95 or opts.confidence
  if not options.finite(confidence) or confidence <= 0.5 or confidence >= 1 then
    bad("confidence", "expected a number between 0.5 and 1, like 0.95, got "
      .. strings.describe_value(confidence))
  end
  local min_samples = opts.min_samples == nil and 5 or opts.min_samples
  if math.type(min_samples) ~= "integer" or min_samples < 3 then
    bad("min_samples", "expected an integer of 3 or more (minutes of data on each side), got "
      .. strings.describe_value(min_samples))
  end
  if opts.p ~= nil and opts.metric ~= "latency" then bad("p", "only with metric = \"latency\"") end
  local stat = options.percentile(KIND, opts.p == nil and 99 or opts.p)
  return confidence, min_samples, stat
end

-- One side's per-period values of `metric` over window w.
local function series(metric, stat, dims, w)
  local q
  if metric == "latency" then
    q = { metrics.alb_query("v", "TargetResponseTime", stat, dims, w.period) }
  else
    local e, r = metrics.alb_query("e", "HTTPCode_Target_5XX_Count", "Sum", dims, w.period),
      metrics.alb_query("r", "RequestCount", "Sum", dims, w.period)
    e.ReturnData, r.ReturnData = false, false
    q = { e, r, { Id = "v", Expression = "100 * FILL(e, 0) / r", ReturnData = true } }
  end
  return metrics.data(q, w).v or {}
end

function M.baseline(opts)
  options.check(KIND, opts, ALLOWED)
  local confidence, min_samples, stat = check_baseline(opts)
  local alpha = 1 - confidence
  local fields = window.check(KIND, opts)
  -- the whole step so far, so samples accumulate
  fields.whole_step = true
  -- it is inconclusive until min_samples periods of data exist on both sides,
  -- so its own default limit leaves room for that
  fields.inconclusive_limit = opts.inconclusive_limit or (min_samples + 2)
  fields.name = opts.name or ("baseline " .. opts.metric .. " " .. opts.canary .. " vs " .. opts.stable)
  fields.label, fields.unit = opts.name or ("baseline " .. opts.metric), "p-value"
  fields.prepare = function(self)
    self.cdims = metrics.alb_dimensions(opts.canary, KIND, "canary")
    self.sdims = metrics.alb_dimensions(opts.stable, KIND, "stable")
  end
  fields.measure = function(self, ctx)
    if not self.cdims then self:prepare(ctx) end
    local w = metrics.window_for(self, ctx)
    if not w then return metrics.not_visible(self) end
    local c = series(opts.metric, stat, self.cdims, w)
    local s = series(opts.metric, stat, self.sdims, w)
    local threshold = string.format("p >= %s", options.num(alpha))
    if #c < min_samples or #s < min_samples then
      return { result = "inconclusive", value = math.min(#c, #s), unit = "samples",
        threshold = ">= " .. min_samples .. " samples each",
        detail = string.format("%d canary and %d stable samples", #c, #s) }
    end
    local p = stats.mann_whitney(c, s)
    if p < alpha then
      return { result = "fail", value = p, unit = "p-value", threshold = threshold, detail = string.format(
        "canary %s worse than stable (%d vs %d samples)", opts.metric, #c, #s) }
    end
    return { result = "pass", value = p, unit = "p-value", threshold = threshold, detail = string.format(
      "no evidence the canary's %s is worse (%d vs %d samples)", opts.metric, #c, #s) }
  end
  return options.new_gate(KIND, opts, fields)
end

return M
