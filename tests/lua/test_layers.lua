-- The layer check (tools/check_layers.lua) fails on a wrong import, a require
-- hidden in a function, and a require cycle, and passes a tree that keeps
-- the rules. make check runs it over the real library (tests/run.sh, style).
local T = require "harness"

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- A library tree in a temporary folder: files = { ["ecsplay/x.lua"] = "source" }.
local function tree(files)
  local root = T.tmpdir()
  for rel, src in pairs(files) do
    os.execute("mkdir -p " .. q((root .. "/" .. rel):match("^(.*)/")))
    local f = assert(io.open(root .. "/" .. rel, "w"))
    f:write(src)
    f:close()
  end
  return root
end

local function check(root)
  return T.sh(q(T.bin) .. " tools/check_layers.lua root=" .. q(root))
end

local CLEAN = {
  ["ecsplay/util/strings.lua"] = "return {}\n",
  ["ecsplay/errors.lua"] = 'local s = require "ecsplay.util.strings"\nreturn {}\n',
  ["ecsplay/aws/call.lua"] = 'local errors = require "ecsplay.errors"\nreturn {}\n',
  ["ecsplay/gate/init.lua"] = 'local aws = require "ecsplay.aws.call"\nreturn {}\n',
}

T.test("a tree that keeps the rules passes", function()
  local out, rc = check(tree(CLEAN))
  T.eq(rc, 0, out)
  T.ok(out:find("3 passed, 0 failed", 1, true), out)
end)

T.test("an import against the layers fails, naming file, line and both layers", function()
  local files = {}
  for k, v in pairs(CLEAN) do files[k] = v end
  files["ecsplay/aws/call.lua"] = 'local errors = require "ecsplay.errors"\nlocal rollout = require "ecsplay.rollout"\nreturn {}\n'
  local out, rc = check(tree(files))
  T.eq(rc, 1, out)
  T.ok(out:find("ecsplay/aws/call.lua:2: ecsplay.aws.call (layer aws) may not require ecsplay.rollout (layer rollout)", 1, true), out)
  T.ok(out:find("1 failed", 1, true), out)
end)

T.test("the closed kernel imports nothing above it", function()
  local files = {}
  for k, v in pairs(CLEAN) do files[k] = v end
  files["ecsplay/util/strings.lua"] = 'local e = require "ecsplay.errors"\nreturn {}\n'
  local out, rc = check(tree(files))
  T.eq(rc, 1, out)
  T.ok(out:find("(layer util) may not require ecsplay.errors (layer base)", 1, true), out)
end)

T.test("a require inside a function needs a reason", function()
  local files = {}
  for k, v in pairs(CLEAN) do files[k] = v end
  files["ecsplay/gate/init.lua"] = 'local M = {}\nfunction M.f()\n  return require "ecsplay.aws.call"\nend\nreturn M\n'
  local out, rc = check(tree(files))
  T.eq(rc, 1, out)
  T.ok(out:find("ecsplay/gate/init.lua:3: require of ecsplay.aws.call inside a block", 1, true), out)
  files["ecsplay/gate/init.lua"] = 'local M = {}\nfunction M.f()\n  return require "ecsplay.aws.call" -- lazy: only on first use\nend\nreturn M\n'
  out, rc = check(tree(files))
  T.eq(rc, 0, out)
end)

T.test("a require cycle fails", function()
  local files = {}
  for k, v in pairs(CLEAN) do files[k] = v end
  files["ecsplay/sim/a.lua"] = 'local b = require "ecsplay.sim.b"\nreturn {}\n'
  files["ecsplay/sim/b.lua"] = 'local a = require "ecsplay.sim.a"\nreturn {}\n'
  local out, rc = check(tree(files))
  T.eq(rc, 1, out)
  T.ok(out:find("require cycle: ecsplay.sim.a -> ecsplay.sim.b -> ecsplay.sim.a", 1, true), out)
end)

T.test("a module in no layer is named", function()
  local files = {}
  for k, v in pairs(CLEAN) do files[k] = v end
  files["ecsplay/misc/thing.lua"] = "return {}\n"
  local out, rc = check(tree(files))
  T.eq(rc, 1, out)
  T.ok(out:find("module ecsplay.misc.thing is in no layer", 1, true), out)
end)
