--[[
How a failed run ends: its exit code (one table, by error kind) and its last
line on standard error.

  0        finished
  1        failed, and every rollback completed (any error the table below
           does not name: an AWS error, a gate, a Lua error, kind "rollout")
  2        bad usage or input and nothing was changed: kinds bad_input,
           validation, config, scenario (a missing module is bad_input with
           code ModuleNotFound) -- only while no mutating AWS call was made
  3        a rollback failed (kind "rollback", or an on_abort handler failed):
           the message lists what is left in a mixed state
  130/143  interrupted by SIGINT/SIGTERM (kind "interrupted", signal 2/15, or
           kind "rollout" whose cause is one), after the rollback completed

docs/errors.md explains the same to playbook authors.
]]
local errors = require "ecsplay.errors"
local log = require "ecsplay.log"

local M = {}

M.FINISHED, M.FAILED, M.BAD_INPUT, M.ROLLBACK_FAILED = 0, 1, 2, 3
M.BY_SIGNAL = { [2] = 130, [15] = 143 }

-- kind → exit code. unchanged = true: only while nothing was changed (no
-- mutating AWS call), else the run failed like any other (1).
local BY_KIND = {
  bad_input = { code = M.BAD_INPUT, unchanged = true },
  validation = { code = M.BAD_INPUT, unchanged = true },
  config = { code = M.BAD_INPUT, unchanged = true },
  scenario = { code = M.BAD_INPUT, unchanged = true },
  rollback = { code = M.ROLLBACK_FAILED },
  interrupted = { by_signal = true },
  rollout = { by_cause = true },
}
M.BY_KIND = BY_KIND

-- Codes whose failure shows the (user's) traceback like a Lua error does:
-- a require that found nothing is a mistake in the code, and the trace shows
-- which file asked for the module.
local TRACE_CODES = { ModuleNotFound = true }

-- How many requests for operations that may change something were sent
-- (aws.call counts them; 0 when the AWS client was never loaded).
function M.mutations()
  local aws = package.loaded["ecsplay.aws.call"]
  return aws and aws.stats and aws.stats.mutating_calls or 0
end

local function interrupted_code(e)
  if errors.is(e, "interrupted") then return M.BY_SIGNAL[e.signal] end
end

-- The exit code for error value `err` (any value a playbook can raise).
function M.code_for(err)
  if not errors.is_error(err) then return M.FAILED end
  local rule = BY_KIND[err.kind]
  if not rule then return M.FAILED end
  if rule.by_signal then return interrupted_code(err) or M.FAILED end
  if rule.by_cause then return interrupted_code(err.cause) or M.FAILED end
  if rule.unchanged and M.mutations() > 0 then return M.FAILED end
  return rule.code
end

-- "what is left" of a failed rollback, one entry per line.
local function left_lines(left)
  if type(left) ~= "table" or errors.is_error(left) then return { errors.describe(left) } end
  local out = {}
  for _, l in ipairs(left) do out[#out + 1] = errors.describe(l) end
  return out
end

--[[ A frame's name as Lua's own traceback gives it: a module function's
     dotted name, else how it was called, else what it is. ]]
local function frame_name(info)
  if info.func then
    for modname, mod in pairs(package.loaded) do
      if type(mod) == "table" then
        for k, v in pairs(mod) do
          if v == info.func and type(k) == "string" then
            return "function '" .. (modname == "_G" and k or (modname .. "." .. k)) .. "'"
          end
        end
      end
    end
  end
  if info.namewhat ~= "" then return info.namewhat .. " '" .. tostring(info.name) .. "'" end
  if info.what == "main" then return "main chunk" end
  if info.what ~= "C" then return string.format("function <%s:%d>", info.short_src, info.linedefined) end
  return "?"
end

--[[ A traceback from `level` up. With `user_only`, frames of ecsplay's own
     files (under `stdlib`) and of C functions are left out: a playbook's
     author sees the frames of the playbook and its team libraries.
     nil when no frame is left to show. ]]
local function traceback(level, stdlib, user_only)
  local lines = { "stack traceback:" }
  local own = "@" .. (stdlib or "\0") .. "/"
  while true do
    local info = debug.getinfo(level + 1, "Slnft")
    if not info then break end
    level = level + 1
    local skip = user_only and (info.what == "C" or info.source:sub(1, #own) == own)
    if not skip then
      local line = info.currentline > 0 and (info.currentline .. ":") or ""
      lines[#lines + 1] = string.format("\t%s:%s in %s", info.short_src, line, frame_name(info))
      if info.istailcall then lines[#lines + 1] = "\t(...tail calls...)" end
    end
  end
  if #lines == 1 then return nil end
  return table.concat(lines, "\n")
end

--[[ capture(opts, all_frames) → a message handler for xpcall: keeps the
     error, the first frame in user code (so the last line can say file:line
     for error objects, which carry no position) and a traceback (the user's
     frames; every frame with -v or all_frames, for failures with no user
     code such as `sim serve`'s). ]]
-- An error object already captured where user code raised it (`ecsplay resume` runs the
-- playbook under a capture and raises its error again from ecsplay's own code) → that capture.
local captured = setmetatable({}, { __mode = "k" })

function M.capture(opts, all_frames)
  local stdlib = opts and opts.stdlib
  local verbose = all_frames or (opts and (tonumber(opts.verbosity) or 0) > 0)
  local own = "@" .. (stdlib or "\0") .. "/"
  return function(err)
    local where
    -- error() / error(nil): a text that says so, placed like an error object (no position of its own)
    local no_value = err == nil
    err = errors.caught(err)
    if type(err) == "table" or no_value then
      for level = 2, 40 do
        local info = debug.getinfo(level, "Sl")
        if not info then break end
        if info.currentline and info.currentline > 0 and info.source:sub(1, #own) ~= own then
          where = info.short_src .. ":" .. info.currentline
          break
        end
      end
      if not where and type(err) == "table" and captured[err] then return captured[err] end
    end
    local failure = { err = err, where = where, traceback = traceback(2, stdlib, not verbose) }
    -- only objects: a string key (error(nil)'s text) would never leave the weak table, and a
    -- later error() elsewhere would be placed where the first was raised
    if where and type(err) == "table" then captured[err] = failure end
    return failure
  end
end

--[[ outcome(failure, rollback_failures, opts) → exit code, the last line.
     failure: what capture() returned; rollback_failures: the runner's own
     undo failures (ecsplay.on_abort handlers, see ecsplay.undo). ]]
function M.outcome(failure, rollback_failures, opts)
  local err = failure.err
  local text = errors.describe(err, { code = true })
  if failure.where and not text:find(failure.where, 1, true) then
    text = failure.where .. ": " .. text
  end
  local code = M.code_for(err)
  local left = {}
  for _, f in ipairs(rollback_failures or {}) do left[#left + 1] = f.text end
  if code == M.ROLLBACK_FAILED and type(err) == "table" and err.left ~= nil then
    for _, l in ipairs(left_lines(err.left)) do left[#left + 1] = l end
  end
  if #left > 0 then
    code = M.ROLLBACK_FAILED
    text = text .. "\nrollback FAILED; what may be left in a mixed state:\n  " .. table.concat(left, "\n  ")
  end
  -- a Lua error is a bug to find: show where. Error objects (AWS, gates,
  -- rollbacks) already say what happened; their trace is for -v.
  local structured = type(err) == "table" and (errors.is_error(err) or err.code ~= nil)
  local verbose = opts and (tonumber(opts.verbosity) or 0) > 0
  if (not structured or TRACE_CODES[err.code] or verbose) and failure.traceback then
    text = text .. "\n" .. failure.traceback
  end
  return code, "ecsplay: " .. log.redact(text)
end

return M
