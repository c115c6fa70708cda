--[[
ecsplay.undo: the one undo loop. Every rollback in ecsplay (a rollout's undo
stack, `ecsplay rollback JOURNAL`, the playbook's ecsplay.on_abort handlers)
carries out its entries through undo.run, so the order, the logging and what
happens when an entry fails are the same everywhere.

  local failures, left = undo.run(entries, {
    exec = function(entry) ... end,          -- performs one entry (raises on failure)
    describe = function(entry) → text end,  -- for logs and messages
    on_done = function(entry) end,           -- optional: after a success (journal it)
    on_failed = function(entry, err) end,    -- optional: after a failure
    stop = function(entry, err) → bool end,  -- optional: true = stop here, leave the rest
  })

Entries are a list, oldest first; they run newest first and are removed
from the list as they run. A failed entry is reported and the loop goes on,
unless opts.stop says that going on would make things worse (for example
removing capacity from a side that still receives traffic): then the loop
stops and `left` lists, newest first, the entries not carried out (the
failed one first). failures: { { entry=, error=, text= }, ... }.
An interruption (SIGINT/SIGTERM) never cuts an undo loop short: the error is
recorded and the loop goes on.
]]
local errors = require "ecsplay.errors"
local log = require "ecsplay.log"
local context = require "ecsplay.context"

local M = {}

function M.run(entries, opts)
  local failures, left = {}, {}
  local describe = opts.describe or errors.describe
  while #entries > 0 do
    local entry = table.remove(entries)
    local ok, err = pcall(opts.exec, entry)
    if ok then
      if opts.on_done then opts.on_done(entry) end
    else
      local text = describe(entry) .. " FAILED: " .. errors.describe(err)
      failures[#failures + 1] = { entry = entry, error = err, text = text }
      if opts.on_failed then opts.on_failed(entry, err, text) end
      if opts.stop and opts.stop(entry, err) then
        left[1] = entry
        for i = #entries, 1, -1 do left[#left + 1] = entries[i] end
        for i = #entries, 1, -1 do entries[i] = nil end
        break
      end
    end
  end
  return failures, left
end

-- The failures' texts, for a message: "a FAILED: x; b FAILED: y".
function M.texts(failures)
  local out = {}
  for i, f in ipairs(failures) do out[i] = f.text end
  return out
end

-- The playbook's ecsplay.on_abort handlers (context.aborts), newest first,
-- after a failed run: cli/run.lua and ecsplay.testing both end a run so.
-- reason: the run's failure as text (its last line says it; logged once here).
function M.run_on_abort(reason)
  local aborts = context.aborts or {}
  if #aborts == 0 then return {} end
  log.event("warn", "rollback", string.format("rolling back: %d on_abort handler(s)", #aborts),
    { steps = #aborts, reason = reason })
  return M.run(aborts, {
    exec = function(entry) entry.fn(reason) end,
    describe = function(entry) return entry.name or "on_abort handler" end,
    on_failed = function(_, _, text)
      log.event("error", "rollback_failed", "rollback step failed: " .. text)
    end,
  })
end

return M
