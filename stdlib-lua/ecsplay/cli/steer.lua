--[[
What `ecsplay status`, `promote`, `pause`, `unpause` and `abort` share
(cli/commands/*.lua): their flags, finding the run (RUN: a run id, a unique
prefix of one, or a journal path; rollout/control.lua resolve), sending a
command and waiting for the run to acknowledge it.

  steer.command(name, summary, extra_usage, spec_extra)  → a command module
]]
local core = require "ecsplay.core"
local json = require "ecsplay.json"
local errors = require "ecsplay.errors"
local control = require "ecsplay.rollout.control"
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
    needs_value = function(flag) return flag .. " needs a value" end,
    unexpected = function(a) return "unexpected argument " .. a end,
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

function M.bad_usage(err, usage)
  return exit.BAD_INPUT, "ecsplay: " .. errors.describe(err) .. "\nusage: " .. usage
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
    run = function(_, argv)
      for _, a in ipairs(argv) do
        if a == "--help" or a == "-h" then
          io.stdout:write("usage: ", usage, "\n", summary, "\n")
          return exit.FINISHED
        end
      end
      local ok, opts, positionals = pcall(M.parse, argv, switches)
      if not ok then return M.bad_usage(opts, usage) end
      if not positionals[1] then return exit.BAD_INPUT, "ecsplay: " .. name .. ": which run? (RUN: a run id, a unique "
        .. "prefix of one, or a journal path; `ecsplay status` lists the runs)\nusage: " .. usage end
      local ok_r, journal = pcall(control.resolve, positionals[1])
      if not ok_r then return exit.BAD_INPUT, "ecsplay: " .. name .. ": " .. errors.describe(journal) end
      local ok_s, st = pcall(control.status, journal)
      if not ok_s then return exit.BAD_INPUT, "ecsplay: " .. name .. ": " .. errors.describe(st) end
      if not ACTIVE[st.state] then
        return exit.BAD_INPUT, string.format("ecsplay: %s: run %s is %s: nothing to %s%s", name, tostring(st.run),
          st.state, name, st.hint and ("; " .. st.hint) or "")
      end
      local ok_c, cmd = pcall(control.send, journal, name, { full = opts.full, as = opts.as })
      if not ok_c then return exit.BAD_INPUT, "ecsplay: " .. name .. ": " .. errors.describe(cmd) end
      local ack = wait_ack(journal, cmd.id, M.ACK_WAIT)
      local result = { run = st.run, command = name, full = opts.full, id = cmd.id, by = control.describe_who(cmd),
        acknowledged = ack ~= nil, effect = ack and ack.effect or nil }
      if opts.log_format == "json" then
        io.stdout:write(json.encode(result), "\n")
      elseif ack then
        io.stdout:write(string.format("%s: %s%s by %s: %s\n", st.run, name, opts.full and " --full" or "",
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
