-- rollout/run.lua Run:step on `ecsplay resume`: a step whose "do" line the journal holds (no
-- "done": the killed run may have made its change) keeps the undo that line recorded, read from
-- the world before the change, and journals no second one read from the world after it (the
-- fleet-bad kill after the canary's UpdateService: the second undo named the crashing revision,
-- and the rollback, newest first, waited on it and never reached the first).
local T = require "harness"
local json = require "ecsplay.json"
local context = require "ecsplay.context"
local journal = require "ecsplay.rollout.journal"
local Run = require "ecsplay.rollout.run"

local BEFORE = { op = "update_service", cluster = "production", service = "svc1-canary",
  taskDefinition = "arn:aws:ecs:us-east-1:123456789012:task-definition/api:1", desiredCount = 0 }
local AFTER = { op = "update_service", cluster = "production", service = "svc1-canary",
  taskDefinition = "arn:aws:ecs:us-east-1:123456789012:task-definition/api:2", desiredCount = 1 }

-- A journal killed after `lines`, resumed as rollout "svc1"; returns the Run.
local function resumed(lines)
  local path = T.tmpdir() .. "/run.jsonl"
  local f = assert(io.open(path, "w"))
  f:write(json.encode { t = "start", run = "r1", group = "r1", name = "svc1", strategy = "canary" }, "\n")
  for _, l in ipairs(lines) do f:write(json.encode(l), "\n") end
  f:close()
  context.resume = { svc1 = journal.read(path) }
  local run = Run.new("canary", {}, { name = "svc1" })
  context.resume = nil
  return run, path
end

local function undo_actions(path)
  local out = {}
  for _, u in ipairs(journal.read(path).undo) do out[#out + 1] = u.action.taskDefinition end
  return out
end

T.test("a step begun before the kill keeps its journaled undo", function()
  local run, path = resumed { { t = "do", key = "scale_canary", desc = "start the canary service", undo = BEFORE } }
  local ran = false
  run:step("scale_canary", "start the canary service", function() ran = true end, AFTER)
  T.ok(ran, "the step runs again (its change may not have been made)")
  T.eq(#run.undo, 1, "one undo on the stack")
  T.eq(run.undo[1].action.taskDefinition, BEFORE.taskDefinition, "the undo read before the change")
  T.eq(undo_actions(path), { BEFORE.taskDefinition }, "the journal holds no second undo")
  T.eq(journal.read(path).done.scale_canary, true, "the step is journaled done")
end)

T.test("a step not begun before the kill records its undo as before", function()
  local run, path = resumed { { t = "do", key = "register", desc = "register", undo = json.null },
    { t = "done", key = "register", result = "api:2" } }
  run:step("scale_canary", "start the canary service", function() end, BEFORE)
  T.eq(#run.undo, 1)
  T.eq(undo_actions(path), { BEFORE.taskDefinition })
end)
