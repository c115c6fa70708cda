-- The first call to a service loads its generated model (stdlib-lua/ecsplay/aws/models/<service>.lua).
-- Compiling that source is part of the first call's cost; this compares it with loading the
-- same chunk precompiled (string.dump, stripped), 20 times each, warm file cache.
--   ecsplay bench/models.lua  →  "SERVICE SOURCE_BYTES COMPILE_MS BYTECODE_MS" a line
local clock = require("ecsplay.core").monotonic
local N = 20
for _, s in ipairs { "ecs", "elbv2", "cloudwatch", "codedeploy", "sts" } do
  local path = package.searchpath("ecsplay.aws.models." .. s, package.path)
  local f = assert(io.open(path, "rb"))
  local src = f:read("a")
  f:close()
  local t0 = clock()
  for _ = 1, N do assert(load(src, "=" .. path, "t"))() end
  local t_src = (clock() - t0) / N
  local bc = string.dump(assert(load(src, "=" .. path, "t")), true)
  t0 = clock()
  for _ = 1, N do assert(load(bc, "=" .. path, "b"))() end
  local t_bc = (clock() - t0) / N
  print(string.format("%s %d %.2f %.2f", s, #src, t_src * 1e3, t_bc * 1e3))
end
