-- A playbook wrapper (not a scenario) for tests/lua/test_multi_region_journal.lua: runs the
-- playbook named by `playbook=` with every other argument, and kills this process with SIGKILL
-- the moment a journal line is on disk that matches ECSPLAY_TEST_KILL_AT = "NAME|T|KEY": a line
-- of type T (and key KEY, when given) in the journal of the rollout named NAME (its start line's
-- `name`), e.g. "api in eu-west-1|done|weight:2". Several rollouts journal to files of their own,
-- so a line count cannot say "after the second Region shifted"; the rollout's name can. The
-- fault comes from the environment: `ecsplay resume` of the journal runs the playbook without it.
local core = require "ecsplay.core"
local json = require "ecsplay.json"

local want = os.getenv("ECSPLAY_TEST_KILL_AT") or ""
local name, t, key = want:match("^([^|]+)|([^|]+)|?(.*)$")
if name then
  local append = core.fsync_append
  local names = {} -- journal path → its rollout's name
  core.fsync_append = function(path, data)
    local ok, err = append(path, data)
    if ok and path:match("%.jsonl$") then
      for line in data:gmatch("[^\n]+") do
        local obj = json.decode(line)
        if type(obj) == "table" then
          if obj.t == "start" then names[path] = obj.name end
          if names[path] == name and obj.t == t and (key == "" or obj.key == key) then
            os.execute("kill -9 " .. core.pid())
          end
        end
      end
    end
    return ok, err
  end
end

local playbook = assert(ecsplay.args.playbook, "kill_at_line.lua: give playbook=PATH")
ecsplay.args.playbook = nil -- ours, not the playbook's
local dir = playbook:match("^(.*)/[^/]*$") or "."
package.path = dir .. "/?.lua;" .. dir .. "/?/init.lua;" .. package.path
return assert(loadfile(playbook))()
