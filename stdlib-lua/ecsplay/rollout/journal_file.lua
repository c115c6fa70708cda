--[[
The run journal's file: one JSON object per line in <runs>/<run-id>.jsonl,
fsynced before the change it describes is made (format: rollout/journal.lua).

  journal_file.open(meta, dir)   a new journal: writes its start line → Journal
  journal_file.attach(path)      an existing journal, to append to → Journal
  Journal:write(obj [, {sync=false}])  → true | false, problem (never raises);
                                   sync=false: not fsynced (lines that record no change)
  journal_file.read(path)        → the parsed state (raises bad_input when
                                   the path is no journal at all)
  journal_file.members(state)    the journals of every rollout of the same
                                   playbook run (resume)
  journal_file.linked_from(path) the group's first journal that names path
                                   (an empty journal's run)
  journal_file.end_playbook(group, exit_code)  the playbook run ended (cli/run.lua)
  journal_file.promoted_notes(state [, itself])  for a run killed before its end: the lines
                                   that name its rollouts left promoted (rollback)
  journal_file.unfinished_run(state [, memo])  that run, with its rollouts left promoted;
                                   run_pointer(run, state), run_block(run): `ecsplay status`
                                   names them once per run, each journal points there

A journal must never be what stops a rollback, so a write does not raise:
  * the file was deleted (or its folder) since the last line: it is
    recreated with every line written so far, start line first, and a
    warning says so;
  * the file cannot be written (disk full, read-only, gone for good): the
    journal goes on in a fallback copy (same name, in the runs folder's
    parent, else $TMPDIR or /tmp) that starts with every line written so
    far, so it is a complete journal itself; when no copy can be written
    either, each line goes to standard error. Journal.problem says which,
    for the run's last message; read() prefers a fallback copy that holds
    more of the same run than the journal itself.
The caller decides what a failed write means (run.lua: a step does not make
its change; a rollback goes on).

Several rollouts in one playbook run each journal to their own file; the
first one's run id is the group of all of them (start line `group`), and it
lists the others as they start ({"t":"rollout","name":..,"journal":file},
written before their own start line), so `ecsplay resume` of any of them
finds them all. When the playbook run itself ends, the runner writes
{"t":"playbook_end"} there too: a run whose journals all ended without it
was stopped between two rollouts, and is resumed.
]]
local json = require "ecsplay.json"
local core = require "ecsplay.core"
local crypto = require "ecsplay.core.crypto"
local log = require "ecsplay.log"
local errors = require "ecsplay.errors"
local sched = require "ecsplay.sched"

local M = {}

local ENOENT, EISDIR = 2, 21

-- The line types this version writes; a line of another type is skipped.
local KNOWN = { start = true, ["do"] = true, done = true, undone = true, ["end"] = true, rollout = true, step = true,
  gate = true, control = true, playbook_end = true, revert = true }

function M.runs_dir()
  local dir = os.getenv("ECSPLAY_RUNS_DIR")
  if not dir or dir == "" then dir = ".ecsplay/runs" end
  return dir
end

local function dirname(path)
  local d = path:match("^(.*)/[^/]*$")
  if d == nil then return "." end
  if d == "" then return "/" end
  return d
end
M.dirname = dirname

local function basename(path) return (path:match("([^/]*)$")) end
M.basename = basename

local function join(dir, name)
  if dir:sub(-1) == "/" then return dir .. name end
  return dir .. "/" .. name
end

-- "cannot write x: No space left on device" → "No space left on device"
local function reason(err)
  local text = tostring(err)
  return text:match(": ([^:]+)$") or text
end

local function ensure_dir(dir)
  local path = ""
  for part in dir:gmatch("[^/]+") do
    path = (path == "" and (dir:sub(1, 1) == "/" and "/" or "") or (path .. "/")) .. part
    local ok, err = core.mkdir(path)
    if not ok then return nil, err end
  end
  return true
end

-- Whether path names nothing at all (not: a file we may not read).
local function missing(path)
  local f, _, code = io.open(path, "rb")
  if f then f:close() return false end
  return code == ENOENT
end

function M.new_id(strategy, now)
  local hex = crypto.hex(crypto.random_bytes(3))
  return os.date("!%Y%m%dT%H%M%SZ", math.floor(now)) .. "-" .. strategy .. "-" .. hex
end

-- Where a journal's records go when its own file cannot be written.
function M.fallback_dirs(path)
  local dir = dirname(path)
  local out, seen = {}, { [dir] = true }
  local tmp = os.getenv("TMPDIR")
  for _, d in ipairs { dirname(dir), (tmp and tmp ~= "") and tmp or nil, "/tmp" } do
    if d and not seen[d] then seen[d] = true out[#out + 1] = d end
  end
  return out
end

local Journal = {}
Journal.__index = Journal

local function all_text(lines)
  if #lines == 0 then return "" end
  return table.concat(lines, "\n") .. "\n"
end

-- Writes `text` as the whole of `path` (temporary file, fsync, rename).
local function replace_file(path, text)
  local tmp = path .. ".tmp"
  os.remove(tmp)
  local ok, err = core.fsync_append(tmp, text)
  if ok then ok, err = os.rename(tmp, path) end
  if not ok then os.remove(tmp) end
  return ok, err
end

-- The journal's own file could not be written: from now on its records go to
-- a fallback copy (every line so far, then the rest), else to standard error.
function Journal:fall_back(err)
  self.failed = true
  local why = reason(err)
  for _, dir in ipairs(M.fallback_dirs(self.path)) do
    local copy = join(dir, basename(self.path))
    local ok = ensure_dir(dir) and replace_file(copy, all_text(self.lines))
    if ok then
      self.fallback = copy
      self.problem = string.format("the journal %s could not be written (%s); its records continue in %s",
        self.path, why, copy)
      log.event("error", "journal", self.problem)
      return
    end
  end
  self.fallback = nil
  self.problem = string.format("the journal %s could not be written (%s), nor a copy in %s; "
    .. "its records went to standard error", self.path, why, table.concat(M.fallback_dirs(self.path), ", "))
  log.event("error", "journal", self.problem)
  for _, line in ipairs(self.lines) do log.event("error", "journal", "journal line: " .. line) end
end

function Journal:append_fallback(line)
  if self.fallback then
    local ok, err = core.fsync_append(self.fallback, line .. "\n")
    if ok then return end
    self.problem = self.problem .. string.format("; the copy %s failed too (%s): the rest went to standard error",
      self.fallback, reason(err))
    log.event("error", "journal", "cannot write the journal copy " .. self.fallback .. ": " .. reason(err))
    self.fallback = nil
  end
  log.event("error", "journal", "journal line: " .. line)
end

--[[ Appends without fsync: for lines that record no change (a measurement round, a step
     marker). Order is kept: the file is opened for appending, and the next fsynced line
     flushes these too. → true | nil, message (as core.fsync_append). ]]
local function plain_append(path, data)
  local f, err = io.open(path, "ab")
  if not f then return nil, "cannot open " .. tostring(err) end
  local ok, werr = f:write(data)
  local closed, cerr = f:close()
  if not ok or not closed then return nil, "cannot write " .. path .. ": " .. reason(werr or cerr) end
  return true
end

-- Appends to the journal's own file; a file deleted since the last line is
-- recreated with every line so far (the start line first).
function Journal:append_own(line, sync)
  if self.written and missing(self.path) then
    local ok, err = ensure_dir(dirname(self.path))
    if ok then ok, err = core.fsync_append(self.path, all_text(self.lines)) end
    if ok then
      log.event("warn", "journal", string.format("the journal %s was deleted during the run: recreated it "
        .. "with its %d line(s) so far, start line first", self.path, #self.lines))
    end
    return ok, err
  end
  return (sync and core.fsync_append or plain_append)(self.path, line .. "\n")
end

--[[ Appends obj as one line; true once it is on disk at the journal's own
     path (with opts.sync == false: written, not fsynced). false, problem when
     it went elsewhere (see the file comment). ]]
function Journal:write(obj, opts)
  local sync = not (opts and opts.sync == false)
  obj.time = obj.time or sched.now()
  local line, err = json.encode(obj)
  if not line then
    error(errors.new("internal", { message = "cannot encode journal line: " .. tostring(err) }), 0)
  end
  self.lines[#self.lines + 1] = line
  if not self.failed then
    local ok, werr = self:append_own(line, sync)
    if ok then
      self.written = true
      return true
    end
    self:fall_back(werr)
    return false, self.problem
  end
  self:append_fallback(line)
  return false, self.problem
end

-- Where records now go (the fallback copy once the journal itself failed).
function Journal:current_path()
  return self.fallback or self.path
end

--[[ A new journal in `dir` (default: the runs folder) for meta (the start
     line's fields: run=, name=, strategy=, ...). When the folder cannot be
     written, nothing has changed yet: the journal simply lives in the first
     fallback folder that works, announced as such; when none does, bad
     input (exit 2). ]]
function M.open(meta, dir)
  dir = dir or M.runs_dir()
  local j = setmetatable({ path = join(dir, meta.run .. ".jsonl"), lines = {} }, Journal)
  ensure_dir(dir)
  -- the file of a rollout stopped before its start line was on disk (resumed: it starts over
  -- in the same file, see M.members) may hold a torn start line: nothing to keep
  local old = io.open(j.path, "rb")
  if old then
    local text = old:read("a") or ""
    old:close()
    if not text:find("\n", 1, true) then os.remove(j.path) end
  end
  meta.t = "start"
  j:write(meta)
  if j.failed then
    if not j.fallback then
      error(errors.new("bad_input", { code = "JournalUnwritable", message = string.format(
        "cannot write a run journal in %s or %s (%s); nothing was changed: set ECSPLAY_RUNS_DIR to a "
        .. "writable folder", dir, table.concat(M.fallback_dirs(j.path), ", "),
        j.problem:match("%(([^)]*)%)") or "") }), 0)
    end
    log.event("warn", "journal", string.format("cannot write the journal in %s: using %s instead", dir, j.fallback))
    j.path, j.fallback, j.failed, j.problem, j.written = j.fallback, nil, false, nil, true
  end
  log.event("info", "journal", "journal: " .. j.path)
  return j
end

--[[ An existing journal, to append to (a resumed run, `ecsplay rollback`). A
     crash mid-write leaves a torn last line with no newline; the change it
     announced was never made (lines are fsynced before their change), so it
     is dropped (rewrite, fsync, rename) before anything is appended, or the
     next line would be glued to it. A journal that cannot be rewritten or
     appended to goes on in a fallback copy. ]]
function M.attach(path)
  local j = setmetatable({ path = path, lines = {}, written = true }, Journal)
  local f = io.open(path, "rb")
  local text = f and f:read("a") or ""
  if f then f:close() end
  for line in text:gmatch("([^\n]*)\n") do
    if line ~= "" then j.lines[#j.lines + 1] = line end
  end
  if text ~= "" and text:sub(-1) ~= "\n" then
    local keep = text:match("^(.*\n)") or ""
    local ok, err = replace_file(path, keep)
    if ok then
      log.event("warn", "journal", string.format("%s: dropped a torn last line (%d bytes) left by a crash",
        path, #text - #keep))
    else
      j:fall_back(err)
    end
  end
  return j
end

------------------------------------------------------------------ reading

local function bad(message, code)
  return errors.new("bad_input", { code = code or "BadJournal", message = message })
end

local function slurp(path)
  local f, err, code = io.open(path, "rb")
  if not f then
    if code == ENOENT then err = "no such file" end
    error(bad("cannot read journal " .. path .. ": " .. reason(err), "JournalNotFound"), 0)
  end
  local text, rerr, rcode = f:read("a")
  f:close()
  if not text then
    if rcode == EISDIR then
      error(bad(path .. " is a folder, not a run journal: give one of the .jsonl files in it", "JournalIsFolder"), 0)
    end
    error(bad("cannot read journal " .. path .. ": " .. tostring(rerr)), 0)
  end
  return text
end

-- Applies one decoded line to state.
local function apply_line(state, obj, undos)
  local t = obj.t
  if t == "start" then
    if not state.start then state.start = obj end
  elseif t == "do" then
    state.started[obj.key] = true
    if type(obj.time) == "number" then state.intent_time[obj.key] = obj.time end
    if obj.undo and obj.undo ~= json.null then
      undos[#undos + 1] = { index = #undos + 1, key = obj.key, action = obj.undo, desc = obj.desc }
    end
  elseif t == "done" then
    state.done[obj.key] = obj.result == json.null and true or obj.result
  elseif t == "undone" then
    for _, u in ipairs(undos) do if u.index == obj.index then u.undone = true end end
  elseif t == "end" then
    state.ended = obj.status
    state.stopped = type(obj.stopped) == "string" and obj.stopped or nil
    -- "succeeded" after a "revert" line: the put-back was refused, nothing changed
    if obj.status == "succeeded" then state.succeeded, state.reverting = obj, nil end
  elseif t == "revert" then
    -- a rollout that succeeded is being put back: unfinished again until its next end line
    state.reverting, state.ended = obj, nil
  elseif t == "rollout" then
    state.rollouts[#state.rollouts + 1] = obj
  elseif t == "playbook_end" then
    state.playbook_ended = obj
  end
end

--[[ Parses a journal's text. state:
       start, done = {[key] = result}, undo (not yet undone, oldest first),
       all_undo, ended = status | nil (a "revert" line after the end: nil again),
       succeeded = its "end" line "succeeded" | nil (also when a revert followed),
       reverting = the "revert" line | nil (it had succeeded and was being put back),
       stopped = why its task was cancelled (a fleet stopping it), from its last end line | nil,
       intent = {[key] = true} (journaled "do" with no "done": the change may or may not
       have happened),
       intent_time = {[key] = time of its latest "do" line},
       rollouts (the group's other journals, in the group's first journal),
       playbook_ended = the "playbook_end" line (the group's first journal:
       the playbook run itself ended, see M.end_playbook) | nil,
       damaged = { "line N: why", ... } (lines that do not read back, a
       missing start line), torn = bytes of a torn last line, empty. ]]
function M.parse(text, path)
  local state = { path = path, done = {}, started = {}, intent = {}, intent_time = {}, undo = {}, rollouts = {},
    damaged = {} }
  local undos, n, recognised, complete = {}, 0, 0, 0
  local last_nl = text:match("^.*()\n") or 0
  if last_nl < #text then state.torn = #text - last_nl end
  for line in text:sub(1, last_nl):gmatch("([^\n]*)\n") do
    n = n + 1
    if line ~= "" then
      complete = complete + 1
      local obj, jerr = json.decode(line)
      if type(obj) ~= "table" or type(obj.t) ~= "string" then
        state.damaged[#state.damaged + 1] = string.format("line %d does not read back (%s)", n,
          jerr and errors.one_line(jerr, 80) or "not a journal line")
      elseif KNOWN[obj.t] then
        recognised = recognised + 1
        apply_line(state, obj, undos)
      end
    end
  end
  state.empty = complete == 0
  if not state.start and not state.empty then
    if recognised == 0 then
      error(bad(path .. ": not an ecsplay run journal (no start line)", "NotAJournal"), 0)
    end
    table.insert(state.damaged, 1, "it has no start line (its first lines were lost)")
  end
  for k in pairs(state.started) do
    if state.done[k] == nil then state.intent[k] = true end
  end
  for _, u in ipairs(undos) do if not u.undone then state.undo[#state.undo + 1] = u end end
  state.all_undo = undos
  return state
end

-- The first line of a file, or nil.
local function first_line(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local line = f:read("l")
  f:close()
  return line
end

--[[ A fallback copy of the journal at `path` that holds more lines of the
     same run (the journal could not be written at some point): its path. ]]
local function better_copy(path, text)
  local first = text:match("^([^\n]*)\n")
  if not first then return nil end
  local start = json.decode(first)
  if type(start) ~= "table" or start.t ~= "start" then return nil end
  for _, dir in ipairs(M.fallback_dirs(path)) do
    local copy = join(dir, basename(path))
    if copy ~= path and first_line(copy) == first then
      local f = io.open(copy, "rb")
      local ctext = f and f:read("a")
      if f then f:close() end
      if ctext and #ctext > #text then return copy, ctext end
    end
  end
  return nil
end

--[[ Reads the journal at path (or the fuller fallback copy of it); raises
     bad input when the path is missing, a folder, unreadable, or not a
     journal. Damage (torn or unreadable lines, no start line) is reported in
     the state, for the caller to decide. ]]
function M.read(path)
  local text = slurp(path)
  local copy, ctext = better_copy(path, text)
  if copy then
    log.event("warn", "journal", string.format("%s stops short; reading its fuller copy %s (the journal "
      .. "could not be written during the run)", path, copy))
    text = ctext
  end
  local state = M.parse(text, copy or path)
  state.given = path
  return state
end

--[[ The journals of every rollout of the playbook run that wrote state's
     journal (resume): the group's first journal, then the others in the
     order they started, each read; one left empty (killed while its start
     line was being written), or named but never created (killed between
     the group's line and its start line), is kept as an empty state with
     its `link` (the group's line that names it: name, run id, file): that
     rollout had not begun, and on resume it starts over in that file. ]]
function M.members(state)
  local id = state.start and state.start.group
  if not id then return { state } end
  local dir = dirname(state.given or state.path)
  local root_path = join(dir, id .. ".jsonl")
  local root = state
  if id ~= state.start.run and root_path ~= (state.given or state.path) then
    if missing(root_path) then
      log.event("warn", "journal", "the run's first journal " .. root_path .. " is gone: resuming "
        .. (state.given or state.path) .. " alone")
      return { state }
    end
    root = M.read(root_path)
  end
  local out, seen = { root }, { [root.given or root.path] = true }
  for _, link in ipairs(root.rollouts) do
    local p = join(dir, tostring(link.journal))
    if not seen[p] then
      seen[p] = true
      if p == (state.given or state.path) then out[#out + 1] = state
      elseif not missing(p) then
        local m = M.read(p)
        -- empty: that rollout was stopped before its start line was on disk; the link names it
        if m.empty then m.link = link end
        out[#out + 1] = m
      else
        -- its folder could not be written when it started: the journal lives in a fallback folder
        local found = false
        for _, d in ipairs(M.fallback_dirs(p)) do
          local copy = join(d, basename(p))
          if not missing(copy) then out[#out + 1] = M.read(copy) found = true break end
        end
        if not found then
          out[#out + 1] = { path = p, given = p, empty = true, link = link, done = {}, started = {}, intent = {},
            intent_time = {}, undo = {}, all_undo = {}, rollouts = {}, damaged = {} }
        end
      end
    end
  end
  if not seen[state.given or state.path] then out[#out + 1] = state end
  return out, root
end

-- Why a journal's rollout is being put back (its "revert" line's reason) as " (reason)", or "".
function M.reverting_why(state)
  local reason = state.reverting and state.reverting.reason
  return type(reason) == "string" and (" (" .. reason .. ")") or ""
end

-- State's playbook run: { group = its first journal's run id, root = that journal's path,
-- members = its journals (M.members), unfinished = it never reached its end (no
-- "playbook_end" line in its first journal) }, or nil for a journal of no group.
-- memo: a table kept by a caller that asks for many journals of one look (`ecsplay status`
-- of every run): each group's journals are read once, not once per member, and its members
-- get the same table.
local function run_of(state, memo)
  local group = state.start and state.start.group
  if not group then return nil end
  local known = memo and memo[group]
  if known then return known end
  local ok, members, root = pcall(M.members, state)
  if not ok or not root then return nil end
  local run = { group = group, root = root.given or root.path, members = members,
    unfinished = root.playbook_ended == nil }
  if memo then memo[group] = run end
  return run
end

--[[ For a run killed before its end, with rollouts it left promoted (their abort handlers: an
     on_abort, a fleet's undo=, never ran): the run_of table above, with `promoted`, each
     journal of the run that ended "succeeded" as { name, journal, run (its run id) }, in the
     order they started. nil for a run that ended, a run of one rollout, or none promoted.
     With a memo, the members of one run get the same table (`ecsplay status` lists it once). ]]
function M.unfinished_run(state, memo)
  local run = run_of(state, memo)
  if not run or not run.unfinished or #run.members < 2 then return nil end
  if not run.promoted then
    run.promoted = {}
    for _, m in ipairs(run.members) do
      if m.ended == "succeeded" then
        local path = m.given or m.path
        run.promoted[#run.promoted + 1] = { name = tostring(m.start and m.start.name or path), journal = path,
          run = m.start and m.start.run, state = m }
      end
    end
  end
  return #run.promoted > 0 and run or nil
end

-- Whether `p` (an entry of unfinished_run's promoted) is state's own journal (by run id: with
-- a memo, state and its entry are two reads of one file).
local function is_itself(p, state)
  return p.state == state or (p.run ~= nil and state.start ~= nil and p.run == state.start.run)
end

local HANDLERS_DID_NOT_RUN = "did not finish, so its abort handlers (on_abort, a fleet's undo=) did not run"

--[[ For a run killed before its end: the lines that name its rollouts left promoted, other
     than state's, each with the command that puts it back; with `itself`, first a line about
     state's own journal when it is one of them. {} for a run that ended. (`ecsplay rollback`
     of one journal; `ecsplay status` names them once per run: run_pointer, run_block.) ]]
function M.promoted_notes(state, itself, memo)
  local run = M.unfinished_run(state, memo)
  local out = {}
  if not run then return out end
  if itself and state.ended == "succeeded" then
    local path = state.given or state.path
    out[1] = string.format("its run %s: it still runs its new version; `ecsplay rollback %s` puts it back, "
      .. "`ecsplay resume %s` carries the run on", HANDLERS_DID_NOT_RUN, path, path)
  end
  for _, p in ipairs(run.promoted) do
    if not is_itself(p, state) then
      out[#out + 1] = string.format("the run %s: %s of the same run succeeded (promoted) and still runs its "
        .. "new version; `ecsplay rollback %s` puts it back", HANDLERS_DID_NOT_RUN, p.name, p.journal)
    end
  end
  return out
end

-- The line of one of run's journals (state) that points at the run's block (run_block), for
-- `ecsplay status`: run = M.unfinished_run(state, memo).
function M.run_pointer(run, state)
  local n, mine = #run.promoted, false
  for _, p in ipairs(run.promoted) do mine = mine or is_itself(p, state) end
  if mine then
    return string.format("its run did not finish: it still runs its new version (%s left promoted): "
      .. "see `run %s` below", n == 1 and "the only rollout of the run" or ("one of " .. n .. " rollouts"),
      run.group)
  end
  return string.format("its run did not finish: %d of its rollouts left promoted: see `run %s` below", n,
    run.group)
end

--[[ The lines that name, once, the rollouts a run killed before its end left promoted, each
     with the command that puts it back (`ecsplay status`, after the runs' own lines):
       run ID did not finish, so its abort handlers (...) did not run: 2 of its rollouts ...
         svc1: `ecsplay rollback .ecsplay/runs/A.jsonl` puts it back
         ...
         or `ecsplay resume .ecsplay/runs/ID.jsonl` carries the run on ]]
function M.run_block(run)
  local n = #run.promoted
  local out = { string.format("run %s %s: %d of its rollouts succeeded (promoted) and still %s:", run.group,
    HANDLERS_DID_NOT_RUN, n, n == 1 and "runs its new version" or "run their new version") }
  for _, p in ipairs(run.promoted) do
    out[#out + 1] = string.format("  %s: `ecsplay rollback %s` puts it back", p.name, p.journal)
  end
  out[#out + 1] = string.format("  or `ecsplay resume %s` carries the run on", run.root)
  return out
end

--[[ The playbook run that opened the journal group `group` (context.journal_group) has
     ended (any outcome but a refusal, exit 2, which changed nothing and may be run again):
     {"t":"playbook_end","exit":code} in the group's first
     journal, after every rollout's end line. Without it, a run whose journals all ended was
     killed between two rollouts (multi_region's soak between waves), and `ecsplay resume`
     runs the playbook again. Never raises (a journal never stops a run). → true | false, problem ]]
function M.end_playbook(group, exit_code)
  local ok, written, problem = pcall(function()
    local j = group.journal or M.attach(group.root)
    group.journal = j
    return j:write { t = "playbook_end", exit = exit_code }
  end)
  if not ok then
    log.event("error", "journal", "cannot record the end of the playbook run in " .. tostring(group.root)
      .. ": " .. errors.describe(written))
    return false, errors.describe(written)
  end
  return written, problem
end

local function shell_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

-- The journal files (*.jsonl) in dir, sorted.
local function journals_in(dir)
  local out = {}
  local p = io.popen("ls -1 -- " .. shell_quote(dir) .. " 2>/dev/null")
  if not p then return out end
  for name in p:lines() do
    if name:match("%.jsonl$") then out[#out + 1] = name end
  end
  p:close()
  table.sort(out)
  return out
end

--[[ The state of the journal in path's folder that lists the journal at
     `path` as another rollout of its playbook run (a "rollout" line naming
     its file), or nil. For a journal left empty, which names no run: the
     run it belongs to. ]]
function M.linked_from(path)
  local dir, name = dirname(path), basename(path)
  for _, file in ipairs(journals_in(dir)) do
    if file ~= name then
      local f = io.open(join(dir, file), "rb")
      local text = f and f:read("a")
      if f then f:close() end
      if text and text:find(name, 1, true) then
        local ok, state = pcall(M.read, join(dir, file))
        if ok then
          for _, link in ipairs(state.rollouts) do
            if link.journal == name then return state end
          end
        end
      end
    end
  end
  return nil
end

return M
