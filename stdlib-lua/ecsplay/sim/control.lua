--[[
The simulator's own endpoints under /_sim/ (JSON in and out, no SigV4). They exist for
tests and demos driving `ecsplay sim serve` from outside: look at the world, move the clock,
inject faults. Keys in every answer are sorted and lists ordered by name, so two runs of
the same scenario give byte-identical answers.

  GET    /_sim/world    summary: {time, services[], target_groups[], listeners[],
                        codedeploy_deployments[], alarms[]}
  GET    /_sim/time     {now=epoch, iso=, start=, elapsed=seconds since the scenario start}
  POST   /_sim/advance  body {"seconds": N} (0 <= N <= sim.MAX_ADVANCE, 6 h): jump the clock N
                        seconds; answers /_sim/time. More is refused (400, naming the maximum):
                        the world ticks every 5 simulated seconds, so a jump is work done while
                        every other request waits
  GET    /_sim/faults   {faults=[...]} with each fault's hits so far
  POST   /_sim/faults   body: one fault or a list, same fields as a scenario's faults
                        (durations as "90s" or seconds; at/from/to count from the scenario
                        start); answers {added=N}
  DELETE /_sim/faults   removes every fault (the scenario's too); answers {removed=N}
  POST   /_sim/reset    rebuilds the world from the scenario and restarts its clock
  GET    /_sim/clock    {now, iso, start, elapsed, mode="speed"|"lockstep", speed (speed mode),
                        lease, clients=[{id, state="busy"|"waiting", until, heard}]}
                        (in process: {now, iso, start, elapsed, mode="virtual"})
  POST   /_sim/wait     body {"until": epoch or ISO 8601}, header x-ecsplay-client: ID;
                        answers {now, until, reached} when the time has come, else after a
                        hold (ecsplay.sim.clock); in lockstep the client counts as waiting
  DELETE /_sim/wait     header x-ecsplay-client: ID: that client takes no further part

A simulator serving several Regions and accounts (scenario `regions`, keys with accounts;
sim/regions.lua) keeps a world for each; a query selects one:
  ?region=eu-west-1            that Region's world of the default account
  ?account=210987654321        that account's world in the primary Region
  ?region=R&account=A          both
GET /_sim/world reads the world selected (default: the primary one, the scenario's first
Region and default account); POST /_sim/faults gives each fault without a `region` of its own
the Region selected; GET /_sim/faults lists the faults that reach the Region selected;
every other endpoint accepts the selector and ignores it (all worlds share one clock, and
/_sim/reset rebuilds them all). A Region or account with no world is refused (400, naming
the worlds served).

Errors: 400 {"error": "..."} for bad input, 404 for unknown paths, 405 for a wrong method.
]]
local timestamp = require "ecsplay.util.timestamp"
local tables = require "ecsplay.util.tables"
local json = require "ecsplay.json"
local duration = require "ecsplay.duration"
local errors = require "ecsplay.errors"
local scenario = require "ecsplay.sim.scenario"
local regions = require "ecsplay.sim.regions"

local M = {}

local ARRAY = {}
local function array(t) return setmetatable(t or {}, ARRAY) end
M.array = array

-- Deterministic JSON: sorted keys, arrays for sequences (and tables marked ARRAY).
local function encode(v, out)
  local t = type(v)
  if t == "nil" then out[#out + 1] = "null"
  elseif t == "boolean" then out[#out + 1] = tostring(v)
  elseif t == "number" then
    if math.type(v) == "integer" then out[#out + 1] = string.format("%d", v)
    elseif v ~= v or v == math.huge or v == -math.huge then out[#out + 1] = "null"
    elseif v == math.floor(v) and math.abs(v) < 1e15 then out[#out + 1] = string.format("%d", math.floor(v))
    else out[#out + 1] = string.format("%.14g", v) end
  elseif t == "string" then
    out[#out + 1] = '"' .. v:gsub('[%c"\\]', function(c)
      local map = { ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\t"] = "\\t", ["\r"] = "\\r" }
      return map[c] or string.format("\\u%04x", c:byte())
    end) .. '"'
  elseif t == "table" then
    if getmetatable(v) == ARRAY or #v > 0 then
      out[#out + 1] = "["
      for i = 1, #v do
        if i > 1 then out[#out + 1] = "," end
        encode(v[i], out)
      end
      out[#out + 1] = "]"
    else
      local keys = {}
      for k in pairs(v) do keys[#keys + 1] = tostring(k) end
      table.sort(keys)
      out[#out + 1] = "{"
      for i, k in ipairs(keys) do
        if i > 1 then out[#out + 1] = "," end
        encode(k, out)
        out[#out + 1] = ":"
        local val = v[k]
        if val == nil then val = v[tonumber(k)] end
        encode(val, out)
      end
      out[#out + 1] = "}"
    end
  else
    out[#out + 1] = "null"
  end
end

function M.encode(v)
  local out = {}
  encode(v, out)
  return table.concat(out)
end

-- JSON numbers arrive as floats; fault fields such as times and status want integers.
local function integers(v)
  if type(v) == "number" then return math.tointeger(v) or v end
  if type(v) == "table" then for k, x in pairs(v) do v[k] = integers(x) end end
  return v
end

local function decode(s)
  local v, err = json.decode(s)
  if v == nil then return nil, err or "invalid JSON" end
  return integers(v)
end

local function reply(status, v)
  return { status = status, headers = { ["Content-Type"] = "application/json" }, body = M.encode(v) }
end

local function try(fn, ...)
  local ok, res = pcall(fn, ...)
  if ok then return res end
  return { error = type(res) == "table" and (tostring(res.code) .. ": " .. tostring(res.message))
    or errors.describe(res) }
end

local function by_name(list, key)
  table.sort(list, function(a, b) return tostring(a[key]) < tostring(b[key]) end)
  return array(list)
end

-- Everything is read through the operations (caller "control"), so the summary needs no
-- knowledge of each service module's internal state tables.
local function ecs_summary(sim)
  local services = {}
  local clusters = sim:call("ecs", "ListClusters", {}, "control").clusterArns or {}
  for _, c in ipairs(clusters) do
    local arns = sim:call("ecs", "ListServices", { cluster = c, maxResults = 100 }, "control").serviceArns or {}
    for i = 1, #arns, 10 do
      local chunk = {}
      for j = i, math.min(i + 9, #arns) do chunk[#chunk + 1] = arns[j] end
      local out = sim:call("ecs", "DescribeServices", { cluster = c, services = chunk }, "control")
      for _, s in ipairs(out.services or {}) do
        local deps = {}
        for _, d in ipairs(s.deployments or {}) do
          deps[#deps + 1] = { id = d.id, status = d.status, task_definition = d.taskDefinition,
            desired = d.desiredCount, running = d.runningCount, pending = d.pendingCount,
            failed = d.failedTasks, rollout_state = d.rolloutState }
        end
        local sets = {}
        for _, ts in ipairs(s.taskSets or {}) do
          sets[#sets + 1] = { id = ts.id, status = ts.status, task_definition = ts.taskDefinition,
            running = ts.runningCount, pending = ts.pendingCount, scale = ts.scale and ts.scale.value,
            stability = ts.stabilityStatus }
        end
        services[#services + 1] = { name = s.serviceName, cluster = c:match("[^/]+$"),
          status = s.status, desired = s.desiredCount, running = s.runningCount, pending = s.pendingCount,
          task_definition = s.taskDefinition, deployments = by_name(deps, "id"),
          task_sets = by_name(sets, "id") }
      end
    end
  end
  return by_name(services, "name")
end

local function elbv2_summary(sim)
  local tgs, names = {}, {}
  local out = sim:call("elbv2", "DescribeTargetGroups", {}, "control")
  for _, tg in ipairs(out.TargetGroups or {}) do
    names[tg.TargetGroupArn] = tg.TargetGroupName
    local health = {}
    local th = sim:call("elbv2", "DescribeTargetHealth", { TargetGroupArn = tg.TargetGroupArn }, "control")
    for _, d in ipairs(th.TargetHealthDescriptions or {}) do
      local st = d.TargetHealth and d.TargetHealth.State or "unknown"
      health[st] = (health[st] or 0) + 1
    end
    tgs[#tgs + 1] = { name = tg.TargetGroupName, health = health }
  end
  local listeners = {}
  local lbs = sim:call("elbv2", "DescribeLoadBalancers", {}, "control").LoadBalancers or {}
  for _, lb in ipairs(lbs) do
    local ls = sim:call("elbv2", "DescribeListeners", { LoadBalancerArn = lb.LoadBalancerArn }, "control").Listeners or {}
    for _, l in ipairs(ls) do
      local rules = {}
      local rs = sim:call("elbv2", "DescribeRules", { ListenerArn = l.ListenerArn }, "control").Rules or {}
      for _, r in ipairs(rs) do
        local weights = {}
        for _, a in ipairs(r.Actions or {}) do
          if a.Type == "forward" then
            if a.ForwardConfig and a.ForwardConfig.TargetGroups then
              for _, t in ipairs(a.ForwardConfig.TargetGroups) do
                weights[names[t.TargetGroupArn] or t.TargetGroupArn] = t.Weight or 1
              end
            elseif a.TargetGroupArn then
              weights[names[a.TargetGroupArn] or a.TargetGroupArn] = 1
            end
          end
        end
        rules[#rules + 1] = { priority = r.Priority, weights = weights }
      end
      listeners[#listeners + 1] = { load_balancer = lb.LoadBalancerName, port = l.Port,
        protocol = l.Protocol, rules = by_name(rules, "priority") }
    end
  end
  table.sort(listeners, function(a, b)
    if a.load_balancer ~= b.load_balancer then return a.load_balancer < b.load_balancer end
    return (a.port or 0) < (b.port or 0)
  end)
  return by_name(tgs, "name"), array(listeners)
end

local function codedeploy_summary(sim)
  local deps = {}
  local apps = sim:call("codedeploy", "ListApplications", {}, "control").applications or {}
  for _, app in ipairs(apps) do
    local groups = sim:call("codedeploy", "ListDeploymentGroups", { applicationName = app }, "control").deploymentGroups or {}
    for _, g in ipairs(groups) do
      local ids = sim:call("codedeploy", "ListDeployments", { applicationName = app, deploymentGroupName = g }, "control").deployments or {}
      for i = 1, #ids, 25 do
        local chunk = {}
        for j = i, math.min(i + 24, #ids) do chunk[#chunk + 1] = ids[j] end
        local out = sim:call("codedeploy", "BatchGetDeployments", { deploymentIds = chunk }, "control")
        for _, d in ipairs(out.deploymentsInfo or {}) do
          deps[#deps + 1] = { id = d.deploymentId, application = app, group = g, status = d.status,
            create_time = d.createTime }
        end
      end
    end
  end
  table.sort(deps, function(a, b)
    if (a.create_time or 0) ~= (b.create_time or 0) then return (a.create_time or 0) < (b.create_time or 0) end
    return a.id < b.id
  end)
  return array(deps)
end

local function alarms_summary(sim)
  local alarms = {}
  local out = sim:call("cloudwatch", "DescribeAlarms", {}, "control")
  for _, a in ipairs(out.MetricAlarms or {}) do
    alarms[#alarms + 1] = { name = a.AlarmName, state = a.StateValue }
  end
  return by_name(alarms, "name")
end

local function time_info(sim)
  local w = sim.world
  return { now = w.now, iso = timestamp.iso8601(w.now, false), start = w.start, elapsed = w.now - w.start }
end

-- /_sim/clock and /_sim/wait: the clock `sim serve` keeps (sim.served_clock, ecsplay.sim.clock).
local function clock_route(sim, route, method, headers, body)
  local clock = sim.served_clock
  if route == "clock" then
    if method ~= "GET" then return reply(405, { error = "use GET /_sim/clock" }) end
    if not clock then
      local info = time_info(sim)
      info.mode = "virtual"
      return reply(200, info)
    end
    local info = clock:info()
    info.clients = array(info.clients)
    return reply(200, info)
  end
  if not clock then
    return reply(409, { error = "only `ecsplay sim serve` keeps a clock to wait on (in process, "
      .. "ecsplay.sleep waits on the virtual clock)" })
  end
  local id = headers["x-ecsplay-client"]
  if method == "DELETE" then return reply(200, { left = clock:leave(id) }) end
  if method ~= "POST" then
    return reply(405, { error = "use POST /_sim/wait with {\"until\": T}, or DELETE /_sim/wait" })
  end
  local v, err = decode(body ~= "" and body or "{}")
  if not v then return reply(400, { error = "body is not JSON: " .. tostring(err) }) end
  local until_t = type(v) == "table" and timestamp.to_epoch(v["until"])
  if type(until_t) ~= "number" or until_t ~= until_t then
    return reply(400, { error = "expected {\"until\": T}, T in epoch seconds or ISO 8601" })
  end
  local answer, hold = clock:wait(id, until_t)
  local r = reply(200, answer)
  if hold > 0 then r.hold = hold end
  return r
end

--[[ The query's world selector → { region=, account=, world= } (an empty table: none given),
     or nil, message. Only worlds the simulator has are selected (no world is built here). ]]
local function unescape(v)
  return (v:gsub("+", " "):gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

local function served_worlds(sim)
  local names = {}
  for _, w in ipairs(sim.world_list) do names[#names + 1] = regions.key(w.region, w.account) end
  return table.concat(names, ", ")
end

function M.selector(sim, path)
  local query = path:match("%?(.*)$")
  if not query or query == "" then return {} end
  local sel = {}
  for pair in query:gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=(.*)$")
    k, v = unescape(k or pair), unescape(v or "")
    if k ~= "region" and k ~= "account" then
      return nil, string.format("unknown query parameter %q: the selector is ?region=R and/or ?account=A", k)
    end
    if v == "" then return nil, k .. " is empty" end
    sel[k] = v
  end
  if not sel.region and not sel.account then return {} end
  local primary = sim.world_list[1]
  local key = regions.key(sel.region or primary.region, sel.account or primary.account)
  sel.world = sim.worlds[key]
  if not sel.world then
    return nil, string.format("no world for %s (the simulator serves %s)", key, served_worlds(sim))
  end
  return sel
end

-- fn(sim, ...) with `world` as the world direct calls address (sim:call uses sim.world).
local function in_world(sim, world, fn, ...)
  if not world or world == sim.world then return fn(sim, ...) end
  local primary = sim.world
  sim.world = world
  local res = table.pack(pcall(fn, sim, ...))
  sim.world = primary
  if not res[1] then error(res[2], 0) end
  return table.unpack(res, 2, res.n)
end

function M.summary(sim, world)
  if world and world ~= sim.world then return in_world(sim, world, M.summary) end
  local tgs, listeners = nil, nil
  local ok, a, b = pcall(elbv2_summary, sim)
  if ok then tgs, listeners = a, b else tgs = try(error, a) end
  return {
    time = time_info(sim),
    region = sim.world.region,
    account = sim.world.account,
    services = try(ecs_summary, sim),
    target_groups = tgs,
    listeners = listeners or array(),
    codedeploy_deployments = try(codedeploy_summary, sim),
    alarms = try(alarms_summary, sim),
  }
end

function M.handle(sim, method, path, headers, body)
  local route = path:match("^/_sim/?([^?]*)") or ""
  method = method:upper()
  local sel, serr = M.selector(sim, path)
  if not sel then return reply(400, { error = serr }) end
  if route == "world" then
    if method ~= "GET" then return reply(405, { error = "use GET /_sim/world" }) end
    return reply(200, M.summary(sim, sel.world))
  elseif route == "time" then
    if method ~= "GET" then return reply(405, { error = "use GET /_sim/time" }) end
    return reply(200, time_info(sim))
  elseif route == "advance" then
    if method ~= "POST" then return reply(405, { error = "use POST /_sim/advance with {\"seconds\": N}" }) end
    local v, err = decode(body ~= "" and body or "{}")
    if not v then return reply(400, { error = "body is not JSON: " .. tostring(err) }) end
    local secs = type(v) == "table" and v.seconds
    if type(secs) == "string" then secs = duration.parse(secs) end
    if type(secs) ~= "number" or secs < 0 or secs ~= secs then
      return reply(400, { error = "expected {\"seconds\": N} with N >= 0 (a number, or a duration such as \"5m\")" })
    end
    if secs > sim.MAX_ADVANCE then
      return reply(400, { error = string.format("seconds: %.14g is too far: at most %d (%s) per "
        .. "request; advance in several steps", secs, sim.MAX_ADVANCE, duration.format(sim.MAX_ADVANCE)) })
    end
    sim:advance(secs)
    return reply(200, time_info(sim))
  elseif route == "faults" then
    if method == "GET" then
      local list = {}
      for _, f in ipairs(sim.faults:list()) do
        if not sel.world or f.region == nil or f.region == sel.world.region then
          list[#list + 1] = tables.shallow_copy(f)
        end
      end
      return reply(200, { faults = array(list) })
    elseif method == "DELETE" then
      local n = #sim.faults:list()
      sim.faults:clear()
      return reply(200, { removed = n })
    elseif method == "POST" then
      local v, err = decode(body)
      if type(v) ~= "table" then return reply(400, { error = "body is not a JSON fault object or list: " .. tostring(err) }) end
      local list = v[1] ~= nil and v or { v }
      local checked = {}
      for i, f in ipairs(list) do
        if type(f) == "table" and f.region == nil and sel.world then f.region = sel.world.region end
        local ok, res = pcall(scenario.check_fault, f, "POST /_sim/faults[" .. i .. "]")
        if not ok then return reply(400, { error = errors.describe(res) }) end
        checked[i] = res
      end
      for _, f in ipairs(checked) do sim.faults:add(f) end
      return reply(200, { added = #checked })
    end
    return reply(405, { error = "use GET, POST or DELETE on /_sim/faults" })
  elseif route == "clock" or route == "wait" then
    return clock_route(sim, route, method, headers, body)
  elseif route == "reset" then
    if method ~= "POST" then return reply(405, { error = "use POST /_sim/reset" }) end
    sim:reset()
    return reply(200, time_info(sim))
  end
  return reply(404, { error = string.format("no simulator endpoint %s (try /_sim/world, /_sim/time, "
    .. "/_sim/advance, /_sim/faults, /_sim/reset, /_sim/clock, /_sim/wait)", path) })
end

return M
