--[[
gate.alarm{ "api-high-cpu", "api-5xx" } (or one name as a string): fails when
any of the CloudWatch alarms is in ALARM; INSUFFICIENT_DATA is inconclusive.
prepare proves every alarm exists, before any change.
]]
local batch = require "ecsplay.aws.batch"
local strings = require "ecsplay.util.strings"
local options = require "ecsplay.gate.options"

local M = {}

-- DescribeAlarms by name lists, shared with every gate reading alarms in the round (aws/batch.lua)
local cloudwatch = batch.face "cloudwatch"

local KIND = "alarm"

-- The alarm names of the options: a list of non-empty strings, at least one.
local function alarm_names(opts)
  for k in pairs(opts) do
    if type(k) ~= "string" and (math.type(k) ~= "integer" or k < 1 or k > #opts) then
      options.bad(KIND, nil, "expected alarm names as a list: gate.alarm{ \"api-5xx-high\", ... }")
    end
  end
  local names = {}
  for i, n in ipairs(opts) do
    if type(n) ~= "string" or n == "" then
      options.bad(KIND, "[" .. i .. "]", "expected an alarm name, got " .. strings.describe_value(n))
    end
    names[i] = n
  end
  if #names == 0 then options.bad(KIND, nil, "give at least one alarm name: gate.alarm{ \"api-5xx-high\" }") end
  return names
end

-- Every alarm (metric or composite) DescribeAlarms answers for `names`, in one list.
local function describe_alarms(names)
  local res = cloudwatch.describe_alarms { AlarmNames = names }
  local all = {}
  for _, list in ipairs { res.MetricAlarms or {}, res.CompositeAlarms or {} } do
    for _, a in ipairs(list) do all[#all + 1] = a end
  end
  return all
end

local function measure(names)
  local alarming, unknown = {}, {}
  local found = describe_alarms(names)
  for _, a in ipairs(found) do
    if a.StateValue == "ALARM" then alarming[#alarming + 1] = a.AlarmName
    elseif a.StateValue ~= "OK" then unknown[#unknown + 1] = a.AlarmName end
  end
  local threshold = "no alarm in ALARM"
  if #alarming > 0 then
    return { result = "fail", value = #alarming, unit = "count", threshold = threshold,
      detail = "in ALARM: " .. table.concat(alarming, ", ") }
  end
  if #unknown > 0 then
    return { result = "inconclusive", threshold = threshold,
      detail = "INSUFFICIENT_DATA: " .. table.concat(unknown, ", ") }
  end
  if #found < #names then
    return { result = "inconclusive", threshold = threshold,
      detail = string.format("only %d of %d alarms exist", #found, #names) }
  end
  return { result = "pass", value = 0, unit = "count", threshold = threshold }
end

function M.alarm(opts)
  if type(opts) == "string" then opts = { opts } end
  options.check(KIND, opts, {})
  local names = alarm_names(opts)
  return options.new_gate(KIND, opts, {
    name = opts.name or ("alarm " .. table.concat(names, ",")),
    label = opts.name or "alarm", unit = "count",
    prepare = function()
      local found = {}
      for _, a in ipairs(describe_alarms(names)) do found[a.AlarmName] = true end
      for i, n in ipairs(names) do
        if not found[n] then options.bad(KIND, "[" .. i .. "]", "alarm `" .. n .. "` does not exist" .. options.in_region()) end
      end
    end,
    measure = function() return measure(names) end,
  })
end

return M
