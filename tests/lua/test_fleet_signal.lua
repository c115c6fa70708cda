-- rollout.fleet under SIGINT/SIGTERM (stdlib-lua/ecsplay/rollout/fleet.lua, Fleet:settle): the
-- signal reaches each member and the worker waiting for it; the worker waits on until its member
-- has rolled itself back, no member starts any more, and the run ends with the worst member
-- error: 130/143 when every rollback completed, 3 when one failed (and then, as for any fleet
-- whose rollback failed, the exit-3 message lists what each member left). (Before, the worker left at
-- the signal, the playbook ended and the scheduler cancelled the members mid-rollback.)
local T = require "harness"

local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

-- `ecsplay -e CODE` in the background; the signal once it printed "ready"; → exit code, output.
local function signalled(code, sig)
  local dir = T.tmpdir()
  local out = T.sh(T.bin .. " -e " .. q(code) .. " > " .. dir .. "/out 2>&1 & pid=$!; "
    .. "for i in $(seq 1 100); do grep -q ready " .. dir .. "/out 2>/dev/null && break; sleep 0.05; done; "
    .. "kill -" .. sig .. " $pid; wait $pid; echo exit=$?; cat " .. dir .. "/out")
  os.execute("rm -rf " .. q(dir))
  return tonumber(out:match("exit=(%d+)")), out
end

-- Members that wait, and on the signal roll back for a while (a wait of their own); `broken`
-- names one whose rollback then fails.
local FLEET = [[
local errors = require "ecsplay.errors"
local rollout = require "ecsplay.rollout"
local broken = ...
local function member(name, undo_secs)
  return { name = name, run = function()
    print("started " .. name)
    local ok, e = pcall(ecsplay.sleep, 30)
    if ok then return "promoted" end
    ecsplay.sleep(undo_secs)
    if name == broken then
      error(errors.new("rollback", { code = "RollbackFailed", rollback_failed = true,
        left = name .. " at 10%", message = name .. "'s rollback failed" }), 0)
    end
    print(name .. " rolled back")
    error(e, 0)
  end }
end
ecsplay.spawn(function() ecsplay.sleep(0.2) print("ready") io.stdout:flush() end)
rollout.fleet { { member("m1", 0.3), member("m2", 0.6), member("m3", 0.1) }, limit = 2 }
print("not reached")
]]

local function fleet(broken)
  return (FLEET:gsub("local broken = %.%.%.", "local broken = " .. string.format("%q", broken or "")))
end

T.test("SIGINT during a fleet: the members running roll back before the run ends, none starts, 130", function()
  local rc, out = signalled(fleet(), "INT")
  T.eq(rc, 130, out)
  T.ok(out:find("m1 rolled back", 1, true) and out:find("m2 rolled back", 1, true), out)
  T.ok(not out:find("started m3", 1, true), "no member starts after the signal:\n" .. out)
  T.ok(not out:find("not reached", 1, true), out)
  -- the message counts in the fleet's words: m3 never started, m1 and m2 rolled back (not
  -- "2 of 3 map members failed")
  T.ok(out:find("(fleet: 2 rolled back, 1 not started)", 1, true), out)
  T.ok(not out:find("map members", 1, true), out)
end)

T.test("SIGTERM during a fleet: the same, 143", function()
  local rc, out = signalled(fleet(), "TERM")
  T.eq(rc, 143, out)
  T.ok(out:find("m1 rolled back", 1, true) and out:find("m2 rolled back", 1, true), out)
  T.ok(not out:find("started m3", 1, true), out)
end)

T.test("SIGINT during a fleet whose member's rollback fails: the others still roll back, exit 3 names it", function()
  local rc, out = signalled(fleet("m2"), "INT")
  T.eq(rc, 3, out)
  T.ok(out:find("m1 rolled back", 1, true), out)
  T.ok(out:find("m2's rollback failed", 1, true), out)
  T.ok(out:find("m2 at 10%", 1, true), "what is left:\n" .. out)
end)

T.test("a fleet whose put-back fails: exit 3 lists what each member left", function()
  local out, rc = T.sh(T.bin .. " -e " .. q([[
local rollout = require "ecsplay.rollout"
rollout.fleet { {
  { name = "a", run = function() return {} end, undo = function() error("cannot put a back", 0) end },
  { name = "b", run = function() ecsplay.sleep(1) error("b broke", 0) end },
} }]]) .. " 2>&1")
  T.eq(rc, 3, out)
  T.ok(out:find("what may be left", 1, true), out)
  T.ok(out:find("a: it had succeeded and putting it back failed (cannot put a back)", 1, true), out)
end)

-- A signal that arrives while the fleet aborts (its budget spent: members being stopped, promoted
-- ones being put back) reaches the rollback or the put-back that waits, which go on to their end;
-- the run must still end interrupted: 143 (130), the summary's status "interrupted", the message
-- naming the signal, and every promoted member put back. (Before, it exited 1 with FleetFailed and
-- the signal surfaced only at a later wait.)
local ABORTING = [[
local rollout = require "ecsplay.rollout"
local phase = ...
local function ready() print("ready") io.stdout:flush() end
local s_ok, s = pcall(rollout.fleet, { {
  { name = "a", run = function() return {} end,
    undo = function()
      if phase == "put-back" then ready() end
      pcall(ecsplay.sleep, 1) -- the put-back's own wait takes the signal and goes on
      print("a put back")
    end },
  { name = "m", run = function()
      local ok, e = pcall(ecsplay.sleep, 30)
      if phase == "stopping" then ready() end
      pcall(ecsplay.sleep, 1) -- its rollback takes the signal and goes on
      print("m rolled back")
      error(e, 0)
    end },
  { name = "b", run = function() ecsplay.sleep(0.3) error("b broke", 0) end },
} })
local r = type(s) == "table" and (s.report or s) or {}
print("summary " .. tostring(r.status))
error(s, 0)
]]

for _, case in ipairs { { "put-back", "TERM", 143, "SIGTERM" }, { "stopping", "INT", 130, "SIGINT" } } do
  local phase, sig, want, name = table.unpack(case)
  T.test("a SIG" .. sig .. " while the fleet aborts (" .. phase .. "): the put-backs finish, exit " .. want, function()
    local rc, out = signalled((ABORTING:gsub("local phase = %.%.%.", "local phase = " .. string.format("%q", phase))),
      sig)
    T.eq(rc, want, out)
    T.ok(out:find("a put back", 1, true), "the promoted member was put back:\n" .. out)
    T.ok(phase ~= "stopping" or out:find("m rolled back", 1, true), out)
    T.ok(out:find("summary interrupted", 1, true), out)
    T.ok(out:find("interrupted by " .. name, 1, true), out)
  end)
end
