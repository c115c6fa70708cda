-- The bounded fuzzers of tests/fuzz/ (issue 12), FUZZ_CASES (default 300) seeded cases each:
-- requests to `sim serve`, answers to the client, scenario files, credentials/config files.
-- A Lua test so that `make check-asan` runs them too, through its sanitizer build
-- (ECSPLAY_BIN; the reports it writes per process count as failures). The fuzzers run once,
-- two at a time; each fuzzer's failures are printed above its test. A failure listed in
-- tests/fuzz/known_failures.txt counts as known-failing and does not fail the test.
-- `make fuzz` runs 3000 cases each.
local T = require "harness"

local CASES = tonumber(os.getenv("FUZZ_CASES") or "") or 300
local LIMIT = 270   -- wall seconds for all four (tests/run.sh allows a test file 300)
local out

local function run_once()
  if out then return out end
  local p = assert(io.popen(string.format(
    "timeout -k 5 %d /usr/bin/python3 tests/fuzz/fuzz.py --cases %d 2>&1", LIMIT, CASES)))
  out = p:read("a")
  p:close()
  -- indented, so that tests/run.sh reads only the harness's own closing line
  io.write((out:gsub("([^\n]*)\n", "  %1\n")))
  return out
end

for _, name in ipairs { "serve", "answers", "scenarios", "config" } do
  T.test(string.format("fuzz %s: %d cases, no failure beyond tests/fuzz/known_failures.txt", name, CASES),
    function()
      local text = run_once()
      local n, p, f, k = text:match("\nfuzz " .. name .. "%s+(%d+) cases:%s+(%d+) passed,%s+(%d+) failed,%s+(%d+) known")
      T.ok(n, "fuzz " .. name .. " ended without its counts (timed out or crashed?):\n" .. text:sub(-2000))
      T.eq(tonumber(n), CASES, "fuzz " .. name .. " cases run")
      T.eq(tonumber(f), 0, string.format("fuzz %s: %s passed, %s failed, %s known-failing", name, p, f, k))
    end)
end
