--[[
ecsplay.testing: playbook tests (docs/testing.md). A spec gets a fresh
simulated world, runs a playbook or a strategy in it as the runner would, and
asserts on the result and on the world afterwards.

  testing.run(playbook, args, opts)  → result   (a fresh world unless opts.world)
  testing.world(scenario)            → world    (testing/world.lua)
  world:run(playbook, args)          → result
  world:rollout(fn)                  → result
  result = { code=, report=, reports=, error=, message=, output=, log=, world=, value= }
  testing.step_weights(report), testing.scenario(path), testing.relative(path)
  testing.reset(), testing.configure(opts)   for `ecsplay test` (testing/run.lua)

The suite itself (busted, the output formats) is testing/suite.lua.
]]
local scenario_lib = require "ecsplay.sim.scenario"
local World = require "ecsplay.testing.world"
local run = require "ecsplay.testing.run"

local M = {}

M.configure = run.configure
M.reset = run.reset

function M.world(scenario) return World.new(scenario) end

-- A path relative to the folder of the file that calls this (a spec), so a
-- spec finds its playbook from whichever folder `ecsplay test` runs in.
function M.relative(path)
  local source = debug.getinfo(2, "S").source
  local dir = source:sub(1, 1) == "@" and source:sub(2):match("^(.*)/[^/]*$") or "."
  if path:sub(1, 1) == "/" then return path end
  return dir .. "/" .. path
end

-- A scenario file loaded and checked (a table to change before testing.world(t)).
function M.scenario(path) return scenario_lib.load(path) end

-- The weights of a canary/linear report's steps: { 10, 25, 50, 100 }.
function M.step_weights(report)
  local out = {}
  for i, s in ipairs(report and report.steps or {}) do out[i] = s.weight end
  return out
end

--[[ testing.run(playbook, args, opts): the playbook on a fresh world
     (opts.scenario: a scenario path or table) or in opts.world. ]]
function M.run(path, args, opts)
  opts = opts or {}
  local world = opts.world or World.new(opts.scenario)
  return world:run(path, args)
end

M.World = World
return M
