-- ecsplay.util.strings.last_segment: an ARN's last path element in linear time, the same
-- answer as the pattern it replaced, s:match("([^/]+)$"), whose cost grows with the square
-- of the first segment's length (it restarts at every byte and backtracks each time).
local T = require "harness"
local strings = require "ecsplay.util.strings"

local function by_pattern(s) return s:match("([^/]+)$") end

T.test("last_segment: ARNs, names and the edge cases answer as the pattern does", function()
  local cases = {
    ["arn:aws:ecs:us-east-1:123456789012:service/prod/api"] = "api",
    ["arn:aws:ecs:us-east-1:123456789012:cluster/prod"] = "prod",
    ["arn:aws:iam::123456789012:role/path/to/deployer"] = "deployer",
    ["api"] = "api",
    ["a/b"] = "b",
    ["/b"] = "b",
    ["a/"] = false,
    ["/"] = false,
    [""] = false,
    ["a//b"] = "b",
    ["a/b//"] = false,
  }
  for s, want in pairs(cases) do
    T.eq(strings.last_segment(s), want or nil, string.format("%q", s))
    T.eq(strings.last_segment(s), by_pattern(s), string.format("%q as the pattern", s))
  end
end)

T.test("last_segment: random strings of '/', 'a', ':' and '.' agree with the pattern", function()
  local alphabet = { "/", "a", ":", ".", "/", "b" }
  local rng = math.random
  math.randomseed(20261207)
  for _ = 1, 5000 do
    local parts = {}
    for i = 1, rng(0, 24) do parts[i] = alphabet[rng(#alphabet)] end
    local s = table.concat(parts)
    T.eq(strings.last_segment(s), by_pattern(s), string.format("%q", s))
  end
end)
