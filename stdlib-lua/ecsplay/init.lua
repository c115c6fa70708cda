--[[
The `ecsplay` table every playbook sees (docs/playbooks.md): arguments,
time, concurrency, abort handlers, logging, HTTP and JSON. Heavier modules
(the AWS services, rollout, the simulator) load on first `require`.
]]
local core = require "ecsplay.core"
local sched = require "ecsplay.sched"
local duration = require "ecsplay.duration"
local log = require "ecsplay.log"
local context = require "ecsplay.context"

local M = {
  version = core.version,
  args = {},
  log = log,
  duration = duration,
}

-- ecsplay.http and ecsplay.json (cjson, a shared object to map) load on first use.
-- ecsplay.simulated: ecsplay.simulating() for older playbooks, read from the run
-- context on each access (no run state is kept in this table).
local lazy = { http = "ecsplay.http", json = "ecsplay.json" }
setmetatable(M, { __index = function(t, k)
  if k == "simulated" then return context.simulated == true end
  local modname = lazy[k]
  if modname then
    local v = require(modname) -- lazy: start-up cost (libcurl, cjson) for playbooks that never use them
    rawset(t, k, v)
    return v
  end
end })

-- true under --simulate (the in-process simulator on a virtual clock).
function M.simulating() return context.simulated == true end

function M.now() return sched.now() end

function M.sleep(d)
  return sched.sleep(duration.check(d, "ecsplay.sleep", 2))
end

function M.spawn(fn, ...) return sched.spawn(fn, ...) end

-- Runs the functions concurrently; returns their first results in order.
-- When any fails, the others still finish, then the first error is raised.
function M.parallel(fns)
  if type(fns) ~= "table" then error("ecsplay.parallel: expected a list of functions", 2) end
  local tasks = {}
  for i, fn in ipairs(fns) do
    if type(fn) ~= "function" then
      error(string.format("ecsplay.parallel: item %d is a %s, expected a function", i, type(fn)), 2)
    end
    tasks[i] = sched.spawn(fn)
  end
  local results, first_err = {}, nil
  for i, t in ipairs(tasks) do
    local r = table.pack(t:result())
    if r[1] then results[i] = r[2] elseif first_err == nil then first_err = r[2] end
  end
  if first_err ~= nil then error(first_err, 0) end
  return results
end

-- fn(item, index) over the list with at most opts.limit running at once.
function M.map(list, fn, opts)
  if type(list) ~= "table" then error("ecsplay.map: expected a list", 2) end
  if type(fn) ~= "function" then error("ecsplay.map: expected a function", 2) end
  local limit = opts and opts.limit or #list
  if math.type(limit) ~= "integer" or limit < 1 then
    error("ecsplay.map: limit must be an integer of 1 or more, got " .. tostring(limit), 2)
  end
  local results, first_err, next_i = {}, nil, 1
  local function worker()
    while next_i <= #list do
      local i = next_i
      next_i = next_i + 1
      local ok, r = pcall(fn, list[i], i)
      if ok then results[i] = r
      else
        if sched.is_interrupt(r) then error(r, 0) end
        if first_err == nil then first_err = r end
      end
    end
  end
  local workers = {}
  for w = 1, math.min(limit, #list) do workers[w] = sched.spawn(worker) end
  for _, w in ipairs(workers) do
    local ok, e = w:result()
    if not ok and first_err == nil then first_err = e end
  end
  if first_err ~= nil then error(first_err, 0) end
  return results
end

-- Abort handlers: run newest first when the playbook fails or is interrupted
-- (the runner carries them out through ecsplay.undo).
function M.on_abort(fn, name)
  if type(fn) ~= "function" then error("ecsplay.on_abort: expected a function", 2) end
  local entry = { fn = fn, name = name }
  local aborts = context.aborts
  aborts[#aborts + 1] = entry
  return function()
    for i = #aborts, 1, -1 do
      if aborts[i] == entry then table.remove(aborts, i) return true end
    end
    return false
  end
end

return M
