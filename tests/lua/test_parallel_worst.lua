-- ecsplay.parallel and ecsplay.map end the way the worst member ended (stdlib-lua/ecsplay/init.lua):
-- every member is waited for, a signal included (members roll themselves back), then the worst
-- error is raised (rollback failed > interrupted > rolled back > other), the others attached as
-- `others` and counted in the message; so the exit code never says "every rollback completed"
-- (1) while a member's rollback failed (3), and SIGINT never leaves a member mid-rollback.
local T = require "harness"
local R = require "rollout_sim"
local errors = require "ecsplay.errors"
local exit = require "ecsplay.cli.exit"
local aws = require "ecsplay.aws"
local gate = require "ecsplay.gate"
local rollout = require "ecsplay.rollout"
local scenario = require "ecsplay.sim.scenario"
local L = dofile "tests/scenarios/interrupt_lib.lua"
local json = require "ecsplay.json"

local function raised(fn)
  local ok, e = pcall(fn)
  T.eq(ok, false, "raises")
  return e
end

local function rolled_back(msg) return errors.new("rollout", { code = "RolloutFailed", rolled_back = true, message = msg }) end
local function rollback_failed(msg)
  return errors.new("rollback", { code = "RollbackFailed", rollback_failed = true, left = "x", message = msg })
end

T.test("parallel raises the worst error, not the first, with the others attached and counted", function()
  local e = raised(function()
    ecsplay.parallel {
      function() ecsplay.sleep(1) error("a plain Lua error") end,
      function() error(rolled_back("a rolled back")) end,
      function() ecsplay.sleep(2) error(rollback_failed("c's rollback failed")) end,
      function() return "fine" end,
    }
  end)
  T.ok(errors.is(e, "rollback"), errors.describe(e))
  T.eq(exit.code_for(e), 3)
  T.ok(e.message:find("c's rollback failed", 1, true), e.message)
  T.ok(e.message:find("3 of 4 parallel members failed", 1, true), e.message)
  T.eq(#e.others, 2)
  T.ok(errors.is(e.others[2], "rollout"), "the rolled-back error kept")
  T.ok(tostring(e.others[1]):find("a plain Lua error", 1, true), tostring(e.others[1]))
end)

T.test("one failure is raised as it is; a rolled-back error outranks a plain one", function()
  local only = rolled_back("only")
  T.eq(raised(function() ecsplay.parallel { function() error(only) end, function() end } end), only)
  local e = raised(function()
    ecsplay.map({ 1, 2, 3 }, function(i)
      if i == 1 then error("plain") end
      if i == 3 then ecsplay.sleep(1) error(rolled_back("three rolled back")) end
    end, { limit = 2 })
  end)
  T.ok(errors.is(e, "rollout"), errors.describe(e))
  T.eq(exit.code_for(e), 1)
  T.ok(e.message:find("2 of 3 map members failed", 1, true), e.message)
  -- strings stay strings (a playbook may match them), with the count appended
  local s = raised(function() ecsplay.parallel { function() error("x", 0) end, function() error("y", 0) end } end)
  T.eq(s, "x (2 of 2 parallel members failed; also: y)")
end)

T.test("a task cancelled while in parallel passes the cancellation to its members, and waits for them", function()
  local undone = {}
  local outer = ecsplay.spawn(function()
    ecsplay.parallel {
      function()
        local ok, e = pcall(ecsplay.sleep, 100)
        if not ok then ecsplay.sleep(1) undone[#undone + 1] = "a" error(e, 0) end
      end,
      function()
        local ok, e = pcall(ecsplay.sleep, 100)
        if not ok then ecsplay.sleep(2) undone[#undone + 1] = "b" error(e, 0) end
      end,
    }
  end)
  ecsplay.sleep(1)
  T.ok(outer:cancel("stop"))
  local ok, e = outer:result()
  T.eq(ok, false)
  T.ok(errors.is(e, "interrupted"), errors.describe(e))
  T.eq(undone, { "a", "b" }, "both members cleaned up before parallel raised")
end)

------------------------------------------------------------------ rollouts in two Regions at once

local ROLLBACK_STUCK = { service = "elbv2", operation = "ModifyRule", status = 503, region = "eu-west-1" }

-- A canary in `region` whose gate fails once 25 % is on the canary; in eu-west-1 ModifyRule then
-- fails for an hour, so that Region's rollback cannot move the traffic home (exit 3).
local function canary_in(region, sim)
  local s = aws.session { region = region }
  return function()
    return rollout.canary { session = s, name = "api in " .. region, image = "api:v2", container = "api",
      steps = { 10, 25, 50, 100 }, bake = "2m", interval = "1m",
      gates = { gate.check("errors at 25 %", function()
        if R.weights()["api-canary"] < 25 then return true end
        if region == "eu-west-1" and not sim.stuck then
          sim.stuck = true
          local now = sim.world.now - sim.world.start
          local f = {}
          for k, v in pairs(ROLLBACK_STUCK) do f[k] = v end
          f.from, f.to = now, now + 3600
          sim.faults:add(f)
        end
        return false
      end) } }
  end
end

local function two_regions()
  return R.fresh(scenario.check({ regions = { "us-east-1", "eu-west-1" } }, "two regions"))
end

T.test("parallel: one rollback completes (listed first), the other fails → exit 3, both reported", function()
  local sim = two_regions()
  local e = raised(function() ecsplay.parallel { canary_in("us-east-1", sim), canary_in("eu-west-1", sim) } end)
  T.eq(exit.code_for(e), 3, errors.describe(e))
  T.ok(e.message:find("api in eu-west-1", 1, true), e.message)
  T.ok(e.message:find("2 of 2 parallel members failed", 1, true), e.message)
  T.ok(e.message:find("api in us-east-1 rolled back", 1, true), "the other's outcome is said too: " .. e.message)
  T.eq(#e.others, 1)
  T.eq(exit.code_for(e.others[1]), 1)
  sim.faults:clear()
  local home = aws.session { region = "us-east-1" }:run(R.weights)
  T.eq(home, { ["api-stable"] = 100, ["api-canary"] = 0 }, "us-east-1 rolled back")
end)

T.test("map: the same two Regions → exit 3 (before: the first error, exit 1)", function()
  local sim = two_regions()
  local e = raised(function()
    ecsplay.map({ "us-east-1", "eu-west-1" }, function(region) return canary_in(region, sim)() end)
  end)
  T.eq(exit.code_for(e), 3, errors.describe(e))
  T.ok(e.message:find("2 of 2 map members failed", 1, true), e.message)
end)

------------------------------------------------------------------ signals

-- `ecsplay -e CODE` in the background; SIGINT once it printed "ready"; → exit code, output.
local function interrupted(code)
  local dir = T.tmpdir()
  local out = T.sh(T.bin .. " -e " .. L.q(code) .. " > " .. dir .. "/out 2>&1 & pid=$!; "
    .. "for i in $(seq 1 100); do grep -q ready " .. dir .. "/out 2>/dev/null && break; sleep 0.05; done; "
    .. "kill -INT $pid; wait $pid; echo exit=$?; cat " .. dir .. "/out")
  return tonumber(out:match("exit=(%d+)")), out
end

-- Each member rolls back on the signal; its rollback takes a while (a wait of its own).
local MEMBERS = [[
local function member(name, undo_secs)
  return function()
    local ok, e = pcall(ecsplay.sleep, 30)
    if not ok then
      ecsplay.sleep(undo_secs)
      print(name .. " rolled back")
      error(e, 0)
    end
  end
end
ecsplay.spawn(function() ecsplay.sleep(0.2) print("ready") io.stdout:flush() end)
]]

T.test("SIGINT during ecsplay.parallel: every member rolls back before the run ends, exit 130", function()
  local rc, out = interrupted(MEMBERS .. [[ecsplay.parallel { member("a", 0.3), member("b", 0.6) }
print("not reached")]])
  T.eq(rc, 130, out)
  T.ok(out:find("a rolled back", 1, true) and out:find("b rolled back", 1, true), out)
  T.ok(not out:find("not reached", 1, true), out)
end)

T.test("SIGINT during ecsplay.map: the members running roll back, no further one starts, exit 130", function()
  local rc, out = interrupted(MEMBERS .. [[
ecsplay.map({ 0.3, 0.6, 0.1 }, function(secs, i)
  print("started " .. i)
  return member("m" .. i, secs)()
end, { limit = 2 })]])
  T.eq(rc, 130, out)
  T.ok(out:find("m1 rolled back", 1, true) and out:find("m2 rolled back", 1, true), out)
  T.ok(not out:find("started 3", 1, true), "no member starts after the signal:\n" .. out)
end)

T.test("SIGINT mid-shift of multi_region's two-Region wave (ecsplay.map): both Regions rolled back, 130", function()
  local dir = L.tmpdir()
  local srv, p
  local ok, err = pcall(function()
    srv = L.serve(dir, 60, "playbooks/scenarios/multi_region.lua")
    p = L.start(dir, "run", srv, { "playbooks/multi_region.lua", "waves=us-east-1+eu-west-1", "bake=1m" })
    -- both canaries have shifted their first step
    L.poll(function()
      local n = 0
      local ls = io.popen("ls " .. L.q(dir .. "/runs") .. "/*.jsonl 2>/dev/null")
      for f in ls:lines() do if L.has(L.journal(f), "done", "weight:1") then n = n + 1 end end
      ls:close()
      return n == 2 or nil
    end, 90, "both Regions' first shift")
    L.kill(p, "INT")
    local rc, out = L.wait_exit(p, 90)
    T.eq(rc, 130, out)
    local ls = io.popen("ls " .. L.q(dir .. "/runs") .. "/*.jsonl")
    for f in ls:lines() do
      local status
      for _, l in ipairs(L.journal(f)) do if l.t == "end" then status = l.status end end
      T.eq(status, "rolled_back", f)
    end
    ls:close()
    for _, region in ipairs { "us-east-1", "eu-west-1" } do
      local res = require("ecsplay.sched").http { method = "GET", url = srv.url .. "/_sim/world?region=" .. region,
        headers = {}, timeout = 10 }
      local st = L.state(json.decode(res.body))
      T.eq({ st.weights, st.api.td }, { { ["api-stable"] = 100, ["api-canary"] = 0 }, "api:1" }, region)
    end
  end)
  L.reap(p)
  L.stop(srv)
  os.execute("rm -rf " .. L.q(dir))
  if not ok then error(err, 0) end
end)

T.test("a task spawned inside s:run(fn) makes its calls in that session; one spawned outside does not", function()
  two_regions()
  local ecs = require "ecsplay.ecs"
  local function cluster_region() return ecs.list_clusters {}.clusterArns[1]:match("^arn:aws:ecs:([^:]+):") end
  local eu = aws.session { region = "eu-west-1" }
  local inside = eu:run(function()
    local t = ecsplay.spawn(cluster_region)
    local p = ecsplay.parallel { cluster_region }
    local m = ecsplay.map({ 1 }, cluster_region)
    return { t:join(), p[1], m[1] }
  end)
  T.eq(inside, { "eu-west-1", "eu-west-1", "eu-west-1" })
  T.eq(ecsplay.spawn(cluster_region):join(), "us-east-1", "outside: the client's default Region")
end)
