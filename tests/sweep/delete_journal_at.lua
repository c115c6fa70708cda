-- A playbook wrapper (not a playbook) for the sweep's journal-deleted cases (execute.py): runs
-- the playbook named by `playbook=` with every other argument, and deletes the run's journal
-- the moment the line ECSPLAY_SWEEP_DELETE_AT is on disk. The label names a line as the sweep
-- does (procs.JournalWatch: `done:KEY`, `#N` for a repeat, `<strategy>.` in front when
-- ECSPLAY_SWEEP_PREFIX=1; `<name>.`, the rollout's name with other than [%w_.-] as `_`, when it
-- is `name`). A watcher outside the process cannot land a deletion between a
-- line and the next when the next follows at once (the end line after the last step): here
-- it lands there every time, so the case tests what it names, "deleted before its next line".
-- The fault comes from the environment: `ecsplay rollback` of the journal runs without it.
local core = require "ecsplay.core"
local json = require "ecsplay.json"

local at = os.getenv("ECSPLAY_SWEEP_DELETE_AT") or ""
local prefix = os.getenv("ECSPLAY_SWEEP_PREFIX")
local runs = os.getenv("ECSPLAY_RUNS_DIR") or ".ecsplay/runs"

-- The key without run-specific hex ids (procs.norm_key: ecs_native's `continue:<hash>`).
local function norm_key(key)
  return (tostring(key or ""):gsub(":?[0-9a-f]+", function(m)
    if #m:gsub("^:", "") >= 12 then return "" end
  end))
end

local files = {} -- path -> { seen = {base = n}, strategy = }

local function label_of(st, obj)
  local t = obj.t or "?"
  local base = (t == "do" or t == "done") and (t .. ":" .. norm_key(obj.key)) or t
  st.seen[base] = (st.seen[base] or 0) + 1
  local n = st.seen[base]
  local label = (n == 1 and t ~= "undone") and base or (base .. "#" .. n)
  if prefix == "name" then return (st.name or "?") .. "." .. label end
  return prefix == "1" and ((st.strategy or "?") .. "." .. label) or label
end

if at ~= "" then
  local append = core.fsync_append
  local fired = false
  core.fsync_append = function(path, data)
    local ok, err = append(path, data)
    local dir = path:match("^(.*)/[^/]*$") or "."
    if ok and not fired and path:match("%.jsonl$") and dir == runs then
      local st = files[path] or { seen = {} }
      files[path] = st
      for line in data:gmatch("([^\n]*)\n") do
        local obj = json.decode(line)
        if type(obj) == "table" then
          if obj.t == "start" then
            st.strategy = obj.strategy
            st.name = obj.name and (tostring(obj.name):gsub("[^%w_%.%-]+", "_"))
          end
          if label_of(st, obj) == at then
            fired = true
            os.remove(path)
            io.stderr:write("delete_journal_at: deleted " .. path .. " after its line " .. at .. "\n")
            break
          end
        end
      end
    end
    return ok, err
  end
end

local playbook = assert(ecsplay.args.playbook, "delete_journal_at.lua: give playbook=PATH")
ecsplay.args.playbook = nil -- ours, not the playbook's (it may declare its own with ecsplay.params)
local dir = playbook:match("^(.*)/[^/]*$") or "."
package.path = dir .. "/?.lua;" .. dir .. "/?/init.lua;" .. package.path
return assert(loadfile(playbook))()
