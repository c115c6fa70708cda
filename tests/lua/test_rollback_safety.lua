-- A rollback never makes things worse (issue 12, items 1 and 2), for canary, blue_green,
-- rolling and ecs_native, in process on a virtual clock:
--  * traffic that cannot be moved back (ModifyRule 503 for an hour, AccessDenied) stops the
--    rollback there: exit 3, every side keeps its tasks, the message names what is left and
--    `ecsplay rollback JOURNAL`, which then retries safely;
--  * `ecsplay rollback` of a run that finished (or was killed after blue was scaled down)
--    reverts in the safe order, or refuses and says how to revert;
--  * ecs_native rolled back after ECS finished, or killed before its deployment was journaled:
--    100 % on the old version, no deployment in progress, no pause hook waited on;
--  * rolling resumed after its update was sent still undoes to the version before the run.
-- The invariant is read from the simulated world itself (control calls, no faults) after
-- every request the client sends: no target group that receives traffic on the production
-- rule lacks healthy targets. Journals are written to a temporary folder (ECSPLAY_RUNS_DIR)
-- and rolled back in the same process, on the same world, as `ecsplay rollback` would.
local tables = require "ecsplay.util.tables"
local T = require "harness"
local R = require "rollout_sim"
local aws = require "ecsplay.aws"
local json = require "ecsplay.json"
local scenario = require "ecsplay.sim.scenario"

local HOME = { ["api-stable"] = 100, ["api-canary"] = 0 }
local WATCH = { ["api-stable"] = true, ["api-canary"] = true }

------------------------------------------------------------------ the world, read directly

local function control(sim, service, op, params) return sim:call(service, op, params or {}, "control") end

-- { [tg name] = healthy count } and the weights of every forward action on the web ALB.
local function snapshot(sim)
  local names, healthy = {}, {}
  for _, tg in ipairs(control(sim, "elbv2", "DescribeTargetGroups").TargetGroups or {}) do
    names[tg.TargetGroupArn] = tg.TargetGroupName
    local n = 0
    local th = control(sim, "elbv2", "DescribeTargetHealth", { TargetGroupArn = tg.TargetGroupArn })
    for _, d in ipairs(th.TargetHealthDescriptions or {}) do
      if d.TargetHealth and d.TargetHealth.State == "healthy" then n = n + 1 end
    end
    healthy[tg.TargetGroupName] = n
  end
  local forwards = {}
  for _, lb in ipairs(control(sim, "elbv2", "DescribeLoadBalancers").LoadBalancers or {}) do
    for _, l in ipairs(control(sim, "elbv2", "DescribeListeners", { LoadBalancerArn = lb.LoadBalancerArn }).Listeners or {}) do
      for _, r in ipairs(control(sim, "elbv2", "DescribeRules", { ListenerArn = l.ListenerArn }).Rules or {}) do
        for _, a in ipairs(r.Actions or {}) do
          if a.Type == "forward" and a.ForwardConfig then
            local w = {}
            for _, t in ipairs(a.ForwardConfig.TargetGroups or {}) do w[names[t.TargetGroupArn]] = t.Weight or 1 end
            forwards[#forwards + 1] = { where = l.Port .. "/" .. tostring(r.Priority), weights = w }
          end
        end
      end
    end
  end
  return healthy, forwards
end

-- The invariant: every watched target group with weight > 0 has a healthy target.
local function violations_now(sim)
  local healthy, forwards = snapshot(sim)
  local out = {}
  for _, f in ipairs(forwards) do
    for name, w in pairs(f.weights) do
      if WATCH[name] and w > 0 and (healthy[name] or 0) == 0 then
        out[#out + 1] = string.format("%s has weight %s on %s and no healthy target", name, tostring(w), f.where)
      end
    end
  end
  return out
end

-- Every deployment of the cluster's services still IN_PROGRESS (or PENDING), read from the
-- world itself: "service td rolloutState desired/running".
local function in_flight(sim)
  local arns = control(sim, "ecs", "ListServices", { cluster = "production" }).serviceArns or {}
  local out = {}
  for i = 1, #arns, 10 do
    local chunk = table.move(arns, i, math.min(i + 9, #arns), 1, {})
    local res = control(sim, "ecs", "DescribeServices", { cluster = "production", services = chunk })
    for _, svc in ipairs(res.services or {}) do
      for _, d in ipairs(svc.deployments or {}) do
        if d.rolloutState == "IN_PROGRESS" or d.rolloutState == "PENDING" then
          out[#out + 1] = string.format("%s %s %s %d/%d", svc.serviceName, d.taskDefinition:match("/(.+)$"),
            d.rolloutState, d.desiredCount, d.runningCount)
        end
      end
    end
  end
  return out
end

--[[ A fresh world whose transport checks the invariant after every request.
     W.violations: what broke it, with the simulated time and the operation just sent. ]]
local function world(faults)
  local sim = R.fresh(scenario.check({ faults = faults or {} }, "rollback safety test"))
  local W = { sim = sim, violations = {}, ops = {} }
  local creds = sim:credentials()
  aws.configure {
    region = sim.world.region, endpoint_url = "https://simulator.ecsplay.invalid",
    access_key = creds.access_key, secret_key = creds.secret_key,
    transport = function(req)
      local res, msg, kind = sim:transport(req)
      local target = req.headers and (req.headers["X-Amz-Target"] or req.headers["x-amz-target"])
      local op = target and target:match("%.([%w]+)$") or (req.body or ""):match("Action=(%w+)")
      if W.rewrite and res and op then res = W.rewrite(op, res) end
      if op then W.ops[op] = (W.ops[op] or 0) + 1 end
      if W.watching then
        for _, v in ipairs(violations_now(sim)) do
          W.violations[#W.violations + 1] = string.format("+%ds %s: %s", sim.world.now - sim.world.start,
            tostring(op), v)
        end
      end
      return res, msg, kind
    end,
  }
  W.watching = true
  return W
end

local function no_violations(W)
  T.eq(W.violations, {}, "traffic on a target group without healthy targets")
end

------------------------------------------------------------------ journals

-- Runs a playbook in this process: exit code, error text, its result, the error itself.
local function play(path, args)
  require("ecsplay").args = args or {}
  return R.call(function() return dofile(path) end)
end

local real_getenv = os.getenv

local tmpdir = T.tmpdir

-- Runs fn with ECSPLAY_RUNS_DIR set to a fresh folder; returns the journal it wrote, and fn's results.
local function journaled(fn)
  local dir = tmpdir()
  os.getenv = function(k) if k == "ECSPLAY_RUNS_DIR" then return dir end return real_getenv(k) end -- luacheck: ignore
  local ok, a, b, c, d = pcall(fn)
  os.getenv = real_getenv -- luacheck: ignore
  if not ok then error(a, 0) end
  local p = io.popen("ls " .. dir .. "/*.jsonl 2>/dev/null")
  local path = p:read("l")
  p:close()
  T.ok(path, "a journal was written in " .. dir)
  return path, a, b, c, d
end

local function read(path)
  local f = assert(io.open(path, "r"))
  local s = f:read("a")
  f:close()
  return s
end

local function write(path, s)
  local f = assert(io.open(path, "w"))
  f:write(s)
  f:close()
end

local function lines(path)
  local out = {}
  for line in read(path):gmatch("([^\n]*)\n") do out[#out + 1] = json.decode(line) end
  return out
end

-- Keeps the journal's lines up to (and including) the first that `keep_until` accepts:
-- what a kill -9 right after that line leaves.
local function cut_after(path, keep_until)
  local kept = {}
  for line in read(path):gmatch("([^\n]*)\n") do
    kept[#kept + 1] = line
    if keep_until(json.decode(line)) then break end
  end
  write(path, table.concat(kept, "\n") .. "\n")
end

local function last_end(path)
  local status
  for _, l in ipairs(lines(path)) do if l.t == "end" then status = l.status end end
  return status
end

-- `ecsplay rollback JOURNAL` in this process (the world is the in-process simulator).
local function rollback(path)
  return R.call(function() return require("ecsplay.rollout.journal").rollback(path, { simulate = true }) end)
end

local function text_of(err)
  if err == nil then return "" end
  local e = require "ecsplay.errors"
  local s = e.describe(err)
  if type(err) == "table" and err.left then s = s .. " | left: " .. e.describe(err.left) end
  return s
end

------------------------------------------------------------------ traffic that cannot move back

-- A canary whose gate fails once 25 % of the traffic is on the canary; from that moment
-- ModifyRule fails (`fault`, for an hour), so the rollback cannot move the traffic home.
local function canary_stuck(fault)
  fault.service, fault.operation = "elbv2", "ModifyRule"
  local W = world()
  local gate = require "ecsplay.gate"
  local path, code, err, _, raw = journaled(function()
    return R.call(function()
      return require("ecsplay.rollout").canary { image = "api:v2", container = "api",
        steps = { 10, 25, 50, 100 }, bake = "2m", interval = "1m",
        gates = { gate.check("errors at 25 %", function()
          if R.weights()["api-canary"] < 25 then return true end
          local now = W.sim.world.now - W.sim.world.start
          fault.from, fault.to = now, now + 3600
          W.sim.faults:add(fault)
          return false
        end) } }
    end)
  end)
  return W, path, code, err, raw
end

local function check_stuck(W, path, code, err, raw)
  T.eq(code, 3, err)
  local text = text_of(raw)
  W.sim.faults:clear()
  T.eq(R.weights(), { ["api-stable"] = 75, ["api-canary"] = 25 }, "traffic stays where it was")
  local canary, api = R.service("api-canary"), R.service("api")
  T.eq({ canary.desired, canary.td }, { 4, "api:2" }, "the canary, which still has traffic, keeps its tasks")
  T.eq({ api.desired, api.td }, { 4, "api:1" }, "stable keeps its tasks")
  T.ok(R.healthy("api-canary") == 4, "the canary's targets are still healthy")
  T.ok(text:find("api-canary", 1, true), "names the side left with traffic: " .. text)
  T.ok(text:find("ecsplay rollback " .. path, 1, true), "names the command that continues: " .. text)
  T.eq(last_end(path), "rollback_failed", "the journal says so")
  no_violations(W)
end

-- After the failed rollback, `ecsplay rollback JOURNAL` once the API answers again: stable restored.
local function check_retry(W, path)
  local code, err = rollback(path)
  T.eq(code, 0, err)
  T.eq(R.weights(), HOME, "traffic back on stable")
  T.eq(R.service("api-canary").desired, 0, "canary scaled down once it had no traffic")
  T.eq(last_end(path), "rolled_back")
  no_violations(W)
end

T.test("canary: ModifyRule 503 for an hour as the gate fails → exit 3, nothing scaled down, "
  .. "then `ecsplay rollback` finishes", function()
  local W, path, code, err, raw = canary_stuck { status = 503 }
  check_stuck(W, path, code, err, raw)
  -- still failing (the fault is back): a second rollback stops at the same place, safely
  W.sim.faults:add { service = "elbv2", operation = "ModifyRule", status = 503 }
  local code2, err2, _, raw2 = rollback(path)
  T.eq(code2, 3, err2)
  T.ok(text_of(raw2):find("ecsplay rollback " .. path, 1, true), text_of(raw2))
  W.sim.faults:clear()
  T.eq(R.service("api-canary").desired, 4, "the retry did not scale the canary down either")
  T.eq(R.weights(), { ["api-stable"] = 75, ["api-canary"] = 25 })
  check_retry(W, path)
end)

T.test("canary: ModifyRule AccessDenied as the gate fails → exit 3, nothing scaled down, "
  .. "then `ecsplay rollback` finishes", function()
  local W, path, code, err, raw = canary_stuck { error = "AccessDenied", status = 403 }
  check_stuck(W, path, code, err, raw)
  check_retry(W, path)
end)

T.test("blue_green: ModifyRule 503 for an hour after the swap → exit 3, blue and green keep their tasks",
  function()
  -- the swap to green is at +60 s, api:flaky fails the gate at +120 s
  local W = world { { service = "elbv2", operation = "ModifyRule", status = 503, from = 90, to = 3690 } }
  local path, code, err, _, raw = journaled(function()
    return play("playbooks/blue_green.lua", { image = "api:flaky" })
  end)
  T.eq(code, 3, err)
  W.sim.faults:clear()
  T.eq(R.weights(), { ["api-stable"] = 0, ["api-canary"] = 100 }, "traffic stays on green")
  T.eq(R.service("api-canary").desired, 4, "green, which has the traffic, keeps its tasks")
  T.eq(R.service("api").desired, 4, "blue keeps its tasks")
  T.ok(text_of(raw):find("ecsplay rollback " .. path, 1, true), text_of(raw))
  no_violations(W)
  local code2, err2 = rollback(path)
  T.eq(code2, 0, err2)
  T.eq(R.weights(), HOME)
  T.eq(R.service("api-canary").desired, 0)
  no_violations(W)
end)

T.test("a scale-down whose side still receives traffic is refused, with what is left", function()
  local W = world()
  local ecs, traffic = require "ecsplay.ecs", require "ecsplay.rollout.traffic"
  local canary = R.service("api-canary").raw
  ecs.update_service { cluster = "production", service = "api-canary", taskDefinition = "api:1", desiredCount = 2 }
  R.settle(120)
  local stable_tg = traffic.target_group_arn("api-stable")
  local canary_tg = traffic.target_group_arn("api-canary")
  local point = traffic.resolve(nil, { stable_tg, canary_tg })
  traffic.set(point, { [stable_tg] = 80, [canary_tg] = 20 })
  -- a journal whose only undo scales the canary to zero (its traffic was moved by someone else)
  local dir = tmpdir()
  local path = dir .. "/hand.jsonl"
  write(path, json.encode { t = "start", run = "hand", name = "canary api", strategy = "canary" } .. "\n"
    .. json.encode { t = "do", key = "scale_canary", desc = "start the canary service",
      undo = { op = "update_service", cluster = "production", service = "api-canary",
        taskDefinition = canary.taskDefinition, desiredCount = 0 } } .. "\n"
    .. json.encode { t = "done", key = "scale_canary", result = json.null } .. "\n")
  local code, err, _, raw = rollback(path)
  T.eq(code, 3, err)
  T.ok(text_of(raw):find("api-canary", 1, true), text_of(raw))
  T.eq(R.service("api-canary").desired, 2, "the canary keeps its tasks")
  T.eq(R.weights(), { ["api-stable"] = 80, ["api-canary"] = 20 })
  no_violations(W)
end)

------------------------------------------------------------------ rolling back a run that finished

local function blue_green_succeeded(W)
  local path, code, err = journaled(function()
    return play("playbooks/blue_green.lua", { image = "api:v2" })
  end)
  T.eq(code, 0, err)
  T.eq(R.weights(), { ["api-stable"] = 0, ["api-canary"] = 100 }, "green serves")
  T.eq(R.service("api").desired, 0, "blue scaled to zero")
  -- a count-only scale-in starts no ECS deployment: blue's stays COMPLETED while its tasks stop
  T.eq(in_flight(W.sim), {}, "the success left no deployment in progress")
  T.eq(last_end(path), "succeeded")
  R.settle(300) -- blue's tasks have stopped by the time anyone rolls back
  T.eq(R.healthy("api-stable"), 0, "blue has no target left")
  no_violations(W)
  return path
end

local function check_reverted_to_blue(W, path, code, err)
  T.eq(code, 0, err)
  T.eq(R.weights(), HOME, "traffic back on blue")
  local api = R.service("api")
  T.eq({ api.desired, api.td }, { 4, "api:1" }, "blue runs the previous version again")
  T.eq(R.healthy("api-stable"), 4, "blue healthy")
  R.settle(120)
  T.eq(R.service("api-canary").desired, 0, "green scaled down after the traffic left it")
  T.eq(last_end(path), "rolled_back")
  no_violations(W)
end

T.test("`ecsplay rollback` of a succeeded blue/green journal: blue up and healthy, then traffic, "
  .. "then green down", function()
  local W = world()
  local path = blue_green_succeeded(W)
  local code, err = rollback(path)
  check_reverted_to_blue(W, path, code, err)
end)

T.test("`ecsplay rollback` of a blue/green run killed after blue was scaled down", function()
  local W = world()
  local path = blue_green_succeeded(W)
  cut_after(path, function(l) return l.t == "do" and l.key == "scale_down_blue" end)
  T.eq(last_end(path), nil, "the cut journal has no end")
  local code, err = rollback(path)
  check_reverted_to_blue(W, path, code, err)
end)

T.test("a blue/green journal with no undo for the scale-down (older ecsplay): refused, "
  .. "traffic stays on green, the message says how to revert", function()
  local W = world()
  local path = blue_green_succeeded(W)
  local text = read(path)
  local out = {}
  for line in text:gmatch("([^\n]*)\n") do
    local l = json.decode(line)
    if l.t == "do" and l.key == "scale_down_blue" then l.undo = json.null end
    out[#out + 1] = json.encode(l)
  end
  write(path, table.concat(out, "\n") .. "\n")
  local code, err, _, raw = rollback(path)
  T.eq(code, 3, err)
  local t = text_of(raw)
  T.ok(t:find("no healthy target", 1, true), t)
  T.ok(t:find("api-stable", 1, true), t)
  T.eq(R.weights(), { ["api-stable"] = 0, ["api-canary"] = 100 }, "traffic stays on green")
  T.eq(R.service("api-canary").desired, 4, "green keeps its tasks")
  no_violations(W)
end)

T.test("`ecsplay rollback` of a succeeded canary journal: stable back on the previous version", function()
  local W = world()
  local path, code, err = journaled(function()
    return play("playbooks/canary.lua", { image = "api:v2", bake = "1m" })
  end)
  T.eq(code, 0, err)
  T.eq(R.service("api").td, "api:2")
  local code2, err2 = rollback(path)
  T.eq(code2, 0, err2)
  T.eq(R.weights(), HOME)
  local api = R.service("api")
  T.eq({ api.td, api.desired, api.deployments }, { "api:1", 4, 1 }, "stable reverted and settled")
  T.eq(R.healthy("api-stable"), 4)
  T.eq(R.service("api-canary").desired, 0)
  no_violations(W)
end)

T.test("`ecsplay rollback` of a succeeded rolling journal: the previous version, no deployment left", function()
  local W = world()
  local path, code, err = journaled(function()
    return play("playbooks/rolling.lua", { image = "api:v2" })
  end)
  T.eq(code, 0, err)
  T.eq(R.service("api").td, "api:2")
  local code2, err2 = rollback(path)
  T.eq(code2, 0, err2)
  local api = R.service("api")
  T.eq({ api.td, api.desired, api.deployments }, { "api:1", 4, 1 }, "reverted, one deployment")
  T.eq(api.raw.deployments[1].rolloutState, "COMPLETED")
  no_violations(W)
end)

T.test("ecs_native: `ecsplay rollback` after ECS finished → 100 % on the previous version, "
  .. "no deployment in progress, no pause hook", function()
  local W = world()
  local path, code, err = journaled(function()
    return play("playbooks/ecs_native.lua", { image = "api:v2", bake = "1m" })
  end)
  T.eq(code, 0, err)
  local ecs = require "ecsplay.ecs"
  local svc = R.service("api").raw
  T.eq(R.service("api").td, "api:2")
  local code2, err2 = rollback(path)
  T.eq(code2, 0, err2)
  local api = R.service("api")
  T.eq({ api.td, api.desired, api.deployments }, { "api:1", 4, 1 }, "reverted, one deployment")
  T.eq(api.raw.deployments[1].rolloutState, "COMPLETED")
  local w = R.weights()
  local serving = w["api-stable"] == 100 and "api-stable" or w["api-canary"] == 100 and "api-canary" or nil
  T.ok(serving, "100 % on one target group: " .. json.encode(w))
  T.eq(R.healthy(serving), 4, "the serving group's targets are healthy")
  local sds = ecs.list_service_deployments { cluster = "production", service = "api",
    status = { "PENDING", "IN_PROGRESS" } }.serviceDeployments or {}
  T.eq(#sds, 0, "no service deployment in progress")
  -- the revert's deployment paused nowhere
  local all = ecs.list_service_deployments { cluster = "production", service = "api" }.serviceDeployments
  local arns = {}
  for _, s in ipairs(all) do arns[#arns + 1] = s.serviceDeploymentArn end
  for _, sd in ipairs(ecs.describe_service_deployments { serviceDeploymentArns = arns }.serviceDeployments) do
    if sd.serviceDeploymentArn ~= svc.currentServiceDeployment then
      for _, h in ipairs(sd.lifecycleHookDetails or {}) do
        T.ok(h.status ~= "AWAITING_ACTION" and h.status ~= "TIMED_OUT", "the revert waited on a hook")
      end
    end
  end
  T.eq(last_end(path), "rolled_back")
  no_violations(W)
end)

T.test("ecs_native: `ecsplay rollback` of a run killed right after UpdateService (its deployment "
  .. "not yet journaled): ECS rolls it back, 100 % stable, no deployment in progress", function()
  local W = world()
  local sched = require "ecsplay.sched"
  local gate = require "ecsplay.gate"
  local ecs = require "ecsplay.ecs"
  -- the run stops dead at its first pause (10 % on green): a process that no longer runs
  local paused = false
  local dir = tmpdir()
  os.getenv = function(k) if k == "ECSPLAY_RUNS_DIR" then return dir end return real_getenv(k) end -- luacheck: ignore
  local frozen = sched.spawn(function()
    return R.call(function()
      return require("ecsplay.rollout").ecs_native { image = "api:v2", container = "api",
        alternate_target_group = "api-canary", canary = { percent = 10, bake = "1m" }, bake = "1m",
        interval = "1m", gates = { gate.check("frozen", function()
          paused = true
          sched.sleep(1e7)
          return true
        end) } }
    end)
  end)
  while not paused do sched.sleep(5) end
  os.getenv = real_getenv -- luacheck: ignore
  T.eq(R.weights(), { ["api-stable"] = 90, ["api-canary"] = 10 }, "paused with 10 % on green")
  local p = io.popen("ls " .. dir .. "/*.jsonl")
  local path = p:read("l")
  p:close()
  -- what a kill -9 right after the UpdateService call leaves: no "done deploy", no "track"
  local copy = dir .. "/killed.jsonl"
  write(copy, read(path))
  cut_after(copy, function(l) return l.t == "do" and l.key == "deploy" end)
  local code, err = rollback(copy)
  T.eq(code, 0, err)
  T.eq(R.weights(), HOME, "traffic back on the previous revision's group")
  local api = R.service("api")
  T.eq({ api.td, api.desired, api.deployments }, { "api:1", 4, 1 }, "previous version, one deployment")
  local sds = ecs.list_service_deployments { cluster = "production", service = "api",
    status = { "PENDING", "IN_PROGRESS" } }.serviceDeployments or {}
  T.eq(#sds, 0, "no service deployment in progress")
  T.eq(last_end(copy), "rolled_back")
  no_violations(W)
  frozen:cancel("the test is over")
  frozen:result()
end)

T.test("rolling resumed after its update was sent: its undo still names the previous version "
  .. "(the journaled plan), and `ecsplay rollback` then reverts to it", function()
  local W = world()
  local context = require "ecsplay.context"
  context.run_info = { playbook = "playbooks/rolling.lua", args = { image = "api:v2" } }
  local path, code, err = journaled(function() return play("playbooks/rolling.lua", { image = "api:v2" }) end)
  T.eq(code, 0, err)
  cut_after(path, function(l) return l.t == "do" and l.key == "deploy" end)
  -- resumed: the service shows api:2 by now, the plan says api:1
  local rcode, rerr = R.call(function()
    require("ecsplay").args = {}
    return require("ecsplay.rollout.journal").resume(path, { simulate = true })
  end)
  context.resume, context.journal_group, context.run_info = nil, nil, nil
  T.eq(rcode, 0, rerr)
  local undos = {}
  for _, l in ipairs(lines(path)) do
    if l.t == "do" and l.key == "deploy" and type(l.undo) == "table" and l.undo.taskDefinition then
      undos[#undos + 1] = l.undo.taskDefinition:match("[^/]+$")
    end
  end
  T.ok(#undos >= 1, "the deploy step's undo is journaled")
  for _, td in ipairs(undos) do T.eq(td, "api:1", "every journaled undo of the deploy step") end
  local code2, err2 = rollback(path)
  T.eq(code2, 0, err2)
  local api = R.service("api")
  T.eq({ api.td, api.desired, api.deployments }, { "api:1", 4, 1 }, "reverted, one deployment")
  no_violations(W)
end)

------------------------------------------------------------------ issue 12, this session

T.test("a run that fails before its first change says so: \"nothing was changed\", never \"rolled back\" "
  .. "(exit 1 as before)", function()
  world { { service = "ecs", operation = "RegisterTaskDefinition", status = 403 } }
  local code, err = R.call(function()
    return require("ecsplay.rollout").canary { image = "api:v2", steps = { 10, 100 }, bake = "1m" }
  end)
  T.eq(code, 1, err)
  T.ok(err:find("failed (nothing was changed)", 1, true), err)
  T.ok(not err:find("rolled back", 1, true), err)
  T.eq(R.weights(), HOME)
  -- the same run failing after a change still says it rolled back
  world()
  local gate = require "ecsplay.gate"
  local code2, err2 = R.call(function()
    return require("ecsplay.rollout").canary { image = "api:v2", steps = { 10, 100 }, bake = "1m",
      interval = "1m", gates = { gate.check("no", function() return false end) } }
  end)
  T.eq(code2, 1, err2)
  T.ok(err2:find("rolled back", 1, true), err2)
end)

T.test("Run:step records the same undo once, compared as data (not as JSON text, whose key order "
  .. "varies from table to table)", function()
  local Run = require "ecsplay.rollout.run"
  local run = Run.new("canary", { journal = false }, { name = "dedupe test" })
  local function weights(pad)
    local w = {}
    -- grown and shrunk first: the same keys end up in another order in the hash part
    for i = 1, pad do w["pad" .. i] = i end
    for i = 1, pad do w["pad" .. i] = nil end
    for _, k in ipairs { "arn:tg/api-stable", "arn:tg/api-canary", "arn:tg/api-shadow" } do w[k] = #k end
    return { op = "set_weights", point = { kind = "rule", arn = "arn:rule/1" }, weights = w }
  end
  -- look for two equal undos whose JSON texts differ (the case this guards); the hash order
  -- depends on the process's string seed, so this usually takes a few tries and rarely none
  local a, b
  for pad = 1, 1024 do
    a, b = weights(0), weights(pad)
    if json.encode(a) ~= json.encode(b) then break end
  end
  T.ok(tables.equal(a, b), "the two undos are equal as data")
  run:step("weight:1", "first", function() end, a)
  run:step("weight:2", "second", function() end, b)
  T.eq(#run.undo, 1, "the same undo twice is one entry")
end)

-- rolling image=api:bad, killed right after its UpdateService (journal cut after `do deploy`),
-- with ECS's circuit breaker already done rolling it back: resumed, it sends no UpdateService
-- over ECS's own rollback; it reports ECS's rollback (exit 1) and the service stays on api:1.
T.test("rolling resumed after its update was sent and ECS rolled it back: no second UpdateService, "
  .. "ECS's rollback reported (exit 1)", function()
  local W = world()
  local context = require "ecsplay.context"
  context.run_info = { playbook = "playbooks/rolling.lua", args = { image = "api:bad" } }
  local path, code, err = journaled(function() return play("playbooks/rolling.lua", { image = "api:bad" }) end)
  T.eq(code, 1, err)
  T.ok(err:find("ECS rolled back", 1, true), err)
  cut_after(path, function(l) return l.t == "do" and l.key == "deploy" end)
  local sent = W.ops.UpdateService or 0
  local rcode, rerr = R.call(function()
    require("ecsplay").args = {}
    return require("ecsplay.rollout.journal").resume(path, { simulate = true })
  end)
  context.resume, context.journal_group, context.run_info = nil, nil, nil
  T.eq(rcode, 1, rerr)
  T.ok(rerr:find("ECS rolled back", 1, true), rerr)
  T.eq((W.ops.UpdateService or 0) - sent, 0, "UpdateService calls by the resumed run")
  local api = R.service("api")
  T.eq({ api.td, api.deployments }, { "api:1", 1 }, "ECS's rollback stands")
  T.eq(last_end(path), "rolled_back")
  no_violations(W)
end)

-- playbooks/rollback.lua (the rehearsal deploys api:2 first, then goes back to api:1), its own
-- rollout killed right after its UpdateService: resumed, the service runs api:1 already, and
-- the target comes from the journaled plan instead of "the revision before the one running".
T.test("playbooks/rollback.lua resumed after its update began: the same target (the journaled plan), "
  .. "exit 0, api back on api:1", function()
  local W = world()
  local context = require "ecsplay.context"
  context.run_info = { playbook = "playbooks/rollback.lua", args = {} }
  local dir = tmpdir()
  os.getenv = function(k) if k == "ECSPLAY_RUNS_DIR" then return dir end return real_getenv(k) end -- luacheck: ignore
  local code, err = play("playbooks/rollback.lua", {})
  os.getenv = real_getenv -- luacheck: ignore
  T.eq(code, 0, err)
  local path
  local p = io.popen("ls " .. dir .. "/*.jsonl")
  for f in p:lines() do
    if lines(f)[1].name == "rollback api" then path = f end
  end
  p:close()
  T.ok(path, "the rollback rollout's journal")
  cut_after(path, function(l) return l.t == "do" and l.key == "deploy" end)
  T.eq(R.service("api").td, "api:1", "the update had gone out")
  local rcode, rerr = R.call(function()
    require("ecsplay").args = {}
    return require("ecsplay.rollout.journal").resume(path, { simulate = true })
  end)
  context.resume, context.journal_group, context.run_info = nil, nil, nil
  T.eq(rcode, 0, rerr)
  T.eq(last_end(path), "succeeded")
  local api = R.service("api")
  T.eq({ api.td, api.deployments }, { "api:1", 1 })
  no_violations(W)
end)

-- multi_service: the CodeDeploy rollout's GetDeployment answers 503 for good, so its stop cannot
-- be confirmed and its rollback fails; the canary rolls back through the fleet gate. The run's
-- exit code is the rollback failure's (3), not "every rollback completed" (1).
T.test("multi_service: the CodeDeploy rollback cannot be confirmed (GetDeployment 503) → exit 3 with "
  .. "what is left and `ecsplay rollback`", function()
  world { { service = "codedeploy", operation = "GetDeployment", status = 503 } }
  local _, code, err = journaled(function() return R.playbook("playbooks/multi_service.lua", {}) end)
  T.eq(code, 3, err)
  T.ok(err:find("its rollback did not complete", 1, true), err)
  T.ok(err:find("ecsplay rollback ", 1, true), err)
end)

------------------------------------------------------------------ no deployment left in progress

-- The promise after a rollback (or a revert), the instant the run returns: no deployment in
-- progress, every target group with traffic healthy, the canary/green side at zero tasks.
local function check_settled(W, what)
  T.eq(in_flight(W.sim), {}, what .. ": a deployment left in progress")
  no_violations(W)
  T.eq(R.weights(), HOME, what .. ": traffic home")
  local side = R.service("api-canary")
  T.eq({ side.desired, side.running, side.deployments }, { 0, 0, 1 }, what .. ": the side scaled in")
end

T.test("canary rolled back: it returns once the canary's scale-in has finished, no deployment "
  .. "in progress", function()
  local W = world()
  local code, err = play("playbooks/canary.lua", { image = "api:flaky", bake = "2m" })
  T.eq(code, 1, err)
  T.ok(err:find("rolled back", 1, true), err)
  check_settled(W, "canary")
end)

T.test("linear rolled back: no deployment in progress", function()
  local W = world()
  local code, err = play("playbooks/linear.lua", { image = "api:flaky", step = 50 })
  T.eq(code, 1, err)
  check_settled(W, "linear")
end)

T.test("blue_green rolled back after the swap: green's scale-in waited for, no deployment in progress",
  function()
  local W = world()
  local code, err = play("playbooks/blue_green.lua", { image = "api:flaky" })
  T.eq(code, 1, err)
  check_settled(W, "blue_green")
  T.eq(R.service("api").desired, 4, "blue serves")
end)

T.test("revert.succeeded of a canary that succeeded: stable, traffic, then the canary's scale-in, "
  .. "all finished when it returns", function()
  local W = world()
  local code, err, report = R.call(function()
    return require("ecsplay.rollout").canary { image = "api:v2", container = "api", steps = { 50, 100 },
      bake = "1m", interval = "1m" }
  end)
  T.eq(code, 0, err)
  T.eq(in_flight(W.sim), {}, "the success left no deployment in progress")
  T.eq(R.service("api").td, "api:2")
  T.eq(require("ecsplay.rollout.revert").succeeded(report, "test"), true)
  check_settled(W, "revert")
  local api = R.service("api")
  T.eq({ api.td, api.desired, api.running }, { "api:1", 4, 4 }, "stable back on the previous version")
end)

-- DescribeServices answers as if api-canary's old tasks never finished draining: a second
-- deployment that keeps a task, for as long as W.stuck holds.
local function stuck_scale_in(W)
  W.stuck = true
  W.rewrite = function(op, res)
    if op ~= "DescribeServices" or not W.stuck then return res end
    local body = json.decode(res.body)
    for _, svc in ipairs(body.services or {}) do
      if svc.serviceName == "api-canary" then
        svc.deployments[#svc.deployments + 1] = { id = "ecs-svc/stuck", status = "ACTIVE",
          taskDefinition = svc.taskDefinition, desiredCount = 1, runningCount = 1, pendingCount = 0,
          rolloutState = "COMPLETED" }
      end
    end
    res.body = json.encode(body)
    return res
  end
end

T.test("a scale-in that does not finish in time: traffic home first, then the revert says what is "
  .. "left (exit 3), and `ecsplay rollback` finishes it", function()
  local W = world()
  local path, code, err, report = journaled(function()
    return R.call(function()
      return require("ecsplay.rollout").canary { image = "api:v2", container = "api", steps = { 50, 100 },
        bake = "1m", interval = "1m", journal = true }
    end)
  end)
  T.eq(code, 0, err)
  stuck_scale_in(W)
  local rcode, rerr, _, raw = R.call(function() return require("ecsplay.rollout.revert").succeeded(report, "test") end)
  T.eq(rcode, 3, rerr)
  local text = text_of(raw)
  T.ok(text:find("api-canary has not finished scaling in after 15m", 1, true), text)
  T.ok(text:find("ecsplay rollback " .. path, 1, true), text)
  T.eq(R.weights(), HOME, "traffic moved home before the wait")
  T.eq(R.service("api").td, "api:1", "stable put back")
  T.eq(last_end(path), "rollback_failed", "the journal says so")
  no_violations(W)
  W.stuck = false
  local code2, err2 = rollback(path)
  T.eq(code2, 0, err2)
  T.eq(last_end(path), "rolled_back")
  check_settled(W, "rollback after the stuck scale-in")
end)
