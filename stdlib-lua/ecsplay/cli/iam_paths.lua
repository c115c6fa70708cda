--[[
The paths `ecsplay iam-policy` rehearses (docs/iam.md), each in this process on a
fresh world of the scenario, with a run journal in a folder of its own (as a real
run has one: a journaled run also tags the revision it registers):

  success           the playbook as given;
  rollback          every image no task definition of the world uses yet (the new
                    version) serves errors, slowly, and crashes after 3 minutes, so
                    the gates fail and the rollout rolls back;
  resume            the run is killed, as by kill -9, at its kill point (below),
                    then `ecsplay resume JOURNAL` finishes it on the same world;
  journal-rollback  killed at the same point, then `ecsplay rollback JOURNAL` for
                    each journal of the run (what `ecsplay rollback` asks for);
  abort             `ecsplay abort RUN` is sent at the same point (a line in the
                    run's control file, as the command writes it); the rollout
                    takes it at its next wait and rolls back.
  promote           the scenario sends `ecsplay promote` every PROMOTE_EVERY from
                    the start (its `controls`, docs/scenario.md), so every wait
                    the run makes takes one: a bake ends, an approval step is
                    approved, and where promote is an AWS call it is made
                    (CodeDeploy's ContinueDeployment for its ready or termination
                    wait; an ECS pause hook answered CONTINUE). Rehearsed for
                    every playbook: where promote calls nothing new, the path
                    shows that the policy holds for a promoted run too.

The kill point: the first AWS call after the group's first journal shows its
second journaled change done (a step with an undo: the canary scaled up and the
first weight moved, green scaled up and the swap, ...), or its first when the
success path journals one only. A playbook whose success path journals no change
has none of the last three paths (they are reported skipped).

A kill in process: from the kill point on, every call the run makes is denied
(a Deny-everything policy: nothing in the world changes any more, as nothing
changes once the process is gone) and none is recorded; when the playbook has
stopped, each journal is cut back to the bytes it had at the kill point (later
ones removed), which is what a kill -9 leaves, and the journal command runs in
the same run, on the same world, with the real policy again.

  paths.NAMES
  paths.run_all(opts, conf, env) → { result per path, in NAMES order }
      env: policy = a checked policy document (enforced) | nil,
           stop_on_denial = stop after the first path with a denial,
           verbose = the runs' logs and output on standard error
      result: { path=, code=, message=, denials = {{action=, resource=, how=, code=}},
                checks = { the IAM checks of its calls }, skipped = why | nil,
                note = what went unlike the path's intent | nil,
                abort_taken = the abort path's rollout journaled the abort,
                promotes = the promotes the promote path's rollouts took }
]]
local files = require "ecsplay.util.files"
local errors = require "ecsplay.errors"
local json = require "ecsplay.json"
local context = require "ecsplay.context"
local iam = require "ecsplay.sim.iam"
local control = require "ecsplay.rollout.control"
local journal = require "ecsplay.rollout.journal"
local journal_file = require "ecsplay.rollout.journal_file"
local exit = require "ecsplay.cli.exit"
local rehearse = require "ecsplay.cli.rehearse"

local M = {}

M.NAMES = { "success", "rollback", "resume", "journal-rollback", "abort", "promote" }

-- The promote path's scripted promotes: one every PROMOTE_EVERY simulated seconds up to
-- PROMOTE_UNTIL (longer than a shipped rollout runs, even promoted only where it waits).
M.PROMOTE_EVERY, M.PROMOTE_UNTIL = 30, 12 * 3600

-- Paths that start from the kill point; those that kill the run there.
local FROM_KILL_POINT = { resume = true, ["journal-rollback"] = true, abort = true }
local KILLED = { resume = true, ["journal-rollback"] = true }

-- The new version's behaviour on the rollback path.
local BROKEN = { error_rate = 0.5, latency_ms = { p50 = 2000, p99 = 5000 }, crash = "after", after = 180 }

local DENY_ALL = iam.check_policy({ Version = "2012-10-17",
  Statement = { { Effect = "Deny", Action = "*", Resource = "*" } } }, "kill")

--[[ Every image of a task definition registered now keeps its behaviour; any
     other image (what the playbook deploys) is BROKEN. ]]
local function break_new_versions(sim)
  local w = sim.world
  local keep, seen = {}, {}
  local arns = sim:call("ecs", "ListTaskDefinitions", {}, "control").taskDefinitionArns or {}
  for _, arn in ipairs(arns) do
    local td = sim:call("ecs", "DescribeTaskDefinition", { taskDefinition = arn }, "control").taskDefinition
    for _, cd in ipairs(td.containerDefinitions or {}) do
      if cd.image and not seen[cd.image] then
        seen[cd.image] = true
        keep[#keep + 1] = { key = cd.image, behaviour = w:behaviour(cd.image) }
      end
    end
  end
  keep[#keep + 1] = { key = "~.", behaviour = BROKEN }
  for _, e in ipairs(w.images) do keep[#keep + 1] = e end
  w.images = keep
end

-- The changes (steps journaled with an undo) the journal at `path` shows done.
function M.changes(path)
  local text = path and files.read(path)
  if not text then return 0 end
  local ok, state = pcall(journal_file.parse, text, path)
  if not ok then return 0 end
  local n = 0
  for _, u in ipairs(state.all_undo) do
    if state.done[u.key] ~= nil then n = n + 1 end
  end
  return n
end

local function journals(dir)
  local out = {}
  for _, id in ipairs(control.list_runs(dir)) do out[#out + 1] = dir .. "/" .. id .. ".jsonl" end
  return out
end

-- What a kill -9 leaves of the journals in `dir`: each as long as `sizes` says, later ones gone.
local function cut_journals(dir, sizes)
  for _, path in ipairs(journals(dir)) do
    local size = sizes[path]
    if not size then
      os.remove(path)
    else
      local text = files.read(path) or ""
      if #text > size then
        local f = assert(io.open(path, "wb"))
        f:write(text:sub(1, size))
        f:close()
      end
    end
  end
end

--[[ Watches the group's first journal for the kill point: reached() at each AWS call
     the run makes (it reads the journal again only when it has grown). ]]
local function kill_point(threshold)
  local self = { size = -1 }
  function self.reached()
    local group = context.journal_group
    local root = group and group.root
    local size = root and files.size(root)
    if not size or size == self.size then return false end
    self.size, self.root = size, root
    return M.changes(root) >= threshold
  end
  return self
end

-- After the kill: `ecsplay resume` of the run, or `ecsplay rollback` of each of its journals.
local function journal_command(name, kill)
  if name == "resume" then return journal.resume(kill.root, { simulate = true }) end
  local first_error
  local paths = { kill.root }
  for _, p in ipairs(kill.journals) do if p ~= kill.root then paths[#paths + 1] = p end end
  for _, p in ipairs(paths) do
    local ok, err = pcall(journal.rollback, p, { simulate = true })
    if not ok and first_error == nil then first_error = err end
  end
  if first_error ~= nil then error(first_error, 0) end
end

-- Whether the rollout journaled the abort command `id` (it does when it takes one).
local function abort_taken(journal_path, id)
  for line in (files.read(journal_path) or ""):gmatch("[^\n]+") do
    local ok, obj = pcall(json.decode, line)
    if ok and type(obj) == "table" and obj.t == "control" and obj.id == id and obj.command == "abort" then
      return true
    end
  end
  return false
end

--[[ The promote path's scenario: the world's own, plus a promote every PROMOTE_EVERY
     (after the scenario's own controls). A copy: the scenario the run loaded stays as it is. ]]
local function promoting(scenario)
  local copy = {}
  for k, v in pairs(scenario or {}) do copy[k] = v end
  local controls = {}
  for _, c in ipairs(copy.controls or {}) do controls[#controls + 1] = c end
  for at = M.PROMOTE_EVERY, M.PROMOTE_UNTIL, M.PROMOTE_EVERY do
    controls[#controls + 1] = { at = at, command = "promote", by = "iam-policy" }
  end
  copy.controls = controls
  return copy
end

-- The promotes the rollouts whose journals are in `dir` took (their {"t":"control"} lines).
local function promotes_taken(dir)
  local n = 0
  for _, path in ipairs(journals(dir)) do
    for line in (files.read(path) or ""):gmatch("[^\n]+") do
      if line:find('"promote"', 1, true) then
        local ok, obj = pcall(json.decode, line)
        if ok and type(obj) == "table" and obj.t == "control" and obj.command == "promote" then n = n + 1 end
      end
    end
  end
  return n
end

local function mkdir(dir)
  os.execute("mkdir -p '" .. dir:gsub("'", "'\\''") .. "'")
end

--[[ One path in `dir` (its runs folder). ECSPLAY_RUNS_DIR is how a run finds its
     journal folder (rollout/journal_file.lua), so it is answered here for the
     rehearsal only. kill_after: the changes before the kill point. ]]
local function rehearse_path(opts, conf, name, env, dir, kill_after)
  local result = { path = name, denials = {}, checks = {} }
  local point = FROM_KILL_POINT[name] and kill_point(kill_after)
  local kill -- the state at the kill point: journals' sizes, the policy in force
  local function reach(sim)
    if KILLED[name] then
      kill = { root = point.root, sizes = {}, journals = journals(dir), iam = sim.scenario.iam,
        denials = sim.iam_denials }
      for _, p in ipairs(kill.journals) do kill.sizes[p] = files.size(p) end
      sim.scenario.iam, sim.iam_denials = { policy = DENY_ALL }, {}
    else
      kill = { sent = control.send(point.root, "abort", { as = "iam-policy" }), root = point.root }
    end
  end
  local dead = function() return kill ~= nil and kill.sizes ~= nil and not kill.revived end
  local hooks = {
    before = function(sim)
      sim.iam_recorder = function(_, _, list)
        -- the group's first journal (the kill point of later paths counts its changes)
        result.root = result.root or (context.journal_group and context.journal_group.root)
        if point and not kill and point.reached() then reach(sim) end
        if dead() then return end
        for _, c in ipairs(list) do result.checks[#result.checks + 1] = c end
      end
      if name == "promote" then sim.scenario = promoting(sim.scenario) end
      if env.policy then
        sim.scenario.iam = { policy = env.policy }
        sim.iam_denials = result.denials
      end
      if name == "rollback" then break_new_versions(sim) end
    end,
    print = function(text) if env.verbose then io.stderr:write(text, "\n") end end,
    log = function(line) if env.verbose and not dead() then io.stderr:write(line, "\n") end end,
  }
  if KILLED[name] then
    hooks.run = function(chunk, sim)
      local ok, err = pcall(chunk)
      if not kill then
        result.note = "the run ended before its kill point"
        if not ok then error(err, 0) end
        return
      end
      cut_journals(dir, kill.sizes)
      sim.scenario.iam, sim.iam_denials, kill.revived = kill.iam, kill.denials, true
      return journal_command(name, kill)
    end
  end
  local real_getenv = os.getenv
  os.getenv = function(k) -- luacheck: ignore
    if k == "ECSPLAY_RUNS_DIR" then return dir end
    return real_getenv(k)
  end
  local ok, code, message = pcall(rehearse.playbook, opts, conf, hooks)
  os.getenv = real_getenv -- luacheck: ignore
  if not ok then
    code, message = exit.FAILED, errors.describe(code)
  end
  result.code, result.message = code, message
  if name == "promote" then
    result.promotes = promotes_taken(dir)
    if result.promotes == 0 then result.note = "the rollout took no promote" end
  end
  if name == "abort" then
    result.abort_taken = kill ~= nil and abort_taken(kill.root, kill.sent.id)
    if not kill then
      result.note = "the run ended before its kill point"
    elseif not result.abort_taken then
      result.note = "the rollout ended before it took the abort"
    end
  end
  return result
end

--[[ Every path, in NAMES order, each in a folder of runs_dir. The kill point comes
     from the success path's journal; the paths after a failed success path are
     rehearsed only under a policy (their denials are the point then). A path
     ended by SIGINT/SIGTERM ends them all: results.interrupted = its exit code. ]]
function M.run_all(opts, conf, env, runs_dir)
  local results, kill_after = {}, 0
  for _, name in ipairs(M.NAMES) do
    local dir = runs_dir .. "/" .. name
    mkdir(dir)
    local r
    if FROM_KILL_POINT[name] and kill_after == 0 then
      r = { path = name, code = exit.FINISHED, message = "", denials = {}, checks = {},
        skipped = "the success path journals no change" }
    else
      r = rehearse_path(opts, conf, name, env, dir, kill_after)
    end
    results[#results + 1] = r
    -- Ctrl-C (or SIGTERM) ends the rehearsal, not only the path it came in
    for _, c in pairs(exit.BY_SIGNAL) do
      if r.code == c then results.interrupted = c end
    end
    if results.interrupted then break end
    if name == "success" then
      if r.code ~= exit.FINISHED and not env.policy then break end
      kill_after = math.min(2, M.changes(r.root))
    end
    if env.stop_on_denial and #r.denials > 0 then break end
  end
  return results
end

return M
