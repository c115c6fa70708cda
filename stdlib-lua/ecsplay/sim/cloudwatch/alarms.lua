--[[
Metric alarms of the simulated CloudWatch: PutMetricAlarm (one metric and
statistic, or metric math over Metrics), evaluation once a minute on the
virtual clock (EvaluationPeriods, DatapointsToAlarm, TreatMissingData, with
AWS's StateReason texts), SetAlarmState, DescribeAlarms, DescribeAlarmHistory,
DeleteAlarms, and the scenario's scripted alarms: `alarms = { [name] = { state
= ..., ["then"] = { at = "3m", state = ... } } }` hold an alarm in the states
the script says at the times it says, whatever the metrics do.
]]
local tables = require "ecsplay.util.tables"
local errors = require "ecsplay.errors"
local sim_util = require "ecsplay.sim.util"
local stats = require "ecsplay.sim.cloudwatch.stats"
local store = require "ecsplay.sim.cloudwatch.store"
local queries = require "ecsplay.sim.cloudwatch.queries"
local limits = require "ecsplay.sim.limits"

local copy = tables.copy
local st = store.st

local M = {}
M.ops = {}
local ops = M.ops

local COMPARE = {
  GreaterThanOrEqualToThreshold = { function(v, th) return v >= th end, "greater than or equal to" },
  GreaterThanThreshold = { function(v, th) return v > th end, "greater than" },
  LessThanThreshold = { function(v, th) return v < th end, "less than" },
  LessThanOrEqualToThreshold = { function(v, th) return v <= th end, "less than or equal to" },
}
local STATES = { OK = true, ALARM = true, INSUFFICIENT_DATA = true }
local TREAT = { breaching = true, notBreaching = true, ignore = true, missing = true }

---------------------------------------------------------------- texts

-- A JSON string literal, for the HistoryData documents AWS answers with.
local function json_string(s)
  return '"' .. tostring(s):gsub('[%c"\\]', function(c)
    local map = { ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }
    return map[c] or string.format("\\u%04x", c:byte())
  end) .. '"'
end

-- A datapoint or threshold as StateReasons show it ("5.0", "0.12345").
local function fmt_num(v)
  if v == math.floor(v) and math.abs(v) < 1e15 then return string.format("%.1f", v) end
  return string.format("%.6g", v)
end

-- "26/11/26 10:05:00", the layout alarm StateReasons use.
local function fmt_reason_time(t)
  return os.date("!%d/%m/%y %H:%M:%S", math.floor(t))
end

---------------------------------------------------------------- state changes

local function history(world, alarm, kind, summary, data)
  local s = st(world)
  s.history[#s.history + 1] = {
    AlarmName = alarm.name, AlarmType = "MetricAlarm", Timestamp = world.now,
    HistoryItemType = kind, HistorySummary = summary, HistoryData = data,
  }
end

-- Moves an alarm to `state` (a StateUpdate history item); false when it already was there.
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

---------------------------------------------------------------- scenario scripts

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

-- A scenario error naming the field `where` of a bad alarm script.
local function script_error(where, what)
  error(errors.new("scenario", { field = where, message = where .. what }), 0)
end

-- Checks a scenario alarm script (scenario.lua checks scenario files; this guards raw tables too).
local function check_script(name, script)
  local where = "scenario alarms[\"" .. name .. "\"]"
  if type(script) ~= "table" then script_error(where, ": expected a table { state = ..., [\"then\"] = ... }") end
  if script.state ~= nil and not STATES[script.state] then
    script_error(where .. ".state", ": expected \"OK\", \"ALARM\" or \"INSUFFICIENT_DATA\", got " .. tostring(script.state))
  end
  local i = 0
  for _, s in ipairs(script_steps(script)) do
    i = i + 1
    local w = where .. ".then" .. (i > 1 and ("[" .. i .. "]") or "")
    s._at = sim_util.duration(s.at, w .. ".at")
    if not STATES[s.state] then
      script_error(w .. ".state", ": expected \"OK\", \"ALARM\" or \"INSUFFICIENT_DATA\", got " .. tostring(s.state))
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
M.apply_scripts = apply_scripts

local function new_alarm(world, name)
  return {
    name = name, arn = world:arn("cloudwatch", "alarm:" .. name),
    state = "INSUFFICIENT_DATA", reason = "Unchecked: Initial alarm creation",
    state_updated = world.now, state_transitioned = world.now,
  }
end

-- The scenario's scripted alarms into the fresh state `s` (sorted by name; a bad script raises).
function M.init_scripted(world, s)
  local scripted = world.scenario and world.scenario.alarms or {}
  for _, name in ipairs(tables.keys(scripted)) do
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
end

---------------------------------------------------------------- PutMetricAlarm

-- The period of a single-metric alarm, its statistic checked.
local function single_metric_period(world, input)
  if not input.Namespace or not input.MetricName then
    world:fail("ValidationError", "A single-metric alarm needs both Namespace and MetricName.")
  end
  if (input.Statistic ~= nil) == (input.ExtendedStatistic ~= nil) then
    world:fail("ValidationError", "Exactly one of Statistic and ExtendedStatistic must be specified.")
  end
  if not stats.parse_stat(input.Statistic or input.ExtendedStatistic) then
    world:fail("ValidationError", "The value " .. tostring(input.ExtendedStatistic) ..
      " for parameter ExtendedStatistic is not a valid statistic.")
  end
  if not stats.valid_period(input.Period) then
    world:fail("ValidationError", "Period must be 10, 30 or a multiple of 60.")
  end
  return input.Period
end

-- The period of a metric math alarm (its returned query's), the queries checked now.
local function metric_math_period(world, input)
  local ret, period = 0, nil
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
  queries.run_queries(world, input.Metrics, world.now - period, world.now, "Metrics")
  return period
end

--[[ AWS's bound on an alarm's evaluation range: Period x EvaluationPeriods at most seven days,
     one day when the period is under an hour (PutMetricAlarm). It also keeps the minute's
     evaluation of every alarm bounded work. ]]
local function check_alarm_range(world, period, n)
  local cw = limits.CLOUDWATCH
  local max = period < 3600 and cw.ALARM_RANGE_SHORT_SECONDS or cw.ALARM_RANGE_SECONDS
  if period * n > max then
    world:fail("ValidationError", string.format("The evaluation range of an alarm (Period x "
      .. "EvaluationPeriods = %.14g seconds) must be at most %d seconds%s.", period * n, max,
      period < 3600 and " for a period under one hour" or ""))
  end
end

-- Checks a PutMetricAlarm request; returns the alarm's period.
local function check_alarm_input(world, input)
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
  local period
  if single then period = single_metric_period(world, input) else period = metric_math_period(world, input) end
  check_alarm_range(world, period, n)
  return period
end

-- An alarm's configuration from a (checked) PutMetricAlarm request.
local function configure(world, alarm, input, period)
  alarm.description = input.AlarmDescription
  alarm.actions_enabled = input.ActionsEnabled ~= false
  alarm.ok_actions = copy(input.OKActions or {})
  alarm.alarm_actions = copy(input.AlarmActions or {})
  alarm.insufficient_actions = copy(input.InsufficientDataActions or {})
  alarm.namespace, alarm.metric_name = input.Namespace, input.MetricName
  alarm.statistic, alarm.extended = input.Statistic, input.ExtendedStatistic
  alarm.dimensions = store.norm_dims(input.Dimensions)
  alarm.dimensions_given = copy(input.Dimensions or {}) -- DescribeAlarms answers in the caller's order
  alarm.metrics = copy(input.Metrics)
  alarm.period = period
  alarm.unit = input.Unit
  alarm.evaluation_periods, alarm.datapoints = input.EvaluationPeriods, input.DatapointsToAlarm
  alarm.threshold, alarm.comparison = input.Threshold, input.ComparisonOperator
  alarm.treat_missing = input.TreatMissingData or "missing"
  alarm.config_updated = world.now
end

function ops.PutMetricAlarm(world, input)
  local s = st(world)
  local name = input.AlarmName
  local period = check_alarm_input(world, input)
  local alarm = s.alarms[name]
  local created = alarm == nil
  if created then
    alarm = new_alarm(world, name)
    s.alarms[name] = alarm
  end
  configure(world, alarm, input, period)
  history(world, alarm, "ConfigurationUpdate", string.format('Alarm "%s" %s', name, created and "created" or "updated"),
    string.format('{"type":%s,"version":"1.0"}', json_string(created and "Create" or "Update")))
  apply_scripts(world)
  return {}
end

---------------------------------------------------------------- evaluation

-- Is namespace one AWS publishes into (its datapoints arrive with the delay)?
local function vended(ns) return type(ns) == "string" and ns:sub(1, 4) == "AWS/" end

--[[ How far behind now the alarm's newest period ends: the publishing delay
     when it reads an AWS service's metrics. AWS evaluates an alarm on the
     most recent datapoints it has (its evaluation range reaches further back
     than EvaluationPeriods), not on periods still being published. ]]
local function lag(world, alarm)
  if vended(alarm.namespace) then return st(world).delay or 0 end
  for _, q in ipairs(alarm.metrics or {}) do
    if q.MetricStat and vended(q.MetricStat.Metric and q.MetricStat.Metric.Namespace) then
      return st(world).delay or 0
    end
  end
  return 0
end

-- The alarm's datapoints for its last EvaluationPeriods visible periods: { {t, v|nil}, ... } oldest first.
local function alarm_points(world, alarm, now)
  local p, n = alarm.period, alarm.evaluation_periods
  local stop = math.floor((now - lag(world, alarm)) / p) * p
  local start = stop - n * p
  local ser
  if alarm.metrics then
    local values, by_id = queries.run_queries(world, alarm.metrics, start, stop, "Metrics", now)
    for id, e in pairs(by_id) do if e.q.ReturnData ~= false then ser = values[id] end end
  else
    local stat = stats.parse_stat(alarm.statistic or alarm.extended)
    ser = store.metric_series(world, { Namespace = alarm.namespace, MetricName = alarm.metric_name,
      Dimensions = alarm.dimensions }, p, stat, alarm.unit, start, stop, now)
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

-- Counts of the points (newest first): present, breaching, missing, and the present ones as text.
local function tally(alarm, points)
  local cmp = COMPARE[alarm.comparison]
  local present, breaching, missing = 0, 0, 0
  local shown = {}
  for i = #points, 1, -1 do
    local pt = points[i]
    if pt.v == nil then
      missing = missing + 1
    else
      present = present + 1
      if cmp[1](pt.v, alarm.threshold) then breaching = breaching + 1 end
      shown[#shown + 1] = string.format("%s (%s)", fmt_num(pt.v), fmt_reason_time(pt.t))
    end
  end
  return present, breaching, missing, "[" .. table.concat(shown, ", ") .. "]"
end

-- One evaluation at minute `now`; true when the state changed.
local function evaluate(world, alarm, now)
  local ok, points = pcall(alarm_points, world, alarm, now)
  if not ok then
    -- a configuration that no longer evaluates (e.g. a bad expression): no data
    return set_state(world, alarm, "INSUFFICIENT_DATA", "Unable to evaluate: " .. tostring(points.message or points))
  end
  local cmp = COMPARE[alarm.comparison]
  local n = #points
  local need = alarm.datapoints or n
  local present, breaching, missing, list = tally(alarm, points)
  local treat = alarm.treat_missing
  if treat == "breaching" then breaching = breaching + missing; present = n end
  if treat == "notBreaching" then present = n end
  if present == 0 then
    if treat == "ignore" then return false end
    return set_state(world, alarm, "INSUFFICIENT_DATA", string.format("Insufficient Data: %d datapoint%s %s unknown.",
      missing, missing == 1 and "" or "s", missing == 1 and "was" or "were"))
  end
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

-- The minute's evaluation of every alarm (by name) the scenario does not script at t.
function M.evaluate_all(world, m, t)
  local s = st(world)
  for _, name in ipairs(tables.keys(s.alarms)) do
    local alarm = s.alarms[name]
    if not (s.scripts[name] and scripted_state(world, s.scripts[name], t)) then
      evaluate(world, alarm, m)
    end
  end
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

---------------------------------------------------------------- reading and changing alarms

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

-- Does alarm `a` (named `name`) pass DescribeAlarms' filters?
local function described(input, names_filter, name, a)
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
  return ok
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
    for _, name in ipairs(tables.keys(s.alarms)) do
      local a = s.alarms[name]
      if described(input, names_filter, name, a) then list[#list + 1] = a end
    end
  end
  local out, token = store.token_page(world, list, input.NextToken, "a", input.MaxRecords or 50, out_alarm)
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
  local out, token = store.token_page(world, list, input.NextToken, "h", input.MaxRecords or 100, copy)
  return { AlarmHistoryItems = out, NextToken = token }
end

return M
