--[[
The simulated CloudWatch: the service module the simulator loads
(`{ name, init, tick, ops }`) and the functions other parts of the simulator
call (put, alarm_state). Split by concern:
  stats.lua        statistics, percentiles, periods (pure)
  store.lua        metric storage: series, samples, periods, NextToken paging
  metric_math.lua  metric math expressions (pure)
  queries.lua      PutMetricData, GetMetricData, GetMetricStatistics, ListMetrics
  alarms.lua       metric alarms: evaluation each minute, scenario scripts, their operations
  alb.lua          the world's traffic model: the ALB metrics of each minute

The tick: at every minute boundary, first that minute's ALB metrics (their
inputs recorded; the values are computed when read), then every alarm's
evaluation (so an alarm on them sees the minute just ended, once the
publishing delay, state.delay, has passed).
]]
local sim_util = require "ecsplay.sim.util"
local stats = require "ecsplay.sim.cloudwatch.stats"
local store = require "ecsplay.sim.cloudwatch.store"
local queries = require "ecsplay.sim.cloudwatch.queries"
local alarms = require "ecsplay.sim.cloudwatch.alarms"
local alb = require "ecsplay.sim.cloudwatch.alb"
local limits = require "ecsplay.sim.limits"

local M = { name = "cloudwatch" }

-- Durations in scenario scripts: seconds, or strings "90s", "5m", "1h30m", "2d".
M.parse_duration = sim_util.duration
M.probit = stats.probit

--[[ put(world, namespace, name, dims, t, value[, unit]): stores one sample.
     dims: { {Name=, Value=}, ... } or { Name = Value, ... }; value: a number,
     or a sample table { n=, sum=, min=, max=, vals=?, dists=? }. ]]
M.put = store.put

-- alarm_state(world, name) -> "OK"|"ALARM"|"INSUFFICIENT_DATA"|nil (no such alarm).
M.alarm_state = alarms.alarm_state

--[[ Seconds from the end of a period until CloudWatch shows the ALB's
     datapoints for it, unless the scenario's metrics.delay says otherwise:
     an ALB sends each minute's metrics when the minute is over, and AWS
     documents metric data reaching a metric stream's destination within
     3 minutes with the stream's smallest (60 s) buffer; 2 minutes is what is
     left for CloudWatch itself (docs/simulator.md cites both). ]]
M.DEFAULT_DELAY = 120

function M.init(world)
  local metrics = world.scenario and world.scenario.metrics
  local s = { series = {}, series_list = {}, alarms = {}, history = {}, scripts = {}, last_minute = nil,
    delay = metrics and metrics.delay or M.DEFAULT_DELAY }
  alarms.init_scripted(world, s)
  return s
end

function M.tick(world, t)
  local s = store.st(world)
  local minute = math.floor(t / 60) * 60
  if s.last_minute == nil then s.last_minute = minute end
  -- every minute boundary passed since the last tick (one, with the usual 5 s tick)
  for m = s.last_minute + 60, minute, 60 do
    s.last_minute = m
    alb.publish_minute(world, m)
    alarms.evaluate_all(world, m, t)
    -- hourly: datapoints past CloudWatch's retention go (bounded memory however long the run)
    if m % 3600 == 0 then
      store.prune(world, m - limits.CLOUDWATCH.RETENTION_SECONDS)
      alb.prune(world, m - limits.CLOUDWATCH.RETENTION_SECONDS)
    end
  end
  alarms.apply_scripts(world)
end

M.ops = {}
for _, part in ipairs({ queries, alarms }) do
  for name, fn in pairs(part.ops) do M.ops[name] = fn end
end

return M
