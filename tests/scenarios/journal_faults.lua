-- A playbook (not a scenario) for the journal fault tests (tests/lua/test_journal_faults.lua,
-- test_resume_multi.lua): runs the playbook named by the argument `playbook=` with every other
-- argument, while the run journal's file meets the fault ECSPLAY_TEST_JOURNAL_FAULT names:
--   full:N     every write to a journal under a folder named `runs` fails (ENOSPC) after N
--              lines were written (the fallback folders, elsewhere, still work)
--   nowhere:N  every journal write fails after N lines, fallbacks too
--   delete:N   the journal file is deleted once line N is on disk
--   kill:N     SIGKILL to this process once line N is on disk (a kill -9 after that line)
--   kill:TYPE  SIGKILL once the first line of type TYPE ("rollout", ...) is on disk: where
--              line numbers depend on how parallel rollouts' lines interleave, which the
--              answers' timing decides
-- N counts the lines of every journal of the run together, the run report's step and gate
-- lines aside (they record measurements, not changes). The fault comes from the
-- environment, not the arguments, so `ecsplay resume` of the journal (whose start line
-- names this file and its arguments) runs the same playbook without it.
local core = require "ecsplay.core"

local fault = os.getenv("ECSPLAY_TEST_JOURNAL_FAULT") or ""
local kind, limit = fault:match("^(%a+):(%d+)$")
local kill_type = fault:match("^kill:(%a+)$")
if kill_type then kind = "kill" end
limit = tonumber(limit)
if kind then
  local append = core.fsync_append
  local written = 0
  core.fsync_append = function(path, data)
    local journal_line = path:match("%.jsonl$") ~= nil
    if not journal_line then return append(path, data) end
    if kind == "full" and written >= limit and path:find("/runs/", 1, true) then
      return nil, "cannot write " .. path .. ": No space left on device"
    elseif kind == "nowhere" and written >= limit then
      return nil, "cannot write " .. path .. ": Read-only file system"
    end
    local ok, err = append(path, data)
    local line_type = data:match('^{[^\n]-"t":"(%a+)"') or ""
    local report_line = ({ step = true, gate = true })[line_type]
    if ok and not report_line then
      written = written + 1
      if kind == "kill" and (written == limit or line_type == kill_type) then os.execute("kill -9 " .. core.pid()) end
      if kind == "delete" and written == limit then os.remove(path) end
    end
    return ok, err
  end
end

local playbook = assert(ecsplay.args.playbook, "journal_faults.lua: give playbook=PATH")
ecsplay.args.playbook = nil -- ours, not the playbook's (it may declare its own with ecsplay.params)
local dir = playbook:match("^(.*)/[^/]*$") or "."
package.path = dir .. "/?.lua;" .. dir .. "/?/init.lua;" .. package.path
return assert(loadfile(playbook))()
