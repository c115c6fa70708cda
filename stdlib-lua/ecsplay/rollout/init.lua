--[[
ecsplay.rollout: the strategies (PLAYBOOK_API.md §3). Each loads on first use.
  canary, linear      rollout/canary.lua      weight steps on an ALB rule, gates, promotion
  rolling             rollout/rolling.lua     ECS's rolling update, watched, circuit breaker
  blue_green          rollout/blue_green.lua  two target groups, test listener, swap
  codedeploy          rollout/codedeploy.lua  CodeDeploy shifts; ecsplay's gates can stop it
  ecs_native          rollout/ecs_native.lua  ECS BLUE_GREEN/LINEAR/CANARY with PAUSE hooks
Each returns a report table, or raises after its rollback completed.
]]
local M = {}

function M.canary(o) return require("ecsplay.rollout.canary").run(o, "canary") end
function M.linear(o) return require("ecsplay.rollout.canary").linear(o) end
function M.rolling(o) return require("ecsplay.rollout.rolling").run(o) end
function M.blue_green(o) return require("ecsplay.rollout.blue_green").run(o) end
function M.codedeploy(o) return require("ecsplay.rollout.codedeploy").run(o) end
function M.ecs_native(o) return require("ecsplay.rollout.ecs_native").run(o) end

return M
