-- Intent before effect (issue 12, items 2 and 3) for CodeDeploy and the task definition:
--  * the undo of CreateDeployment is journaled before the call, naming the deployment by the run's
--    marker (its description), so a client killed while the answer is held back (the deployment
--    exists, the run never heard of it) leaves nothing untracked: `ecsplay rollback` finds it and
--    stops it; `ecsplay resume` adopts it instead of creating a second one;
--  * a client killed while RegisterTaskDefinition's answer is held back: `ecsplay resume` finds the
--    revision by its run-id tag and registers no other;
--  * `ecsplay rollback` of a succeeded codedeploy journal reverts (a new deployment of the previous
--    task definition, CodeDeploy's safe order), exit 0, nothing left in progress; an older journal
--    that cannot say what to revert to, or a newer deployment since, is refused (exit 2) and the
--    journal's status stays as it was.
-- The kill cases run against `sim serve --lockstep` with the answer held by a `delay` fault; the
-- rest in process on the default world. The world is read back each time.
local T = require "harness"
local R = require "rollout_sim"
local J = dofile "tests/scenarios/journal_lib.lua"
local L = J.L
local json = require "ecsplay.json"
local journal = require "ecsplay.rollout.journal"

local BLUE, GREEN = { ["app-blue"] = 1 }, { ["app-green"] = 100 }

------------------------------------------------------------------ killed while an answer is held back

-- Starts playbooks/codedeploy.lua with `op`'s answer held back 3 s, kills the client once the
-- journal shows the step `key` begun, then `after(r)`.
local function killed_in(service, op, key, after)
  return J.with_server(function(dir, srv)
    J.fault(srv, { service = service, operation = op, delay = "3s", times = 1 })
    local p = J.start(dir, "run", srv, { "playbooks/codedeploy.lua" })
    L.wait_journal(dir, "do", key, 60)
    require("ecsplay.sched").sleep(0.5)
    L.kill(p, "KILL")
    local r = { dir = dir, srv = srv }
    r.rc, r.out = J.finish(p, 30)
    J.forget_clients(srv)
    r.path = J.journals(dir)[1]
    r.lines = L.journal(r.path)
    r.before = L.world(srv)
    after(r)
    r.after = L.world(srv)
    r.ended = J.ended(r.path)
    return r
  end)
end

local function deployments(world)
  local out = {}
  for _, d in ipairs(world.codedeploy_deployments or {}) do out[#out + 1] = d.status end
  return out
end

local function service(world, name)
  for _, s in ipairs(world.services) do
    if s.name == name then return s.task_definition:match("task%-definition/(.+)$"), s.desired end
  end
end

local function prod_weights(world)
  for _, l in ipairs(world.listeners) do
    if l.port == 443 then
      for _, r in ipairs(l.rules) do if r.priority == "default" then return r.weights end end
    end
  end
end

local function has_line(lines, t, key)
  for _, l in ipairs(lines) do if l.t == t and l.key == key then return l end end
end

T.test("killed while CreateDeployment's answer is held: the intent is journaled, `ecsplay rollback` "
  .. "finds the deployment by its marker and stops it", function()
  local r = killed_in("codedeploy", "CreateDeployment", "deployment", function(r)
    r.rb_rc, r.rb_out = J.ecsplay(r.dir, "rollback", nil, { "rollback", r.path })
  end)
  T.eq(r.rc, 137, r.out)
  local intent = has_line(r.lines, "do", "deployment")
  T.ok(intent and intent.undo and intent.undo.marker, "the undo is journaled before the call")
  T.ok(not has_line(r.lines, "done", "deployment"), "the answer never arrived")
  T.eq(deployments(r.before), { "Created" }, "the deployment exists when the client dies")
  T.eq(r.rb_rc, 0, r.rb_out)
  T.ok(r.rb_out:find("rolled back: stable state restored", 1, true), r.rb_out)
  T.eq(deployments(r.after), { "Stopped" }, "stopped, nothing left in progress")
  T.eq((service(r.after, "app")), "app:1")
end)

T.test("killed while CreateDeployment's answer is held: `ecsplay resume` adopts the deployment", function()
  local r = killed_in("codedeploy", "CreateDeployment", "deployment", function(r)
    r.rs_rc, r.rs_out = J.ecsplay(r.dir, "resume", nil, { "resume", r.path })
  end)
  T.eq(r.rc, 137, r.out)
  T.eq(r.rs_rc, 0, r.rs_out)
  T.ok(r.rs_out:find("adopting deployment", 1, true), r.rs_out)
  T.eq(deployments(r.after), { "Succeeded" }, "one deployment, not two")
  T.eq((service(r.after, "app")), "app:2")
  T.eq(prod_weights(r.after), GREEN)
  T.eq(r.ended, "succeeded")
end)

T.test("killed while RegisterTaskDefinition's answer is held: `ecsplay resume` reuses the revision", function()
  local r = killed_in("ecs", "RegisterTaskDefinition", "register", function(r)
    r.rs_rc, r.rs_out = J.ecsplay(r.dir, "resume", nil, { "resume", r.path })
  end)
  T.eq(r.rc, 137, r.out)
  T.ok(not has_line(r.lines, "done", "register"), "the answer never arrived")
  T.eq(r.rs_rc, 0, r.rs_out)
  T.ok(r.rs_out:find("reusing app:2, registered before the run was stopped", 1, true), r.rs_out)
  T.eq((service(r.after, "app")), "app:2", "no app:3")
  T.eq(deployments(r.after), { "Succeeded" })
end)

------------------------------------------------------------------ in process: finished runs

local real_getenv = os.getenv

local function journaled(fn)
  local dir = T.tmpdir()
  os.getenv = function(k) if k == "ECSPLAY_RUNS_DIR" then return dir end return real_getenv(k) end -- luacheck: ignore
  local ok, a, b = pcall(fn)
  os.getenv = real_getenv -- luacheck: ignore
  if not ok then error(a, 0) end
  local p = io.popen("ls " .. dir .. "/*.jsonl")
  local path = p:read("l")
  p:close()
  return path, a, b
end

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local function rollback(path)
  return R.call(function() return journal.rollback(path, { simulate = true }) end)
end

local function group_deployments()
  local cd = require "ecsplay.codedeploy"
  local out = {}
  for _, id in ipairs(cd.list_deployments { applicationName = "app-deploy", deploymentGroupName = "app-dg" }
      .deployments) do
    local info = cd.get_deployment { deploymentId = id }.deploymentInfo
    out[#out + 1] = { id = id, status = info.status, description = info.description }
  end
  return out
end

local function succeeded_run()
  R.fresh()
  local create = require("ecsplay.codedeploy").create_deployment
  local seen
  local path, code, err = journaled(function()
    -- the intent is on disk before CreateDeployment is called
    require("ecsplay.codedeploy").create_deployment = function(params)
      local p = io.popen("cat " .. os.getenv("ECSPLAY_RUNS_DIR") .. "/*.jsonl")
      seen = { journal = p:read("a"), description = params.description }
      p:close()
      return create(params)
    end
    local ok, c, e = pcall(R.playbook, "playbooks/codedeploy.lua", {})
    require("ecsplay.codedeploy").create_deployment = create
    if not ok then error(c, 0) end
    return c, e
  end)
  T.eq(code, 0, err)
  return path, seen
end

T.test("a codedeploy run journals its deployment's undo, with the run's marker, before creating it", function()
  local path, seen = succeeded_run()
  local start = json.decode(read(path):match("^([^\n]*)"))
  local marker = "ecsplay run " .. start.run
  T.ok(seen.journal:find('"marker":"' .. marker .. '"', 1, true), seen.journal)
  T.ok(seen.description:find(marker, 1, true), seen.description)
  T.ok(#seen.description <= 100, seen.description)
  local list = group_deployments()
  T.eq(#list, 1)
  T.ok(list[1].description:find(marker, 1, true), list[1].description)
end)

T.test("`ecsplay rollback` of a succeeded codedeploy journal: a revert in CodeDeploy's safe order, exit 0", function()
  local path = succeeded_run()
  T.eq(R.service("app").td, "app:2")
  local code, err = rollback(path)
  T.eq(code, 0, err)
  T.eq(R.service("app").td, "app:1", "the previous version")
  T.eq(R.listener_weights(443), { ["app-blue"] = 100 }, "traffic on the reverted side")
  T.eq(R.healthy("app-blue"), 3, "its targets are healthy")
  local list = group_deployments()
  T.eq(#list, 2)
  T.eq({ list[1].status, list[2].status }, { "Succeeded", "Succeeded" }, "nothing left in progress")
  T.ok(list[1].description:find("ecsplay revert of", 1, true), list[1].description)
  local text = read(path)
  T.ok(text:find('"status":"rolled_back"', 1, true), text)
  -- a second rollback: nothing left
  local code2, err2 = rollback(path)
  T.eq(code2, 0, err2)
  T.eq(#group_deployments(), 2, "no second revert")
end)

T.test("a succeeded codedeploy journal of an older ecsplay (no marker, no previous version): refused, "
  .. "exit 2, the journal and the world as they were", function()
  local path = succeeded_run()
  local out = {}
  for line in read(path):gmatch("([^\n]*)\n") do
    local l = json.decode(line)
    if l.t == "do" and l.key == "deployment" then
      l.undo = json.null
      out[#out + 1] = json.encode(l)
      out[#out + 1] = json.encode { t = "do", key = "track", desc = "watch", time = l.time,
        undo = { op = "stop_codedeploy", deploymentId = group_deployments()[1].id } }
      out[#out + 1] = json.encode { t = "done", key = "track", result = json.null, time = l.time }
    else
      out[#out + 1] = line
    end
  end
  local f = assert(io.open(path, "wb"))
  f:write(table.concat(out, "\n") .. "\n")
  f:close()
  local before = read(path)
  local code, err = rollback(path)
  T.eq(code, 2, err)
  T.ok(err:find("already succeeded", 1, true) and err:find("to revert", 1, true), err)
  T.eq(read(path), before, "the journal is not rewritten")
  T.eq(R.service("app").td, "app:2")
  T.eq(R.listener_weights(443), GREEN)
  T.eq(#group_deployments(), 1)
end)

T.test("a succeeded codedeploy journal with a newer deployment since: refused, exit 2, nothing changed", function()
  local path = succeeded_run()
  local cd_undo = require "ecsplay.rollout.codedeploy_undo"
  local cd = require "ecsplay.codedeploy"
  cd.create_deployment { applicationName = "app-deploy", deploymentGroupName = "app-dg",
    revision = cd_undo.revision("arn:aws:ecs:us-east-1:123456789012:task-definition/app:2", "app", 8080) }
  R.settle(1800)
  T.eq(group_deployments()[1].status, "Succeeded")
  local before = read(path)
  local code, err = rollback(path)
  T.eq(code, 2, err)
  T.ok(err:find("came after it", 1, true), err)
  T.eq(read(path), before, "the journal is not rewritten")
  T.eq(#group_deployments(), 2)
end)
