--[[
What `ecsplay status`, `promote`, `pause`, `unpause` and `abort` share
(cli/commands/*.lua): their flags, finding the run (RUN: a run id, a unique
prefix of one, or a journal path; rollout/control.lua resolve), sending a
command and waiting for the run to acknowledge it.

  steer.command(name, summary, extra_usage, spec_extra)  → a command module
  steer.parse(argv, switches, max_positional) → opts, positionals | raises bad_input
  steer.fail(name, format, problem, usage) → exit 2, the message: how every
      one of them refuses (usage errors with the flag parser's did-you-mean);
      with --log-format json also an `error` event on standard output
]]
local core = require "ecsplay.core"
local json = require "ecsplay.json"
local errors = require "ecsplay.errors"
local log = require "ecsplay.log"
local control = require "ecsplay.rollout.control"
local journal_file = require "ecsplay.rollout.journal_file"
local args = require "ecsplay.cli.args"
local exit = require "ecsplay.cli.exit"

local M = {}

-- Wall seconds a command waits for the run to say it took it.
M.ACK_WAIT = 5

local ACTIVE = { running = true, paused = true, ["awaiting-approval"] = true }
M.ACTIVE = ACTIVE

-- Parses argv with the flags every steering command takes plus `switches`; → opts, RUN | raises bad_input.
function M.parse(argv, switches, max_positional)
  local spec = {
    valued = { ["--log-format"] = "log_format", ["--as"] = "as" },
    switches = switches or {},
    max_positional = max_positional or 1,
    unexpected = function(a, hint) return "unexpected argument " .. a .. hint end,
  }
  local opts, positionals = args.parse(argv, spec, {})
  if opts.log_format and opts.log_format ~= "text" and opts.log_format ~= "json" then
    error(errors.bad_input("--log-format: expected text or json, got " .. opts.log_format, "--log-format"), 0)
  end
  if opts.as ~= nil and not opts.as:match("^[%w._@+-]+$") then
    error(errors.bad_input("--as: expected a name (letters, digits, . _ @ + -), got " .. opts.as, "--as"), 0)
  end
  return opts, positionals
end

--[[ The output format asked for, read from the words themselves: a line that
     fails to parse can still ask for JSON (`--log-format json` before the
     command reaches opts, after it argv). ]]
function M.format_asked(opts, argv)
  local format = opts and opts.log_format
  for i, a in ipairs(argv) do
    if a == "--log-format" then format = argv[i + 1] end
    local inline = a:match("^%-%-log%-format=(.*)$")
    if inline then format = inline end
  end
  return format
end

--[[ A steering command refuses (exit 2): `ecsplay: NAME: MESSAGE`, then the
     usage line when one is given, for standard error; in JSON mode the same
     first line is also an `error` event on standard output, so a reader of
     the JSON gets JSON (docs/events.md). problem: an error or a string. ]]
function M.fail(name, format, problem, usage)
  local message = type(problem) == "string" and problem or errors.describe(problem)
  local code, text = args.usage_error(name, message, usage)
  if format == "json" and pcall(log.configure, { format = "json" }) then
    log.event("error", "error", name .. ": " .. message, { exit_code = code, kind = "bad_input",
      code = type(problem) == "table" and problem.code or "BadInput" })
  end
  return code, text
end

-- The state in the file of the run at `journal` now, or {}.
local function state_file(journal)
  local f = io.open((control.paths(journal)), "rb")
  if not f then return {} end
  local st = json.decode(f:read("a") or "")
  f:close()
  return type(st) == "table" and st or {}
end

-- Waits (wall clock, a signal cuts it short) until the run acknowledges command id; → its ack or nil.
local function wait_ack(journal, id, seconds)
  local give_up = core.monotonic() + seconds
  repeat
    for _, a in ipairs(state_file(journal).acked or {}) do
      if a.id == id then return a end
    end
    if core.wait(0.1) then break end
  until core.monotonic() >= give_up
  return nil
end

--[[ A steering command: `ecsplay NAME RUN [--as NAME] [--log-format F]`
     plus flags (switches: { ["--full"] = function(o) ... end }). ]]
function M.command(name, summary, flags_usage, switches)
  local usage = "ecsplay " .. name .. " RUN" .. (flags_usage or "") .. " [--as NAME] [--log-format text|json]"
  return {
    summary = summary,
    usage = usage,
    run = function(opts, argv)
      local ok, o, positionals = pcall(M.parse, argv, switches)
      if not ok then return M.fail(name, M.format_asked(opts, argv), o, usage) end
      local format = o.log_format or opts.log_format
      if not positionals[1] then
        return M.fail(name, format, "which run? (RUN: a run id, a unique prefix of one, or a journal path; "
          .. "`ecsplay status` lists the runs)", usage)
      end
      local ok_r, journal = pcall(control.resolve, positionals[1])
      if not ok_r then return M.fail(name, format, journal) end
      local ok_s, st, unfinished = pcall(control.status, journal)
      if not ok_s then return M.fail(name, format, st) end
      if not ACTIVE[st.state] then
        local hint = st.hint
        -- its hint points "below" at its killed run's promoted rollouts: named here, after it
        if unfinished then hint = hint .. "\n" .. table.concat(journal_file.run_block(unfinished), "\n") end
        return M.fail(name, format, errors.new("bad_input", { code = "RunNotActive", field = "RUN",
          message = string.format("run %s is %s: nothing to %s%s", tostring(st.run), st.state, name,
            hint and ("; " .. hint) or "") }))
      end
      local ok_c, cmd = pcall(control.send, journal, name, { full = o.full, as = o.as })
      if not ok_c then return M.fail(name, format, cmd) end
      local ack = wait_ack(journal, cmd.id, M.ACK_WAIT)
      local result = { run = st.run, command = name, full = o.full, id = cmd.id, by = control.describe_who(cmd),
        acknowledged = ack ~= nil, effect = ack and ack.effect or nil }
      if format == "json" then
        io.stdout:write(json.encode(result), "\n")
      elseif ack then
        io.stdout:write(string.format("%s: %s%s by %s: %s\n", st.run, name, o.full and " --full" or "",
          result.by, ack.effect))
      else
        io.stdout:write(string.format("%s: %s sent; the run takes it at its next wait (now %s)\n", st.run, name,
          st.state))
      end
      return exit.FINISHED
    end,
  }
end

return M
