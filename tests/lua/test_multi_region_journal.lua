-- The run journal records each rollout's session (issue 12/10): playbooks/multi_region.lua, run by a
-- real client against `ecsplay sim serve --lockstep` serving three Regions, is killed with SIGKILL
-- once its second Region (eu-west-1) has shifted traffic (tests/scenarios/kill_at_line.lua). Each
-- journal's start line names its Region; `ecsplay rollback` of each journal then acts in that
-- journal's Region (read back per Region with GET /_sim/world?region=R), not in the client's default
-- us-east-1; and `ecsplay resume` finishes every Region. Also: the /_sim/* region selector.
local T = require "harness"
local J = dofile "tests/scenarios/journal_lib.lua"
local L = J.L
local json = require "ecsplay.json"
local sched = require "ecsplay.sched"

local SCENARIO = "playbooks/scenarios/multi_region.lua"
local PLAYBOOK = { "tests/scenarios/kill_at_line.lua", "playbook=playbooks/multi_region.lua", "bake=1m",
  "soak=1m" }
local KILL = { ECSPLAY_TEST_KILL_AT = "api in eu-west-1|done|weight:2" }
local HOME = { ["api-stable"] = 100, ["api-canary"] = 0 }

-- `sim serve --lockstep` on the three-Region scenario (time moves only while the client waits).
local function serve(dir)
  os.execute(string.format("%s sim serve --port 0 --lockstep --scenario %s > %s/serve.out 2>&1 & echo $! > %s/serve.pid",
    L.q(L.BIN), L.q(SCENARIO), dir, dir))
  local srv = { dir = dir }
  srv.pid = L.poll(function() return tonumber((L.read(dir .. "/serve.pid") or ""):match("%d+")) end, 5, "serve.pid")
  srv.port = L.poll(function()
    return tonumber((L.read(dir .. "/serve.out") or ""):match("listening on http://127%.0%.0%.1:(%d+)"))
  end, 10, "sim serve to listen")
  srv.url = "http://127.0.0.1:" .. srv.port
  return srv
end

local function with_server(fn)
  local dir = L.tmpdir()
  local srv
  local ok, res = pcall(function()
    srv = serve(dir)
    return fn(dir, srv)
  end)
  L.stop(srv)
  os.execute("rm -rf " .. L.q(dir))
  if not ok then error(res, 0) end
  return res
end

local function get(srv, path)
  local res = sched.http { method = "GET", url = srv.url .. path, headers = {}, timeout = 10 }
  return res.status, json.decode(res.body or "") or {}
end

-- One Region's api: { td =, canary = desired count of api-canary, weights = }.
local function region_state(srv, region)
  local status, world = get(srv, "/_sim/world?region=" .. region)
  assert(status == 200, "GET /_sim/world?region=" .. region .. ": " .. tostring(status))
  assert(world.region == region, "the world read is " .. tostring(world.region))
  local s = L.state(world)
  return { td = s.api.td, canary = s.canary.desired, weights = s.weights }
end

-- The journals by rollout name: { ["api in eu-west-1"] = { path =, start =, ended = } }.
local function journals(dir)
  local out = {}
  for _, path in ipairs(J.journals(dir)) do
    local lines = L.journal(path)
    local start = lines[1] or {}
    out[start.name or path] = { path = path, start = start, ended = J.ended(path) }
  end
  return out
end

-- Runs the playbook until it is killed after eu-west-1's second shift; → the journals.
local function killed_run(dir, srv)
  local rc, out = J.ecsplay(dir, "run", srv, PLAYBOOK, KILL)
  T.eq(rc, 137, "killed by SIGKILL:\n" .. out)
  J.forget_clients(srv)
  return journals(dir)
end

T.test("killed after eu-west-1 shifted: each journal names its rollout's Region; the world is split", function()
  with_server(function(dir, srv)
    local js = killed_run(dir, srv)
    local east, west = js["api in us-east-1"], js["api in eu-west-1"]
    T.ok(east and west, "a journal per Region started: " .. json.encode(js))
    T.eq(js["api in ap-southeast-1"], nil, "the third wave never started")
    T.eq(east.start.session, { region = "us-east-1" })
    T.eq(west.start.session, { region = "eu-west-1" })
    T.eq(east.ended, "succeeded")
    T.eq(west.ended, nil, "eu-west-1 stopped mid-rollout")
    for _, js_ in pairs(js) do
      local text = L.read(js_.path)
      T.ok(not text:find("simulator-secret-key", 1, true) and not text:find("AKIDSIMULATOR", 1, true),
        "no credentials in " .. js_.path)
    end
    local w = region_state(srv, "eu-west-1")
    T.eq(w.td, "api:1", "eu-west-1's stable side untouched")
    T.ok(w.weights["api-canary"] > 0, "eu-west-1 sends traffic to its canary: " .. json.encode(w.weights))
    T.eq(region_state(srv, "us-east-1").td, "api:2", "us-east-1 was promoted")
    T.eq(region_state(srv, "ap-southeast-1"), { td = "api:1", canary = 0, weights = HOME })
  end)
end)

T.test("`ecsplay rollback` of each journal restores each Region's own world", function()
  with_server(function(dir, srv)
    local js = killed_run(dir, srv)
    local east_path = js["api in us-east-1"].path
    -- the run was killed before its end: `ecsplay status` of the unfinished wave points at its
    -- run, named after it: the wave it had promoted, whose on_abort never ran, with the command
    -- that puts it back
    local group = js["api in eu-west-1"].start.group
    local rc, out = J.ecsplay(dir, "status", nil, { "status", js["api in eu-west-1"].path })
    T.eq(rc, 0, out)
    T.ok(out:find("its run did not finish: 1 of its rollouts left promoted: see `run " .. group .. "` below", 1,
      true), out)
    T.ok(out:find("\n\nrun " .. group .. " did not finish, so its abort handlers (on_abort, a fleet's undo=) did "
      .. "not run: 1 of its rollouts succeeded (promoted) and still runs its new version:\n  api in us-east-1: "
      .. "`ecsplay rollback " .. east_path .. "` puts it back\n", 1, true), out)
    rc, out = J.ecsplay(dir, "rollback-west", nil, { "rollback", js["api in eu-west-1"].path })
    T.eq(rc, 0, out)
    T.ok(out:find("region eu-west-1", 1, true), "says which session it rolls back in:\n" .. out)
    -- and so does its rollback (which leaves us-east-1 alone: the operator did not ask)
    T.ok(out:find("api in us-east-1 of the same run succeeded (promoted)", 1, true), out)
    T.ok(out:find("`ecsplay rollback " .. east_path .. "` puts it back", 1, true), out)
    T.eq(region_state(srv, "eu-west-1"), { td = "api:1", canary = 0, weights = HOME }, "eu-west-1 restored")
    -- us-east-1 untouched by eu-west-1's rollback (before the fix, the undo ran there)
    local east = region_state(srv, "us-east-1")
    T.eq(east.td, "api:2", "us-east-1 still as promoted")
    rc, out = J.ecsplay(dir, "rollback-east", nil, { "rollback", js["api in us-east-1"].path })
    T.eq(rc, 0, out)
    T.eq(region_state(srv, "us-east-1"), { td = "api:1", canary = 0, weights = HOME },
      "us-east-1's finished rollout reverted")
    T.eq(region_state(srv, "ap-southeast-1"), { td = "api:1", canary = 0, weights = HOME })
    T.eq(J.ended(js["api in eu-west-1"].path), "rolled_back")
  end)
end)

T.test("`ecsplay resume` finishes every Region in its own world", function()
  with_server(function(dir, srv)
    local js = killed_run(dir, srv)
    local rc, out = J.ecsplay(dir, "resume", nil, { "resume", js["api in eu-west-1"].path })
    T.eq(rc, 0, out)
    T.ok(out:find("multi_region: us-east-1 succeeded, eu-west-1 succeeded, ap-southeast-1 succeeded", 1, true), out)
    local after = journals(dir)
    for _, region in ipairs { "us-east-1", "eu-west-1", "ap-southeast-1" } do
      T.eq(after["api in " .. region].ended, "succeeded", region)
      T.eq(after["api in " .. region].start.session, { region = region })
      local st = region_state(srv, region)
      T.eq({ st.td, st.canary }, { "api:2", 0 }, region .. " runs the new version")
    end
  end)
end)

T.test("the /_sim/* endpoints select a world by ?region= and ?account=, and refuse one not served", function()
  with_server(function(_, srv)
    local status, w = get(srv, "/_sim/world")
    T.eq({ status, w.region }, { 200, "us-east-1" }, "the primary world by default")
    status, w = get(srv, "/_sim/world?region=ap-southeast-1&account=123456789012")
    T.eq({ status, w.region, w.account }, { 200, "ap-southeast-1", "123456789012" })
    T.ok(w.services[1].task_definition:find(":ap-southeast-1:", 1, true), w.services[1].task_definition)
    status, w = get(srv, "/_sim/world?region=sa-east-1")
    T.eq(status, 400)
    T.ok(w.error:find("sa-east-1/123456789012", 1, true) and w.error:find("eu-west-1/123456789012", 1, true),
      w.error)
    status, w = get(srv, "/_sim/world?regoin=eu-west-1")
    T.eq(status, 400)
    T.ok(w.error:find("regoin", 1, true), w.error)
    -- a fault posted for a Region hits that Region's world only
    local res = sched.http { method = "POST", url = srv.url .. "/_sim/faults?region=eu-west-1",
      headers = { ["content-type"] = "application/json" },
      body = json.encode { service = "ecs", operation = "ListClusters", status = 503 }, timeout = 10 }
    T.eq(res.status, 200, res.body)
    status, w = get(srv, "/_sim/faults")
    T.eq(w.faults[1].region, "eu-west-1")
    status, w = get(srv, "/_sim/faults?region=us-east-1")
    T.eq(#w.faults, 0, "a Region's list leaves out the faults of other Regions")
  end)
end)

