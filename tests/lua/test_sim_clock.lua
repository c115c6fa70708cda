-- One clock over HTTP: the clock `sim serve` keeps (ecsplay.sim.clock: speed and lockstep,
-- its clients, /_sim/clock and /_sim/wait) and the client side (ecsplay.sched following a
-- simulator's clock from its answers). End to end over HTTP: tests/py/test_sim_clock.py.
local T = require "harness"
local simlib = require "ecsplay.sim"
local served_clock = require "ecsplay.sim.clock"
local sched = require "ecsplay.sched"
local json = require "ecsplay.json"

local START = 1795687200 -- 2026-11-26T10:00:00Z

-- A simulator with no services and a clock driven by a fake wall clock.
local function served(mode, o)
  o = o or {}
  local sim = simlib.new({ world = "empty", start = START }, { services = {}, no_auth = true,
    warn = function() end })
  local wall = { t = 1000 }
  local clock = served_clock.new { sim = sim, mode = mode, speed = o.speed, lease = o.lease,
    monotonic = function() return wall.t end }
  sim.served_clock = clock
  return sim, clock, wall
end

local function control(sim, method, path, body, headers)
  local r = sim:handle { method = method, path = path, headers = headers or {}, body = body or "" }
  return r.status, json.decode(r.body), r
end

-- speed -------------------------------------------------------------------------------

T.test("speed: simulated time runs at speed × wall time from the scenario start; headers say so", function()
  local sim, clock, wall = served("speed", { speed = 300 })
  T.eq(clock:now(), START)
  wall.t = wall.t + 2
  T.eq(clock:now(), START + 600)
  T.eq(clock:headers(), { ["x-ecsplay-sim-time"] = string.format("%.3f", START + 600),
    ["x-ecsplay-sim-mode"] = "speed", ["x-ecsplay-sim-speed"] = "300" })
  sim:advance(60)
  T.eq(clock:now(), START + 660, "POST /_sim/advance adds on top")
  sim:reset()
  T.eq(clock:now(), START, "a reset restarts the clock at the scenario start")
end)

T.test("speed: a wait is held until its time (at most SPEED_HOLD wall seconds)", function()
  local _, clock, wall = served("speed", { speed = 10 })
  local a, hold = clock:wait("c1", START + 1)
  T.eq(a.reached, false)
  T.near(hold, 0.1, 0.002)
  a, hold = clock:wait("c1", START + 3600)
  T.eq(hold, served_clock.SPEED_HOLD)
  wall.t = wall.t + 0.1
  a, hold = clock:wait("c1", START + 1)
  T.eq({ a.reached, hold }, { true, 0 })
  T.eq(clock:info().clients, { { id = "c1", state = "busy", heard = 0 } })
end)

-- lockstep ----------------------------------------------------------------------------

T.test("lockstep: time stands still until the clients wait; a lone waiter jumps to its time", function()
  local sim, clock, wall = served("lockstep")
  wall.t = wall.t + 100
  T.eq(clock:now(), START, "no wall time passes in lockstep")
  T.eq(clock:headers(), { ["x-ecsplay-sim-time"] = string.format("%.3f", START),
    ["x-ecsplay-sim-mode"] = "lockstep" })
  local a, hold = clock:wait(nil, START + 60)
  T.eq({ a.reached, hold }, { false, served_clock.LOCKSTEP_HOLD }, "a waiter without a name moves nothing")
  a, hold = clock:wait("solo", START + 60)
  T.eq({ a.reached, a.now, hold }, { true, START + 60, 0 })
  T.eq(sim.world.now, START + 60, "the world moved with it")
end)

T.test("lockstep: time moves only when every client waits, to the earliest time asked", function()
  local _, clock = served("lockstep")
  clock:heard("b")                         -- b is busy (any request names it)
  local a = clock:wait("a", START + 100)
  T.eq({ a.reached, clock:now() }, { false, START }, "b is busy: time holds")
  a = clock:wait("b", START + 40)
  T.eq({ a.reached, a.now }, { true, START + 40 }, "both wait: to b's time, the earliest")
  T.eq(clock:wait("a", START + 100).reached, false, "b is busy again (it was woken)")
  a = clock:wait("b", START + 250)
  T.eq({ a.reached, clock:now() }, { false, START + 100 }, "to a's time, not past it")
  a = clock:wait("a", START + 100)
  T.eq(a.reached, true, "a asks again and is told its time has come")
  local info = clock:info()
  T.eq(info.mode, "lockstep")
  T.eq(info.speed, nil)
  T.eq(#info.clients, 2)
  T.eq(info.clients[2], { id = "b", state = "waiting", ["until"] = START + 250, heard = 0 })
end)

T.test("lockstep: a client not heard from for the lease is forgotten; one that leaves at once", function()
  local _, clock, wall = served("lockstep", { lease = 5 })
  clock:heard("killed")
  T.eq(clock:wait("a", START + 10).reached, false)
  wall.t = wall.t + 4
  T.eq(clock:wait("a", START + 10).reached, false, "still within the lease")
  wall.t = wall.t + 2
  T.eq(clock:wait("a", START + 10).reached, true, "the silent client no longer holds time")
  clock:heard("b")
  T.eq(clock:wait("a", START + 20).reached, false)
  T.eq(clock:leave("b"), true)
  T.eq(clock:leave("b"), false)
  T.eq(clock:wait("a", START + 20).reached, true)
end)

-- the control endpoints ----------------------------------------------------------------

T.test("GET /_sim/clock and POST|DELETE /_sim/wait", function()
  local sim = served("lockstep")
  local status, v = control(sim, "GET", "/_sim/clock")
  T.eq(status, 200)
  T.eq({ v.now, v.mode, v.start, v.elapsed, v.iso, v.clients },
    { START, "lockstep", START, 0, "2026-11-26T10:00:00.000Z", {} })
  local h = { ["x-ecsplay-client"] = "c1" }
  local r
  status, v, r = control(sim, "POST", "/_sim/wait", '{"until": ' .. (START + 30) .. '}', h)
  T.eq({ status, v.reached, v.now, v["until"] }, { 200, true, START + 30, START + 30 })
  T.eq(r.hold, nil, "an answer whose time has come is not held")
  status, v = control(sim, "POST", "/_sim/wait", '{"until": "2026-11-26T10:05:00Z"}', h)
  T.eq({ status, v.now }, { 200, START + 300 }, "until may be an ISO 8601 time")
  T.eq(control(sim, "POST", "/_sim/wait", '{"until": "soon"}', h), 400)
  T.eq(control(sim, "POST", "/_sim/wait", "{", h), 400)
  T.eq(control(sim, "GET", "/_sim/wait"), 405)
  T.eq(control(sim, "POST", "/_sim/clock"), 405)
  status, v = control(sim, "DELETE", "/_sim/wait", "", h)
  T.eq({ status, v.left }, { 200, true })
  status, v = control(sim, "GET", "/_sim/clock")
  T.eq(v.clients, {})
end)

T.test("in process (no served clock): /_sim/clock answers the virtual clock; /_sim/wait is refused", function()
  local sim = simlib.new({ world = "empty", start = START }, { services = {}, no_auth = true,
    warn = function() end })
  local status, v = control(sim, "GET", "/_sim/clock")
  T.eq({ status, v.now, v.mode }, { 200, START, "virtual" })
  status, v = control(sim, "POST", "/_sim/wait", '{"until": 1}')
  T.eq(status, 409)
  T.ok(v.error:find("sim serve", 1, true), v.error)
end)

-- the client: ecsplay.sched following a simulator's clock -------------------------------

local function answer(t, mode, speed)
  return { ["X-Ecsplay-Sim-Time"] = string.format("%.3f", t), ["x-ecsplay-sim-mode"] = mode,
    ["x-ecsplay-sim-speed"] = speed and tostring(speed) or nil }
end

T.test("client: the first answer with the clock headers makes now() the world's time", function()
  sched.use_real_clock()
  T.eq(sched.server_clock(), nil)
  sched.observe_server_clock({ ["content-type"] = "application/json" }, "http://127.0.0.1:9/")
  T.eq(sched.server_clock(), nil, "an answer without the headers (AWS) changes nothing")
  T.eq(sched.add_clock_headers({}, "https://ecs.us-east-1.amazonaws.com/"), {},
    "AWS never hears the client's name")
  sched.observe_server_clock(answer(START, "lockstep"), "http://127.0.0.1:9/x?y")
  local c = sched.server_clock()
  T.eq({ c.base, c.mode }, { "http://127.0.0.1:9", "lockstep" })
  T.eq(sched.now(), START)
  T.ok(math.abs(sched.signing_time() - os.time()) < 5, "requests are still signed with the machine's time")
  local h = sched.add_clock_headers({}, "http://127.0.0.1:9/")
  T.ok(type(h["x-ecsplay-client"]) == "string" and #h["x-ecsplay-client"] >= 8, "requests name the client")
  T.eq(sched.add_clock_headers({}, "http://127.0.0.1:10/"), {}, "only to the simulator it follows")
  sched.observe_server_clock(answer(START + 90, "lockstep"), "http://127.0.0.1:10/")
  T.eq(sched.now(), START, "another server's answer does not move this clock")
  sched.observe_server_clock(answer(START + 90, "lockstep"), "http://127.0.0.1:9/")
  T.eq(sched.now(), START + 90)
  sched.observe_server_clock(answer(START + 30, "lockstep"), "http://127.0.0.1:9/")
  T.eq(sched.now(), START + 90, "the clock never goes back")
  sched.use_real_clock()
  T.eq(sched.server_clock(), nil)
  T.ok(math.abs(sched.now() - os.time()) < 5)
end)

T.test("client: answers whose names are all lowercase (libcurl's) are read by those names only", function()
  sched.use_real_clock()
  -- answer() spells the time header in mixed case, as a custom transport may
  sched.observe_server_clock(answer(START, "lockstep"), "http://127.0.0.1:9/", true)
  T.eq(sched.server_clock(), nil, "told the names are lowercase, it does not search for other spellings")
  local lower = { ["x-ecsplay-sim-time"] = string.format("%.3f", START + 60), ["x-ecsplay-sim-mode"] = "lockstep" }
  sched.observe_server_clock(lower, "http://127.0.0.1:9/", true)
  T.eq({ sched.server_clock().mode, sched.now() }, { "lockstep", START + 60 })
  sched.observe_server_clock(answer(START + 120, "lockstep"), "http://127.0.0.1:9/")
  T.eq(sched.now(), START + 120, "without the flag, any spelling is found")
  sched.use_real_clock()
end)

T.test("client: at speed X, now() runs X times faster than the wall clock between answers", function()
  sched.use_real_clock()
  sched.observe_server_clock(answer(START, "speed", 100), "http://127.0.0.1:9/")
  local t0 = sched.now()
  T.ok(t0 >= START and t0 < START + 5, tostring(t0))
  require("ecsplay.core").sleep_real(0.05)
  local dt = sched.now() - t0
  T.ok(dt >= 4.5 and dt < 60, "0.05 wall seconds ≈ 5 simulated: " .. dt)
  sched.use_real_clock()
end)

-- The short path for an answer at the followed server's speed and mode compares with that
-- server's own headers: another simulator's answer (ignored) must not make a speed change look old.
T.test("client: a speed change is followed after another simulator's answer said the same speed", function()
  sched.use_real_clock()
  local function lower(t, speed)
    return { ["x-ecsplay-sim-time"] = string.format("%.3f", t), ["x-ecsplay-sim-mode"] = "speed",
      ["x-ecsplay-sim-speed"] = tostring(speed) }
  end
  sched.observe_server_clock(lower(START, 10), "http://127.0.0.1:9/", true)
  T.eq(sched.server_clock().speed, 10)
  sched.observe_server_clock(lower(START + 5, 5), "http://127.0.0.1:10/", true)
  T.eq({ sched.server_clock().base, sched.server_clock().speed }, { "http://127.0.0.1:9", 10 },
    "another server's answer changes nothing")
  sched.observe_server_clock(lower(START + 10, 5), "http://127.0.0.1:9/", true)
  T.eq(sched.server_clock().speed, 5, "the followed server now runs at 5")
  sched.use_real_clock()
end)

T.test("client: the virtual clock (--simulate) ignores served clocks", function()
  sched.use_virtual_clock(START)
  sched.observe_server_clock(answer(START + 500, "lockstep"), "http://127.0.0.1:9/")
  T.eq(sched.server_clock(), nil)
  T.eq(sched.now(), START)
  sched.use_real_clock()
end)

T.test("client: before it follows a simulator, only loopback endpoints hear its name", function()
  sched.use_real_clock()
  for url, want in pairs { ["http://127.0.0.1:4566"] = true, ["http://localhost:8080/"] = true,
    ["http://[::1]:9000"] = true, ["http://127.1.2.3"] = true,
    ["https://ecs.us-east-1.amazonaws.com"] = false, ["https://vpce-1.ecs.us-east-1.vpce.amazonaws.com"] = false,
    ["http://10.0.0.5:4566"] = false, ["http://127.0.0.1.evil.example:80"] = false } do
    T.eq(sched.is_loopback_url(url), want, url)
    T.eq(sched.add_clock_headers({}, url)["x-ecsplay-client"] ~= nil, want, url)
  end
end)

--[[ sched.steady_now() across switches of clock: time elapsed on each clock in effect counts,
     summed; the switch itself (a new virtual clock days before or after, the machine's, a
     served simulator's years away) counts as none. Virtual and lockstep clocks move only
     when told, so the sums are exact; the machine's moments between are bounded. ]]
T.test("client: steady_now counts the time on each clock in effect, never the jump between", function()
  sched.use_virtual_clock(START)
  local s0 = sched.steady_now()
  sched.sleep(600)
  T.eq(sched.steady_now(), s0 + 600, "600 s on the virtual clock")
  sched.use_virtual_clock(START - 5 * 86400)
  T.eq(sched.steady_now(), s0 + 600, "a virtual clock 5 days back: no jump")
  sched.sleep(60)
  sched.use_virtual_clock(START + 10 * 86400)
  T.eq(sched.steady_now(), s0 + 660, "one 10 days ahead: no jump either")
  sched.use_real_clock()
  local s1 = sched.steady_now()
  T.ok(s1 >= s0 + 660 and s1 < s0 + 665, "to the machine's clock: no jump (" .. (s1 - s0) .. ")")
  -- the served clock (lockstep) is years behind the machine's
  sched.observe_server_clock(answer(START - 400 * 86400, "lockstep"), "http://127.0.0.1:9/")
  T.eq(sched.clock_name(), "http://127.0.0.1:9")
  local s2 = sched.steady_now()
  T.ok(s2 >= s1 and s2 < s1 + 5, "to the served clock: no jump (" .. (s2 - s1) .. ")")
  sched.observe_server_clock(answer(START - 400 * 86400 + 90, "lockstep"), "http://127.0.0.1:9/")
  T.eq(sched.steady_now(), s2 + 90, "then the served clock's time")
  sched.observe_server_clock(answer(START - 400 * 86400 + 30, "lockstep"), "http://127.0.0.1:9/")
  T.eq(sched.steady_now(), s2 + 90, "which never goes back")
  sched.use_real_clock()
end)

-- The rate limiters count on sched.steady_now: a switch to a served clock keeps a bucket's debt.
T.test("client: a limiter on the scheduler's clock keeps its debt when the clock follows a simulator", function()
  local ratelimit = require "ecsplay.aws.ratelimit"
  for _, by in ipairs { 3 * 86400, -3 * 86400 } do
    sched.use_real_clock()
    local l = ratelimit.new { enabled = true, limits = { ["ecs.service_read"] = { rate = 2, burst = 10 } } }
    local bucket = l:entry("ecs", "DescribeServices")[1]
    -- 15 callers at once: 10 from the burst, 5 reserved ahead (the last one due 2.5 s later)
    for _ = 1, 15 do bucket:reserve() end
    sched.observe_server_clock(answer(os.time() + by, "lockstep"), "http://127.0.0.1:9/")
    local due = bucket:reserve()
    T.ok(due > 2.9 and due <= 3.0, "the next token after the 5 reserved ones (switch by " .. by .. " s): " .. due)
  end
  sched.use_real_clock()
end)

T.test("client: ECSPLAY_SIM_CLOCK=own (or libfaketime's FAKETIME) keeps the process's own clock", function()
  local chunk = "local s = require 'ecsplay.sched' "
    .. "s.observe_server_clock({ ['x-ecsplay-sim-time'] = '5' }, 'http://127.0.0.1:1/') "
    .. "io.write(s.server_clock() and 'follows' or 'own')"
  local function clock_with(env)
    local p = assert(io.popen(env .. " " .. T.bin .. " -e \"" .. chunk .. "\" 2>&1"))
    local out = p:read("a")
    p:close()
    return out
  end
  T.eq(clock_with("env -u FAKETIME -u ECSPLAY_SIM_CLOCK"), "follows")
  T.eq(clock_with("env -u FAKETIME ECSPLAY_SIM_CLOCK=own"), "own")
  T.eq(clock_with("env -u ECSPLAY_SIM_CLOCK FAKETIME=+0"), "own")
  T.eq(clock_with("ECSPLAY_SIM_CLOCK=follow FAKETIME=+0"), "follows")
end)

T.test("lockstep: a wait days ahead is reached in steps of sim.MAX_ADVANCE, answered at once", function()
  local sim, clock = served("lockstep")
  local far = START + 3 * sim.MAX_ADVANCE + 60
  local asks = 0
  repeat
    asks = asks + 1
    local a, hold = clock:wait("c", far)
    if not a.reached then T.eq(hold, 0, "each step is answered at once") end
  until a.reached or asks > 10
  T.eq({ asks, clock:now() }, { 4, far })
end)
