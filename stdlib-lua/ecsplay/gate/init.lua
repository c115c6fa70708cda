--[[
Metric gates: the checks a rollout runs while it bakes at each step.

A gate is a table { name=, kind=, prepare=fn(ctx), measure=fn(ctx) } plus its
limits. measure returns one measurement:
  { result = "pass"|"fail"|"inconclusive", value = number|nil,
    threshold = string, detail = string|nil }
and may raise (an API error, a provider that is down): that counts as an
{ result = "error" } measurement, as does a measurement that is not one. The
tracker (gate.tracker) turns measurements into the decision: keep baking,
promote, or abort, per gate:
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

Metric windows (gate/window.lua): a metric gate judges only whole periods
that began after its step's weight change was verified (plus `settle`) and
that CloudWatch has finished publishing (period end + `delay`, 3 minutes by
default, <= now); of those, the last `window` seconds (default: the rollout's
interval, at least one `period`). A step's verdict waits until the bake's last
period is visible (gate.ready_at), and a bake or interval shorter than a
gate's period is refused (gate.longest_period).

This file is the public face only; the work is in
  gate/options.lua   checking a gate's options, the gate table
  gate/metrics.lua   CloudWatch queries (ALB dimensions, metric math) and their results
  gate/tracker.lua   prepare_all, measuring every gate, the streaks and the verdict
  gate/window.lua    which periods a metric gate judges
  gate/stats.lua     Mann-Whitney U for gate.baseline
  gate/kinds/*.lua   one file per kind of gate: its options and its measure
]]
local metrics = require "ecsplay.gate.metrics"
local stats = require "ecsplay.gate.stats"
local tracker = require "ecsplay.gate.tracker"
local window = require "ecsplay.gate.window"
local alb = require "ecsplay.gate.kinds.alb"
local alarm = require "ecsplay.gate.kinds.alarm"
local baseline = require "ecsplay.gate.kinds.baseline"
local check = require "ecsplay.gate.kinds.check"
local cloudwatch = require "ecsplay.gate.kinds.cloudwatch"
local http = require "ecsplay.gate.kinds.http"

local M = {}

-- The gates (each documented in its kinds/ file and in docs/strategies.md).
M.alb_5xx_rate = alb.alb_5xx_rate          -- gate.alb_5xx_rate{ target_group=, below=percent }
M.alb_latency = alb.alb_latency            -- gate.alb_latency{ target_group=, p=99, below_ms= }
M.alb_healthy_hosts = alb.alb_healthy_hosts -- gate.alb_healthy_hosts{ target_group=, at_least= }
M.cloudwatch = cloudwatch.cloudwatch       -- gate.cloudwatch{ namespace=, metric=, ... | expression=, metrics= }
M.alarm = alarm.alarm                      -- gate.alarm{ "alarm-name", ... }
M.http = http.http                         -- gate.http{ url=, status=200, body= }
M.check = check.check                      -- gate.check(name, function(ctx) ... end, opts)
M.baseline = baseline.baseline             -- gate.baseline{ metric=, canary=, stable= }

-- Running them (what the rollouts call).
M.prepare_all = tracker.prepare_all        -- gate.prepare_all(gates, ctx): before any change
M.tracker = tracker.new                    -- gate.tracker(gates, defaults) -> :measure :verdict :all_passed
M.describe = tracker.describe              -- gate.describe(measurement) -> one line
M.longest_period = tracker.longest_period  -- gate.longest_period(gates) -> seconds, gate (nil: no metric gate)
M.ready_at = tracker.ready_at              -- gate.ready_at(gates, ctx) -> when the bake's last periods are visible
M.DEFAULT_DELAY = window.DEFAULT_DELAY      -- seconds a metric gate waits for CloudWatch to publish a period

-- Helpers for playbooks that build their own gates.
M.alb_dimensions = metrics.alb_dimensions  -- gate.alb_dimensions(target_group) -> ALB metric dimensions
M.mann_whitney = stats.mann_whitney        -- gate.mann_whitney(a, b) -> p, U

return M
