-- aws/batch.lua under a signal: a SIGTERM that lands while a batch waits for the
-- instant's other readers reaches the caller (its read fails "interrupted"), but the
-- batch is not left open with the interruption as its answer: a rollback's read of
-- the same kind right after it is sent and answered. (Before, every later read of
-- that kind failed "interrupted" and the rollback ended with exit 3, not 143.)
local T = require "harness"

local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local CODE = [[
local batch = require "ecsplay.aws.batch"
local pid = io.popen("echo $PPID"):read("l")
local function read() return batch.call("ecs", "DescribeServices", { cluster = "production", services = { "api" } }) end
local t = ecsplay.spawn(function()
  os.execute("kill -TERM " .. pid)
  local ok, e = pcall(read)
  print("first=" .. tostring(ok) .. " " .. tostring(ok or e.code))
  local ok2, e2 = pcall(read)
  print("second=" .. tostring(ok2) .. " " .. tostring(ok2 and #e2.services or e2.code))
end)
-- wait for the task through the signal (as ecsplay.parallel does), then end with the signal
local interrupted
while not t.done do
  local ok, e = pcall(t.join, t)
  if not ok then interrupted = interrupted or e end
end
if interrupted then error(interrupted, 0) end
]]

T.test("a signal during a batch's wait fails that read only; the next read of its kind is answered", function()
  local dir = T.tmpdir()
  local path = dir .. "/signal.lua"
  local f = assert(io.open(path, "w"))
  f:write(CODE)
  f:close()
  local out, rc = T.sh(T.bin .. " --simulate " .. q(path) .. " 2>&1")
  os.execute("rm -rf " .. q(dir))
  T.ok(out:find("first=false Interrupted", 1, true), out)
  T.ok(out:find("second=true 1", 1, true), out)
  T.eq(rc, 143, out)
end)

