-- log.lazy_event (aws/call.lua's per-call `aws.call`): made only when shown; a renderer
-- installed with renderer_hidden = "in_context" sees a hidden one only inside a run context,
-- and log.first_time() keeps the run's first time either way (cli/output.lua's duration).
local T = require "harness"
local log = require "ecsplay.log"

-- Runs fn with a renderer that records what it sees; the clock reads `t`.
local function with_renderer(hidden, verbosity, fn)
  local seen, t = {}, { now = 100 }
  log.configure { renderer = function(rec) seen[#seen + 1] = rec end, renderer_hidden = hidden,
    verbosity = verbosity, clock = function() return t.now end }
  local ok, err = pcall(fn, seen, t)
  log.configure { renderer = false, verbosity = 0, clock = os.time }
  if not ok then error(err, 0) end
end

local built = 0
local function build(service, op)
  built = built + 1
  return service .. " " .. op .. " ok", { service = service, operation = op }
end

T.test("hidden outside a run context: no record for an in_context renderer, first time kept", function()
  with_renderer("in_context", 0, function(seen, t)
    T.eq(log.first_time(), nil, "no event yet")
    built = 0
    log.lazy_event("debug", "aws.call", build, "ecs", "ListClusters")
    t.now = 105
    log.lazy_event("debug", "aws.call", build, "ecs", "ListClusters")
    T.eq(#seen, 0, "the renderer saw nothing")
    T.eq(built, 0, "message and fields never made")
    T.eq(log.first_time(), 100, "the first event's time")
    log.event("info", "log", "shown")
    T.eq(#seen, 1, "a shown event still reaches it")
    T.eq(log.first_time(), 100, "first time unchanged by later events")
  end)
end)

T.test("hidden inside a run context reaches an in_context renderer, without message", function()
  with_renderer("in_context", 0, function(seen)
    local co = coroutine.create(function()
      log.set_context { run_id = "r1", rollout = "api" }
      log.lazy_event("debug", "aws.call", build, "ecs", "DescribeServices")
    end)
    assert(coroutine.resume(co))
    T.eq(#seen, 1)
    T.eq(seen[1].context.run_id, "r1")
    T.eq(seen[1].shown, false)
    T.eq(seen[1].message, nil)
    T.eq(log.first_time(), 100)
  end)
end)

T.test("an all renderer (a terminal's) sees every hidden event", function()
  with_renderer("all", 0, function(seen)
    log.lazy_event("debug", "aws.call", build, "ecs", "ListClusters")
    T.eq(#seen, 1)
    T.eq(seen[1].shown, false)
  end)
end)

T.test("shown (-v): built and rendered with its message", function()
  with_renderer("in_context", 1, function(seen)
    built = 0
    log.lazy_event("debug", "aws.call", build, "ecs", "ListClusters")
    T.eq(built, 1)
    T.eq(#seen, 1)
    T.eq(seen[1].message, "ecs ListClusters ok")
    T.eq(seen[1].shown, true)
  end)
end)

T.test("a new renderer starts a new first time", function()
  with_renderer("in_context", 0, function()
    log.lazy_event("debug", "aws.call", build, "ecs", "ListClusters")
    T.eq(log.first_time(), 100)
  end)
  with_renderer("in_context", 0, function(_, t)
    T.eq(log.first_time(), nil)
    t.now = 200
    log.lazy_event("debug", "aws.call", build, "ecs", "ListClusters")
    T.eq(log.first_time(), 200)
  end)
end)
