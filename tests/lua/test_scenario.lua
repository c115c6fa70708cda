-- Scenario files: loading, normalising, and errors that name file, line and field.
local T = require "harness"
local scenario = require "ecsplay.sim.scenario"

local dir = T.tmpdir()
local n = 0
local function write(src)
  n = n + 1
  local path = string.format("%s/s%d.lua", dir, n)
  local f = assert(io.open(path, "w"))
  f:write(src)
  f:close()
  return path
end

local function load_err(src)
  local path = write(src)
  local ok, err = pcall(scenario.load, path)
  T.ok(not ok, "expected the scenario to be refused")
  return tostring(err), path, err
end

T.test("the SCENARIO.md example loads and normalises", function()
  local path = write([[
return {
  seed  = 42,
  start = "2026-11-26T10:00:00Z",
  keys  = { AKIDSIMULATOR = "s3cret" },
  world = "default",
  setup = function(aws) end,
  traffic = { rps = 200 },
  images = {
    ["api:v2"]  = { start = "40s" },
    ["api:bad"] = { crash = "on_start" },
    ["api:oom"] = { crash = "after", after = "3m" },
    ["api:v3"]  = { error_rate = function(ctx) return ctx.weight >= 25 and 0.08 or 0.001 end,
                    latency_ms = { p50 = 45, p99 = 220 } },
    ["~:canary$"] = { start = 10 },
  },
  alarms = { ["api-p99-high"] = { state = "OK", ["then"] = { at = "12m", state = "ALARM" } } },
  faults = {
    { service = "elbv2", operation = "ModifyRule", error = "ThrottlingException", times = 2 },
    { service = "cloudwatch", operation = "GetMetricData", status = 503, from = "10m", to = "12m" },
    { service = "ecs", operation = "*", delay = "2s" },
    { service = "elbv2", operation = "ModifyRule", drop = true, times = 1, at = "20m" },
  },
}
]])
  local s = scenario.load(path)
  T.eq(s.seed, 42)
  T.eq(s.start, 1795687200)
  T.eq(s.images["api:v2"].start, 40)
  T.eq(s.images["api:oom"].after, 180)
  T.eq(type(s.images["api:v3"].error_rate), "function")
  T.eq(s.alarms["api-p99-high"]["then"], { at = 720, state = "ALARM" })
  T.eq(s.faults[2], { service = "cloudwatch", operation = "GetMetricData", status = 503, from = 600, to = 720 })
  T.eq(s.faults[3].delay, 2)
  T.eq(s.faults[4].at, 1200)
  -- lookup order: exact names (sorted) before patterns
  local keys = {}
  for i, e in ipairs(s.image_list) do keys[i] = e.key end
  T.eq(keys, { "api:bad", "api:oom", "api:v2", "api:v3", "~:canary$" })
  T.eq(s.path, path)
end)

T.test("an unknown top-level field is refused with a suggestion and its line", function()
  local msg, path = load_err("return {\n  seed = 1,\n  iamges = {},\n}\n")
  T.ok(msg:find(path .. ":3: iamges: unknown field \"iamges\"; did you mean \"images\"?", 1, true), msg)
end)

T.test("a bad image field names file, line and the field path", function()
  local msg, path = load_err([[
return {
  images = {
    ["api:v1"] = { start = "10s" },
    ["api:v2"] = { start = { 40 } },
  },
}
]])
  T.ok(msg:find(path .. ":4: images[\"api:v2\"].start: expected a duration (\"40s\", \"5m\" or seconds) "
    .. "or a function, got table", 1, true), msg)
end)

T.test("a misspelt image field suggests the right one", function()
  local msg = load_err('return { images = { ["api:v2"] = { eror_rate = 0.5 } } }')
  T.ok(msg:find('images["api:v2"].eror_rate: unknown field "eror_rate"; did you mean "error_rate"?', 1, true), msg)
end)

T.test("error_rate outside 0..1 and crash = after without after", function()
  local msg = load_err('return { images = { ["x:1"] = { error_rate = 2 } } }')
  T.ok(msg:find('images["x:1"].error_rate: expected a number from 0 to 1 or a function, got number 2', 1, true), msg)
  msg = load_err('return { images = { ["x:1"] = { crash = "after" } } }')
  T.ok(msg:find('images["x:1"].after: crash = "after" needs `after`', 1, true), msg)
  msg = load_err('return { images = { ["x:1"] = { crash = "later" } } }')
  T.ok(msg:find('images["x:1"].crash: expected "on_start", "after" or a function', 1, true), msg)
end)

T.test("a bad fault names its index and line", function()
  local msg, path = load_err([[
return {
  faults = {
    { service = "ecs", delay = "2s" },
    { service = "elb", error = "Throttling" },
  },
}
]])
  T.ok(msg:find(path .. ":4: faults[2].service: expected one of", 1, true), msg)
  msg = load_err('return { faults = { { service = "ecs", times = 2 } } }')
  T.ok(msg:find("faults[1]: a fault needs an effect", 1, true), msg)
  msg = load_err('return { faults = { { service = "ecs", delay = 1, from = "5m", to = "1m" } } }')
  T.ok(msg:find("faults[1].to: `to` (60s) must be after `from` (300s)", 1, true), msg)
  msg = load_err('return { faults = { { service = "ecs", status = 200 } } }')
  T.ok(msg:find("faults[1].status: expected an HTTP error status (400-599), got number 200", 1, true), msg)
end)

T.test("seed, start, world, keys and setup are type-checked", function()
  T.ok(load_err("return { seed = 1.5 }"):find("seed: expected an integer, got number 1.5", 1, true))
  T.ok(load_err('return { start = "yesterday" }'):find('start: expected an ISO 8601 time', 1, true))
  T.ok(load_err('return { world = "full" }'):find('world: expected "default" or "empty", got string "full"', 1, true))
  T.ok(load_err('return { setup = 3 }'):find("setup: expected a function(aws), got number 3", 1, true))
  local msg = load_err('return { keys = { AKID = 42 } }')
  T.ok(msg:find('keys.AKID: expected the secret key as a non-empty string, got number', 1, true), msg)
  T.ok(load_err('return { traffic = { rps = -1 } }'):find("traffic.rps: expected a number >= 0", 1, true))
  T.ok(load_err('return { alarms = { a = { state = "RED" } } }'):find('alarms.a.state: expected "OK"', 1, true))
end)

T.test("syntax and runtime errors in the file carry its name and line", function()
  local msg, path = load_err("return {\n  seed = ,\n}\n")
  T.ok(msg:find(path .. ":2:", 1, true), msg)
  msg, path = load_err("local x = nil\nreturn { seed = x.y }\n")
  T.ok(msg:find(path .. ":2:", 1, true), msg)
  msg = load_err("return 42")
  T.ok(msg:find("expected the scenario file to return a table, got number 42", 1, true), msg)
end)

T.test("a missing file says so", function()
  local ok, err = pcall(scenario.load, dir .. "/nope.lua")
  T.ok(not ok)
  T.ok(tostring(err):find("cannot read scenario " .. dir .. "/nope.lua", 1, true), tostring(err))
end)

T.test("the sandbox hides io, os and require", function()
  local msg = load_err("return { seed = os.time() }")
  T.ok(msg:find("attempt to index a nil value (global 'os')", 1, true), msg)
  msg = load_err("require('x') return {}")
  T.ok(msg:find("global 'require'", 1, true), msg)
end)

T.test("check() accepts a table and is idempotent", function()
  local s = scenario.check({ images = { ["a:1"] = { start = "1m" } } }, "inline")
  T.eq(s.images["a:1"].start, 60)
  T.ok(scenario.check(s) == s)
  T.eq(s.world, "default")
  T.raises(function() scenario.check({ sed = 1 }, "inline") end, 'inline: sed: unknown field "sed"; did you mean "seed"%?')
end)

T.test("check_fault for runtime injection", function()
  local f = scenario.check_fault({ service = "ecs", operation = "ListClusters", error = "ThrottlingException", times = 1 })
  T.eq(f, { service = "ecs", operation = "ListClusters", error = "ThrottlingException", times = 1 })
  T.raises(function() scenario.check_fault({ service = "ecs", opertion = "X", drop = true }) end, 'did you mean "operation"')
end)
