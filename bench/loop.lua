-- What the per-call bench loops share (bench/ecsplay_calls.lua, bench/transport_calls.lua):
-- their positive-integer arguments and the timed rounds bench/run.sh reads.
local clock = require("ecsplay.core").monotonic

local M = {}

-- args[name] as a positive integer, default when absent; a bad value stops the bench.
function M.count(args, name, default)
  local v = args[name] and math.tointeger(tonumber(args[name])) or default
  if not v or v < 1 then error(("bench: %s=%s must be a positive integer"):format(name, args[name]), 0) end
  return v
end

-- rounds × calls of fn(); prints per round the mean wall-clock and CPU (this process)
-- microseconds per call, "WALL CPU" a line.
function M.rounds(calls, rounds, fn)
  for _ = 1, rounds do
    local t0, c0 = clock(), os.clock()
    for _ = 1, calls do fn() end
    print(string.format("%.2f %.2f", (clock() - t0) / calls * 1e6, (os.clock() - c0) / calls * 1e6))
  end
end

return M
