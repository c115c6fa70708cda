--[[
Helpers (not a scenario) for tests/lua/test_resume_multi.lua and test_codedeploy_intent.lua, on top
of interrupt_lib.lua: a `sim serve --lockstep` per case (simulated time moves only while the
client waits, so a run takes about a second), ecsplay clients run in the background and polled
(so cases can run side by side from scheduler tasks), and the journals of a runs folder.

  local J = dofile "tests/scenarios/journal_lib.lua"
  J.with_server(function(dir, srv) ... end [, scenario])   a fresh server (serving that scenario
                                                   file) and folder, both gone afterwards
  local rc, out = J.ecsplay(dir, name, srv, { args }, env)
  local p = J.start(...) / J.finish(p)             the same in two halves (to kill it in between)
  J.forget_clients(srv)                            a killed client no longer holds the lockstep clock
  J.journals(dir) → paths;  J.ended(path) → status | nil;  J.fault(srv, fault)
]]
local L = dofile "tests/scenarios/interrupt_lib.lua"
local json = require "ecsplay.json"
local sched = require "ecsplay.sched"

local J = { L = L }

-- scenario: a scenario file (default: the built-in world)
function J.serve(dir, scenario)
  os.execute(string.format("%s sim serve --port 0 --lockstep%s > %s/serve.out 2>&1 & echo $! > %s/serve.pid",
    L.q(L.BIN), scenario and (" --scenario " .. L.q(scenario)) or "", dir, dir))
  local srv = { dir = dir }
  srv.pid = L.poll(function() return tonumber((L.read(dir .. "/serve.pid") or ""):match("%d+")) end, 5, "serve.pid")
  srv.port = L.poll(function()
    return tonumber((L.read(dir .. "/serve.out") or ""):match("listening on http://127%.0%.0%.1:(%d+)"))
  end, 10, "sim serve to listen")
  srv.url = "http://127.0.0.1:" .. srv.port
  return srv
end

function J.with_server(fn, scenario)
  local dir = L.tmpdir()
  local srv
  local ok, res = pcall(function()
    srv = J.serve(dir, scenario)
    return fn(dir, srv)
  end)
  L.stop(srv)
  os.execute("rm -rf " .. L.q(dir))
  if not ok then error(res, 0) end
  return res
end

J.start = L.start

function J.finish(p, timeout)
  local ok, rc, out = pcall(L.wait_exit, p, timeout or 120)
  if not ok then L.reap(p) error(rc, 0) end
  return rc, out
end

-- Runs `ecsplay args...` (srv: with its endpoint; env: extra variables) to its end.
function J.ecsplay(dir, name, srv, args, env)
  return J.finish(L.start(dir, name, srv, args, env))
end

function J.forget_clients(srv)
  local res = sched.http { method = "GET", url = srv.url .. "/_sim/clock", headers = {}, timeout = 10 }
  local clock = json.decode(res.body or "") or {}
  for _, c in ipairs(clock.clients or {}) do
    sched.http { method = "DELETE", url = srv.url .. "/_sim/wait", headers = { ["x-ecsplay-client"] = c.id },
      timeout = 10 }
  end
end

-- Adds a fault (docs/scenario.md `faults`) to the server.
function J.fault(srv, fault)
  local res = sched.http { method = "POST", url = srv.url .. "/_sim/faults",
    headers = { ["content-type"] = "application/json" }, body = json.encode(fault), timeout = 10 }
  assert(res.status == 200, "POST /_sim/faults: " .. tostring(res.status) .. " " .. tostring(res.body))
end

function J.journals(dir)
  local out = {}
  local p = io.popen("ls " .. L.q(dir .. "/runs") .. "/*.jsonl 2>/dev/null")
  for f in p:lines() do out[#out + 1] = f end
  p:close()
  return out
end

function J.ended(path)
  local status
  for _, l in ipairs(L.journal(path)) do if l.t == "end" then status = l.status end end
  return status
end

return J
