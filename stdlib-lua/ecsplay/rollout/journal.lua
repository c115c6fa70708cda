--[[
The run journal: one JSON object per line in .ecsplay/runs/<run-id>.jsonl,
fsynced before the change it describes is made, so that after a kill -9
`ecsplay rollback JOURNAL` can restore the stable state and
`ecsplay resume JOURNAL` can finish the rollout.

Lines:
  {"t":"start","run":id,"name":..,"strategy":..,"playbook":..,"args":{..},"config":{..},"time":..}
  {"t":"do","key":"weight:2","desc":..,"undo":{action}|null,"time":..}   before the change
  {"t":"done","key":"weight:2","result":..,"time":..}                    after it
  {"t":"undone","index":n,"time":..}                                      an undo carried out
  {"t":"end","status":"succeeded"|"rolled_back"|"rollback_failed","time":..}

Undo actions are rollout/actions.lua data. The folder is ECSPLAY_RUNS_DIR, or
.ecsplay/runs under the current folder. A journal that cannot be written is a
"journal" error; a path that is not a readable journal, or a run that already
ended, is bad input (exit 2).
]]
local json = require "ecsplay.json"
local core = require "ecsplay.core"
local crypto = require "ecsplay.core.crypto"
local log = require "ecsplay.log"
local errors = require "ecsplay.errors"
local sched = require "ecsplay.sched"
local context = require "ecsplay.context"
local ecsplay = require "ecsplay"
local aws = require "ecsplay.aws"
local actions = require "ecsplay.rollout.actions"

local M = {}

local function journal_error(message)
  return errors.new("journal", { message = message })
end

local function runs_dir()
  return os.getenv("ECSPLAY_RUNS_DIR") or ".ecsplay/runs"
end

local function ensure_dir(dir)
  local path = ""
  for part in dir:gmatch("[^/]+") do
    path = (path == "" and (dir:sub(1, 1) == "/" and "/" or "") or (path .. "/")) .. part
    local ok, err = core.mkdir(path)
    if not ok then error(journal_error(err), 0) end
  end
end

local Journal = {}
Journal.__index = Journal

function M.new_id(strategy, now)
  local hex = crypto.hex(crypto.random_bytes(3))
  return os.date("!%Y%m%dT%H%M%SZ", math.floor(now)) .. "-" .. strategy .. "-" .. hex
end

--[[ Opens a journal: a new one, or (resume) the existing file. ]]
function M.open(meta, path)
  local j = setmetatable({}, Journal)
  if path then
    j.path = path
    j:repair_tail()
    return j
  end
  local dir = runs_dir()
  ensure_dir(dir)
  j.path = dir .. "/" .. meta.run .. ".jsonl"
  meta.t = "start"
  j:write(meta)
  log.event("info", "journal", "journal: " .. j.path)
  return j
end

--[[ A crash mid-write leaves a torn last line with no newline; the change it
     announced was never made (lines are fsynced before their change). Before
     appending to such a journal, drop the fragment (rewrite, fsync, rename),
     or the next line would be glued to it and the journal would no longer
     read back. ]]
function Journal:repair_tail()
  local f = io.open(self.path, "rb")
  if not f then return end
  local text = f:read("a")
  f:close()
  if text == "" or text:sub(-1) == "\n" then return end
  local keep = text:match("^(.*\n)") or ""
  local tmp = self.path .. ".repair"
  os.remove(tmp)
  local ok, err = core.fsync_append(tmp, keep)
  if ok then ok, err = os.rename(tmp, self.path) end
  if not ok then
    os.remove(tmp)
    error(journal_error("cannot repair the torn last line of " .. self.path .. ": " .. tostring(err)), 0)
  end
  log.event("warn", "journal", string.format("%s: dropped a torn last line (%d bytes) left by a crash",
    self.path, #text - #keep))
end

function Journal:write(obj)
  obj.time = obj.time or sched.now()
  local line, err = json.encode(obj)
  if not line then error(journal_error("cannot encode journal line: " .. err), 0) end
  local ok, werr = core.fsync_append(self.path, line .. "\n")
  if not ok then error(journal_error(werr), 0) end
end

--[[ Reads a journal; returns the parsed state:
     { start=, done={[key]=result}, undo={ {index=, key=, action=}... not yet undone },
       ended=status|nil } ]]
function M.read(path)
  local f, err = io.open(path, "r")
  if not f then
    error(errors.bad_input("cannot read journal " .. path .. ": " .. tostring(err)), 0)
  end
  local state = { done = {}, undo = {}, path = path }
  local n = 0
  local undos = {}
  for line in f:lines() do
    n = n + 1
    if line ~= "" then
      local obj, jerr = json.decode(line)
      if not obj then
        -- a torn last line from a crash mid-write is expected; anything else is not
        local rest = f:read("a")
        if rest and rest:match("%S") then
          f:close()
          error(errors.bad_input(string.format("%s:%d: not a journal line (%s)", path, n, jerr)), 0)
        end
        break
      end
      if obj.t == "start" then state.start = obj
      elseif obj.t == "do" then
        if obj.undo and obj.undo ~= json.null then
          undos[#undos + 1] = { index = #undos + 1, key = obj.key, action = obj.undo, desc = obj.desc }
        end
      elseif obj.t == "done" then state.done[obj.key] = obj.result == json.null and true or obj.result
      elseif obj.t == "undone" then
        for _, u in ipairs(undos) do if u.index == obj.index then u.undone = true end end
      elseif obj.t == "end" then state.ended = obj.status
      end
    end
  end
  f:close()
  if not state.start then
    error(errors.bad_input(path .. ": not an ecsplay run journal (no start line)"), 0)
  end
  for _, u in ipairs(undos) do if not u.undone then state.undo[#state.undo + 1] = u end end
  state.all_undo = undos
  return state
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

--[[ `ecsplay rollback JOURNAL`: carries out every undo not yet done, newest
     first (actions.undo: the same loop as a rollout's own rollback), and
     records each. Raises a "rollback" error (exit 3) when one fails; a
     second `ecsplay rollback` retries what is left. ]]
function M.rollback(path, opts)
  local state = M.read(path)
  configure_like(state.start, opts)
  local j = M.open(nil, path)
  if #state.undo == 0 then
    log.event("info", "rollback", "nothing to roll back in " .. path
      .. (state.ended and (" (run ended: " .. state.ended .. ")") or ""))
    return true
  end
  log.event("warn", "rollback", string.format("rolling back run %s from its journal: %d step(s)",
    state.start.run, #state.undo))
  local seen = {}
  local failures, left = actions.undo(state.undo, {
    -- the same undo twice (a resumed run may journal it again) runs once
    skip = function(u)
      local sig = json.encode(u.action)
      u.repeated = seen[sig]
      seen[sig] = true
      return u.repeated
    end,
    on_done = function(u)
      j:write { t = "undone", index = u.index }
      if not u.repeated then log.event("info", "undo", "undone: " .. actions.describe(u.action)) end
    end,
    on_failed = function(_, _, text) log.event("error", "undo", "undo failed: " .. text) end,
  })
  if #failures > 0 then
    j:write { t = "end", status = "rollback_failed" }
    error(errors.new("rollback", { message = "rollback of " .. path .. " failed", rollback_failed = true,
      left = actions.left_text(failures, left) }), 0)
  end
  j:write { t = "end", status = "rolled_back" }
  log.event("info", "rollback", "rolled back: stable state restored")
  return true
end

--[[ `ecsplay resume JOURNAL`: runs the journaled playbook again with the same
     arguments; its strategy skips every step the journal shows done. ]]
function M.resume(path, opts)
  local state = M.read(path)
  if state.ended then
    error(errors.bad_input(path .. ": the run already ended ("
      .. state.ended .. "); nothing to resume"), 0)
  end
  local start = state.start
  if not start.playbook then
    error(errors.bad_input(path .. ": the journal does not name its playbook"), 0)
  end
  configure_like(start, opts)
  for k, v in pairs(start.args or {}) do
    if ecsplay.args[k] == nil then ecsplay.args[k] = v end
  end
  context.resume = { [start.name or start.strategy] = state }
  log.event("info", "resume", string.format("resuming run %s (%s) from %s", start.run,
    start.playbook, path))
  local chunk, err = loadfile(start.playbook)
  if not chunk then error(errors.bad_input(err), 0) end
  return chunk()
end

return M
