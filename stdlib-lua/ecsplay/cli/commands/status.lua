--[[ `ecsplay status [RUN] [--watch] [--log-format text|json]`: what a run is
     doing (every run in the runs folder when no RUN is given), read from its
     journal and the state file its process keeps next to it
     (rollout/control.lua status). A run whose process is gone is `gone`, with
     the `ecsplay rollback` / `resume` command to run. --watch prints again
     each time something changes, until every run shown has ended or is gone.
     A run killed before its end that left rollouts promoted is named once,
     after the lines (each of its journals' lines points there), with the
     command that puts each back (journal_file.run_block).
     With --log-format json: one object per run per line, then one per such
     killed run ({unfinished_run, promoted, resume, hint}); `{"runs":[]}` when
     the runs folder has none; a RUN that matches nothing is an `error` event. ]]
local core = require "ecsplay.core"
local json = require "ecsplay.json"
local errors = require "ecsplay.errors"
local control = require "ecsplay.rollout.control"
local journal_file = require "ecsplay.rollout.journal_file"
local steer = require "ecsplay.cli.steer"
local exit = require "ecsplay.cli.exit"

local USAGE = "ecsplay status [RUN] [--watch] [--log-format text|json]"
local SUMMARY = "the state of a running rollout (or of every run in the runs folder): step, weights, gates"
local WATCH_EVERY = 1 -- wall seconds between two looks with --watch

-- The journals to show: RUN's, or every run in the runs folder.
local function journals(run)
  if run then return { control.resolve(run) } end
  local dir = journal_file.runs_dir()
  local out = {}
  for _, id in ipairs(control.list_runs(dir)) do out[#out + 1] = dir:gsub("/$", "") .. "/" .. id .. ".jsonl" end
  return out
end

-- → the status of the journal at path [, its run, when killed before its end with rollouts left
-- promoted (journal_file.unfinished_run)]
local function status_of(path, memo)
  local ok, st, run = pcall(control.status, path, memo)
  if ok then return st, run end
  return { run = path:match("([^/]*)%.jsonl$"), journal = path, state = "unreadable", error = errors.describe(st) }
end

-- A run killed before its end, named once after its journals' lines (each points here): the
-- rollouts it left promoted, with the commands that put them back. A killed fleet of N
-- members is N lines and this block, not N lines naming N-1 siblings each.
local function show_run(run, format)
  local text = table.concat(journal_file.run_block(run), "\n")
  if format ~= "json" then return "\n" .. text end
  local promoted = {}
  for i, p in ipairs(run.promoted) do promoted[i] = { name = p.name, journal = p.journal } end
  return json.encode { unfinished_run = run.group, promoted = json.array(promoted), resume = run.root,
    hint = text }
end

local function show(st, format)
  if format == "json" then return json.encode(st) end
  if st.state == "unreadable" then return tostring(st.run) .. "  unreadable: " .. tostring(st.error) end
  return control.describe_status(st)
end

local function final(st) return not steer.ACTIVE[st.state] end

--[[ One look: prints the line of each journal in paths, then the block of each killed run they
     point at. printed: what the previous looks printed ({lines = path → line, runs = run id →
     block}); with --watch a line is printed again only when it changed, a block when it
     changed or a line that points at it ("below") was printed again. → whether every run
     shown has ended or is gone. ]]
local function look(paths, format, printed)
  local all_final = true
  local memo = {} -- a run's journals read once a look, however many of them are listed
  local killed, reprint = {}, {} -- the killed runs the lines point at; run id → a line of it printed
  for _, p in ipairs(paths) do
    local st, killed_run = status_of(p, memo)
    local line = show(st, format)
    if killed_run and reprint[killed_run.group] == nil then
      killed[#killed + 1] = killed_run
      reprint[killed_run.group] = false
    end
    if line ~= printed.lines[p] then
      io.stdout:write(line, "\n")
      printed.lines[p] = line
      if killed_run then reprint[killed_run.group] = true end
    end
    if not final(st) then all_final = false end
  end
  for _, r in ipairs(killed) do
    local block = show_run(r, format)
    if block ~= printed.runs[r.group] or reprint[r.group] then
      io.stdout:write(block, "\n")
      printed.runs[r.group] = block
    end
  end
  return all_final
end

local function run(opts, argv)
  local ok, o, positionals = pcall(steer.parse, argv, { ["--watch"] = function(c) c.watch = true end })
  if not ok then return steer.fail("status", steer.format_asked(opts, argv), o, USAGE) end
  local format = o.log_format or opts.log_format or "text"
  if o.as then return steer.fail("status", format, "--as is for promote, pause, unpause and abort", USAGE) end
  local ok_j, paths = pcall(journals, positionals[1])
  if not ok_j then return steer.fail("status", format, paths) end
  if #paths == 0 then
    -- JSON mode: one document even for no run (an empty output is no JSON at all)
    io.stdout:write(format == "json" and '{"runs":[]}\n' or ("no runs in " .. journal_file.runs_dir() .. "\n"))
    return exit.FINISHED
  end
  local printed = { lines = {}, runs = {} }
  while true do
    local all_final = look(paths, format, printed)
    io.stdout:flush()
    if not o.watch or all_final then break end
    if core.wait(WATCH_EVERY) then break end -- a signal ends the watch
  end
  return exit.FINISHED
end

return { summary = SUMMARY, usage = USAGE, run = run }
