-- Where the Lua part of start-up goes: every Lua module that `ecsplay -e 'return'` has
-- loaded by the time the chunk runs, re-required 200 times each (its dependencies stay
-- loaded, so each figure is that file's own read + compile + top-level run, warm cache).
--   ecsplay bench/startup_modules.lua
-- Prints "MODULE MICROSECONDS" a line, costliest first.
local clock = require("ecsplay.core").monotonic
local N = 200
-- This file's own requires are not part of start-up: take the list before anything else.
local names = {}
for name in pairs(package.loaded) do
  if (name == "ecsplay" or name:find("^ecsplay%.") or name == "cjson")
     and not name:find("^ecsplay%.core") then
    names[#names + 1] = name
  end
end
local rows = {}
for _, name in ipairs(names) do
  local saved = package.loaded[name]
  local t0 = clock()
  for _ = 1, N do
    package.loaded[name] = nil
    require(name)
  end
  rows[#rows + 1] = { name = name, us = (clock() - t0) / N * 1e6 }
  package.loaded[name] = saved
end
table.sort(rows, function(a, b) return a.us > b.us end)
for _, r in ipairs(rows) do print(string.format("%s %.0f", r.name, r.us)) end
