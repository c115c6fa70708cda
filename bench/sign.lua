-- The signing cost alone: ecsplay.sigv4.sign of the ListClusters request ecsplay sends,
-- in a loop. Prints the mean microseconds per signature of each round, one a line.
--   ecsplay bench/sign.lua [calls=20000] [rounds=5]
local sigv4 = require "ecsplay.aws.sigv4"
local clock = require("ecsplay.core").monotonic
local calls = math.tointeger(tonumber(ecsplay.args.calls or 20000)) or 20000
local rounds = math.tointeger(tonumber(ecsplay.args.rounds or 5)) or 5

local req = {
  method = "POST", url = "http://127.0.0.1:8080/", body = "{}",
  headers = { ["Content-Type"] = "application/x-amz-json-1.1",
    ["X-Amz-Target"] = "AmazonEC2ContainerServiceV20141113.ListClusters",
    ["User-Agent"] = "ecsplay/" .. ecsplay.version },
  region = "us-east-1", service = "ecs",
  access_key = "AKIDSIMULATOR", secret_key = "simulator-secret-key", time = 1795687200,
}
assert(sigv4.sign(req).authorization:find("^AWS4%-HMAC%-SHA256 "))
for _ = 1, 1000 do sigv4.sign(req) end
for _ = 1, rounds do
  local t0 = clock()
  for _ = 1, calls do sigv4.sign(req) end
  print(string.format("%.2f", (clock() - t0) / calls * 1e6))
end
