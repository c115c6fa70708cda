--[[
ecsplay.context: what the runner knows about the current run that the layers
below it need, passed through one internal module instead of fields of the
public `ecsplay` table:
  simulated   true under --simulate (the in-process simulator)
  sim         the in-process simulator, when simulated
  run_info    { playbook=, args=, config= } for the run journal's start line
  resume      { [rollout name] = { journal state, ... } } when `ecsplay resume`
              re-runs (in start order: each rollout of that name takes the first)
  journal_group  { id=, dir=, root=, journal=, fixed= }: the rollouts of this
              playbook run journal as one group (rollout/journal_file.lua)
  aborts      the ecsplay.on_abort stack (oldest first)
  params_help set (a table) only under `ecsplay FILE.lua --help`: ecsplay.params
              records its declaration in it and raises it (cli/run.lua)
  report      the --report file, when the run writes one: the run then keeps a
              journal even under --simulate (the report is read from it)
The runner sets it up (context.reset) before the playbook runs; nothing else
writes it except on_abort, the resume command and the run journal.
]]
local M = {}

function M.reset()
  M.simulated = false
  M.sim = nil
  M.run_info = {}
  M.resume = nil
  M.journal_group = nil
  M.aborts = {}
  M.params_help = nil
  M.report = nil
end

M.reset()

return M
