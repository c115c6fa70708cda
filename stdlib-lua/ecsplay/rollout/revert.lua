--[[
Putting back a rollout that succeeded, when a later failure of the same playbook asks for it
(multi_region's on_abort, fleet's undo=):

  revert.succeeded(report, reason)   -- revert = the module ecsplay.rollout.revert; report: what
                                     -- rollout.canary{...} (any strategy) returned

It is the plan `ecsplay rollback` carries out for that rollout's finished journal (rollout/journal.lua:
"rolling back a run that finished is a revert in the safe order"): its own undo stack, newest first,
each undo looking before it acts (rollout/actions.lua). For a canary: the stable service back on
the task definition it ran and healthy while it serves, traffic home, then the canary service back
to its task definition and count (0), which no longer receives traffic, waited for until ECS has
finished scaling it in. Both services end as they were before the run, not only the stable one, and
no deployment of either is left in progress when it returns. Each undo is journaled, then the journal's end line
"rolled_back", so a kill half-way leaves `ecsplay rollback JOURNAL` to continue it.

Returns true when it reverted, false when the rollout did not succeed or was reverted already
(nothing to do). Raises a "rollback" error (RollbackFailed, exit 3, with what is left) when an undo
fails, and bad input for a report that no rollout of this process returned.
]]
local errors = require "ecsplay.errors"
local strings = require "ecsplay.util.strings"
local Run = require "ecsplay.rollout.run"

local M = {}

function M.succeeded(report, reason)
  local run = type(report) == "table" and Run.of_report(report) or nil
  if not run then
    error(errors.bad_input("rollout.revert: expected the report a rollout of this run returned, got "
      .. strings.describe_value(report)), 0)
  end
  return run:revert(reason)
end

return M
