--[[
The run journal: one JSON object per line in .ecsplay/runs/<run-id>.jsonl,
fsynced before the change it describes is made, so that after a kill -9
`ecsplay rollback JOURNAL` can restore the stable state and
`ecsplay resume JOURNAL` can finish the rollout.

Lines:
  {"t":"start","run":id,"group":id,"name":..,"strategy":..,"playbook":..,"args":{..},"config":{..},
   "session":{"region":..,"profile":..,"role_arn":..,"external_id":..,"endpoint_url":..}|absent,"time":..}
                                                                           session: the rollout's aws.session
  {"t":"step","step":n,"weight":..,"message":..,"time":..}               a step began (report; not fsynced)
  {"t":"gate","step":n,"gates":[..],"time":..}                            a measurement round (not fsynced)
  {"t":"do","key":"weight:2","desc":..,"undo":{action}|null,"time":..}   before the change
  {"t":"done","key":"weight:2","result":..,"time":..}                    after it
  {"t":"undone","index":n,"time":..}                                      an undo carried out
  {"t":"end","status":"succeeded"|"rolled_back"|"rollback_failed","time":..}
                                                                           rolled_back of a task cancelled (a
                                                                           fleet stopping it): "stopped":why
  {"t":"revert","reason":..,"time":..}                                    after an end "succeeded": it is
                                                                           being put back (Run:revert, a
                                                                           fleet's undo=);
                                                                           unfinished until its next end line
  {"t":"rollout","name":..,"run":id,"journal":file,"time":..}            (group's first journal)
                                                                           another rollout of the run
  {"t":"playbook_end","exit":code,"time":..}                              (group's first journal)
                                                                           the playbook run ended (cli/run.lua):
                                                                           without it, resume of a run whose
                                                                           journals all ended runs it again

Undo actions are rollout/actions.lua data. The folder is ECSPLAY_RUNS_DIR, or
.ecsplay/runs under the current folder. The file itself (writes that never
stop a rollback, fallback copies, a deleted journal recreated, reading torn
or damaged journals, the rollouts of one playbook run) is
rollout/journal_file.lua. A path that is not a readable journal, or a run
that already ended, is bad input (exit 2); a damaged journal is rolled back
as far as it can be read, and the rollback then says what may be left (exit 3).
]]
local json = require "ecsplay.json"
local log = require "ecsplay.log"
local errors = require "ecsplay.errors"
local context = require "ecsplay.context"
local tables = require "ecsplay.util.tables"
local ecsplay = require "ecsplay"
local aws = require "ecsplay.aws"
local actions = require "ecsplay.rollout.actions"
local journal_file = require "ecsplay.rollout.journal_file"

local M = {}

M.new_id = journal_file.new_id
M.read = journal_file.read
M.runs_dir = journal_file.runs_dir

--[[ Opens a journal: a new one for meta (the start line's fields), or with
     path the existing file (a resumed run, `ecsplay rollback`). ]]
function M.open(meta, path, dir)
  if path then return journal_file.attach(path) end
  return journal_file.open(meta, dir)
end

-- Points the AWS client at the same place the journaled run used: each of
-- endpoint_url, region and profile from the command line if given, else from
-- the journal's start line; credentials only ever come from this process.
local function configure_like(start, opts)
  opts = opts or {}
  if opts.simulate then return end
  local cfg = type(start.config) == "table" and start.config or {}
  local function pick(k)
    local v = opts[k]
    if v == nil or v == "" then v = cfg[k] end
    if v == json.null then v = nil end
    return v
  end
  local endpoint_url, region, profile = pick("endpoint_url"), pick("region"), pick("profile")
  if endpoint_url or region or profile then
    aws.configure { endpoint_url = endpoint_url, region = region,
      profile = profile, access_key = opts.access_key_id, secret_key = opts.secret_access_key,
      session_token = opts.session_token }
  end
end

--[[ The session a journal's start line recorded (Run:open_journal: Session:options(), never
     credentials), built again with aws.session; nil when the rollout ran in none. Raises
     bad input for a recorded session that aws.session refuses. ]]
function M.session_of(start)
  local recorded = type(start) == "table" and start.session
  if type(recorded) ~= "table" then return nil end
  local o = {}
  for k, v in pairs(recorded) do
    -- JSON numbers read back as floats; duration_seconds must be an integer again
    if v ~= json.null then o[k] = type(v) == "number" and math.tointeger(v) or v end
  end
  return aws.session(o)
end

-- The other rollouts of the same playbook run whose journals have not ended.
local function unfinished_siblings(state)
  local ok, members = pcall(journal_file.members, state)
  if not ok then return {} end
  local out = {}
  for _, m in ipairs(members) do
    if m ~= state and not m.ended and not m.empty then out[#out + 1] = m.given or m.path end
  end
  return out
end

-- " (the reason its put-back gave)" for a journal with a "revert" line, or "".
local reverting_why = journal_file.reverting_why

-- A journal that does not read back whole: what its rollback cannot vouch for.
local function damage_text(path, state)
  return string.format("%s is damaged (%s): the changes recorded in what was lost may be left; "
    .. "check them by hand", path, table.concat(state.damaged, "; "))
end

--[[ `ecsplay rollback JOURNAL`: carries out every undo not yet done, newest
     first (actions.undo: the same loop as a rollout's own rollback), and
     records each (a journal that cannot be written does not stop it: the
     records go to a fallback copy, see rollout/journal_file.lua, and the
     last line says where). Raises a "rollback" error (exit 3) when one
     fails, or when the journal is damaged (what it could read is rolled
     back, the rest is named); a second `ecsplay rollback` retries what is
     left. An undo that refuses (a finished deployment that cannot be
     reverted) changes nothing and ends nothing: bad input (exit 2). ]]
function M.rollback(path, opts)
  local state = M.read(path)
  if state.empty then
    log.event("info", "rollback", "nothing to roll back in " .. path
      .. " (it is empty: the run was stopped before it recorded anything)")
    local root = journal_file.linked_from(state.given or path)
    if root and not root.ended then
      log.event("warn", "rollback", "another rollout of the same run has its own journal: ecsplay rollback "
        .. root.given)
    end
    return true
  end
  configure_like(state.start or {}, opts)
  local j = M.open(nil, state.path)
  local damaged = #state.damaged > 0 and damage_text(path, state) or nil
  if damaged then log.event("error", "journal", damaged) end
  for _, other in ipairs(unfinished_siblings(state)) do
    log.event("warn", "rollback", "another rollout of the same run has its own journal: ecsplay rollback " .. other)
  end
  -- a run killed before its end: the rollouts it had promoted were never put back by it
  for _, note in ipairs(journal_file.promoted_notes(state)) do log.event("warn", "rollback", note) end
  if #state.undo == 0 then
    if damaged then
      error(errors.new("rollback", { code = "JournalDamaged", rollback_failed = true, left = damaged,
        message = "rollback of " .. path .. " may not be complete: the journal is damaged" }), 0)
    end
    if state.reverting and not damaged then
      -- killed after its put-back's last undo, before its end line: the put-back is complete
      j:write { t = "end", status = "rolled_back" }
      log.event("info", "rollback", "nothing left to undo in " .. path .. ": it had been put back"
        .. reverting_why(state) .. "; its journal now ends rolled_back")
      return true
    end
    log.event("info", "rollback", "nothing to roll back in " .. path
      .. (state.ended and (" (run ended: " .. state.ended .. ")") or ""))
    return true
  end
  log.event("warn", "rollback", string.format("rolling back run %s from its journal: %d step(s)",
    state.start and state.start.run or "(no start line)", #state.undo))
  if state.ended == "succeeded" then
    -- a finished run: the same plan is a revert to the previous version, capacity first
    log.event("warn", "rollback", "the run had succeeded: reverting it to the previous version")
  elseif state.reverting then
    log.event("warn", "rollback", "the run had succeeded and was being put back when it was stopped"
      .. reverting_why(state) .. ": finishing the put-back")
  end
  log.event("info", "rollback", "rollback plan: " .. actions.plan(state.undo))
  -- the rollout's own Region, account and endpoint (its start line's session), where its changes are
  local session = M.session_of(state.start)
  if session then log.event("info", "rollback", "in the rollout's session: " .. session:describe()) end
  local seen = {}
  local undo_opts = {
    -- the same undo twice (a resumed run may journal it again) runs once; compared as data
    skip = function(u)
      for _, a in ipairs(seen) do
        if tables.equal(a, u.action) then u.repeated = true return true end
      end
      seen[#seen + 1] = u.action
      return false
    end,
    on_done = function(u)
      j:write { t = "undone", index = u.index }
      if not u.repeated then log.event("info", "undo", "undone: " .. actions.describe(u.action)) end
    end,
    on_failed = function(_, _, text) log.event("error", "undo", "undo failed: " .. text) end,
  }
  local failures, left
  if session then
    failures, left = session:run(actions.undo, state.undo, undo_opts)
  else
    failures, left = actions.undo(state.undo, undo_opts)
  end
  if #failures == 1 and #left <= 1 and errors.is(failures[1].error, "bad_input") then
    -- a refusal: nothing was changed and the run's status stays what it was
    error(failures[1].error, 0)
  end
  local problem = function() return j.problem and ("; " .. j.problem) or "" end
  if #failures > 0 or damaged then
    j:write { t = "end", status = "rollback_failed" }
    local left_text = #failures > 0 and actions.left_text(failures, left) or nil
    if damaged then left_text = left_text and (left_text .. "; " .. damaged) or damaged end
    error(errors.new("rollback", { rollback_failed = true, left = left_text,
      code = #failures == 0 and "JournalDamaged" or nil,
      message = "rollback of " .. path .. " did not complete; " .. actions.continue_text(path) .. problem() }), 0)
  end
  j:write { t = "end", status = "rolled_back" }
  log.event("info", "rollback", "rolled back: stable state restored")
  if j.problem then
    log.event("warn", "rollback", "the rollback completed, but " .. j.problem)
  end
  return true
end

--[[ While `ecsplay resume` runs a playbook again: the plan (the "plan"
     step's result, journaled before the rollout's first change) of its
     rollout named `name` that has not started yet in this process, or nil
     (not resuming, no such rollout, or it journaled no plan). A playbook
     whose choice depends on the world before its rollout (playbooks/rollback.lua:
     "the revision before the one running") makes the same choice again with
     it, although the world has moved since. ]]
function M.resumed_plan(name)
  local queue = context.resume and context.resume[name]
  local state = queue and (queue.start and queue or queue[1])
  local plan = state and state.done and state.done.plan
  return type(plan) == "table" and plan or nil
end

-- Why a journal cannot be resumed (nil: it can).
local function unresumable(path, state)
  if state.empty then
    return path .. " is empty: the run was stopped before it recorded anything; run the playbook again"
  end
  if #state.damaged > 0 then
    return string.format("%s is damaged (%s): a run cannot be resumed from it; `ecsplay rollback %s` "
      .. "undoes what it can read", path, table.concat(state.damaged, "; "), path)
  end
  if not state.start.playbook then return path .. ": the journal does not name its playbook" end
end

--[[ `ecsplay resume JOURNAL`: runs the journaled playbook again with the same
     arguments; each of its rollouts finds its own journal state by name
     (context.resume[name], a list in start order: the same name twice is
     two rollouts), skips every step it shows done and goes on; a rollout
     whose journal ended ends the same way at once (rollout/run.lua). The
     rollouts of one playbook run journal to files of their own, found
     through the group's first journal (journal_file.members), and a rollout
     that had not started yet starts with a journal in the same group (one
     whose journal was left empty starts over in that file). An empty
     journal that the group's first journal names resumes that run. When
     every journal has ended but the group's first journal has no
     "playbook_end" line (the runner writes it when the playbook run ends,
     cli/run.lua), the run was stopped between two rollouts: the playbook
     runs again, the ended rollouts end as journaled and the later ones
     start. Bad input (exit 2) when every journal of the run has ended and
     so has its playbook, or the journal is damaged, or empty and no journal
     of a run names it. ]]
function M.resume(path, opts)
  local state = M.read(path)
  if state.empty then
    -- one rollout of a playbook run stopped before its start line: the run is found through the
    -- group's first journal, which names this file (written before it)
    local root = journal_file.linked_from(state.given or path)
    if root then
      log.event("info", "resume", string.format("%s is empty (its rollout was stopped before its first line); "
        .. "resuming the run it belongs to, %s", path, root.given))
      state, path = root, root.given
    end
  end
  local why = unresumable(path, state)
  if why then error(errors.bad_input(why), 0) end
  local members, root = journal_file.members(state)
  local open = {}
  for _, m in ipairs(members) do
    if m ~= state and not m.link then
      local other = unresumable(m.given or m.path, m)
      if other then error(errors.bad_input(other), 0) end
    end
    if not m.ended then open[#open + 1] = m end
  end
  local rerun = false
  if #open == 0 then
    -- every rollout's journal ended; the playbook run had ended too unless the group's first
    -- journal lacks its playbook_end line (killed between two rollouts: the later ones never began)
    if not root or root.playbook_ended then
      local playbook = root and root.playbook_ended and ", and so has its playbook" or ""
      error(errors.bad_input(path .. ": the run already ended (" .. state.ended .. "); nothing to resume"
        .. " (every journal of the run has ended" .. playbook .. ")"), 0)
    end
    rerun = true
  end
  local start = state.start
  configure_like(start, opts)
  for k, v in pairs(start.args or {}) do
    if ecsplay.args[k] == nil then ecsplay.args[k] = v end
  end
  context.resume = {}
  for _, m in ipairs(members) do
    -- an empty journal (m.link): that rollout starts over, in the same file (rollout/run.lua)
    local name = m.link and m.link.name or (m.start.name or m.start.strategy)
    local queue = context.resume[name] or {}
    queue[#queue + 1] = m
    context.resume[name] = queue
  end
  if root then
    context.journal_group = { id = start.group, dir = journal_file.dirname(root.given or root.path),
      root = root.given or root.path, fixed = true }
  end
  log.event("info", "resume", string.format("resuming run %s (%s) from %s%s", start.run,
    start.playbook, path, #members > 1 and string.format(" (%d rollouts, %d unfinished)", #members, #open) or ""))
  if rerun then
    log.event("info", "resume", "every rollout's journal has ended but the playbook run had not (stopped "
      .. "between two rollouts): running it again; the rollouts that ended end as journaled")
  end
  local chunk, err = loadfile(start.playbook)
  if not chunk then error(errors.bad_input(err), 0) end
  local reverting = {}
  for _, m in ipairs(members) do
    if m.reverting and not m.ended then reverting[#reverting + 1] = m end
  end
  -- opts.capture (cli/exit.lua): notes where in the playbook an error was raised, which the
  -- run's last line names although the error is raised again from here
  local ran = table.pack(xpcall(chunk, opts and opts.capture or function(e) return e end))
  if not ran[1] and opts and opts.capture then ran[2] = ran[2].err end
  -- a rollout of the killed run that the playbook did not reach this time (a fleet whose
  -- budget a resumed member spent, another branch taken) still has changes journaled:
  -- roll it back from its journal, so every journal of the run ends; and one that was being
  -- put back and that the playbook did not put back this time is put back (its intent was
  -- journaled)
  local closed, close_err = pcall(M.close_unreached, opts)
  local finished, finish_err = pcall(M.finish_put_backs, reverting, opts)
  if not ran[1] then error(ran[2], 0) end
  if not closed then error(close_err, 0) end
  if not finished then error(finish_err, 0) end
  return table.unpack(ran, 2, ran.n)
end

-- Rolls back each journal of `list` ({ path =, why = the warning said first }) as `ecsplay
-- rollback` would. Raises the first rollback error once every one was tried.
local function rollback_each(list, opts)
  local first_err
  for _, j in ipairs(list) do
    log.event("warn", "resume", j.why)
    local ok, e = pcall(M.rollback, j.path, opts)
    if not ok and not first_err then first_err = e end
  end
  if first_err then error(first_err, 0) end
end

-- The journals of the resumed run that were being put back (a "revert" line, no end since)
-- and still are once the resumed playbook ended: each put-back is finished.
function M.finish_put_backs(list, opts)
  local todo = {}
  for _, m in ipairs(list) do
    local path = m.given or m.path
    local ok_read, now = pcall(M.read, path)
    if ok_read and not now.ended then
      todo[#todo + 1] = { path = path, why = string.format("%s was being put back when the run was stopped "
        .. "and the resumed playbook did not put it back: finishing the put-back from its journal %s",
        tostring(m.start and m.start.name), tostring(path)) }
    end
  end
  rollback_each(todo, opts)
end

-- The journals `ecsplay resume` queued (context.resume) that no rollout of the resumed
-- playbook took and that have not ended: each is rolled back.
function M.close_unreached(opts)
  local todo = {}
  for name, queue in pairs(context.resume or {}) do
    local list = queue.start and { queue } or queue
    for _, m in ipairs(list) do
      if not m.ended and not m.link and m.start then
        local path = m.given or m.path
        todo[#todo + 1] = { path = path, why = string.format("rollout %s of the killed run was not reached "
          .. "by the resumed playbook: rolling it back from its journal %s", tostring(name), tostring(path)) }
      end
    end
  end
  rollback_each(todo, opts)
end

return M
