--[[
ecsplay.rollout: the strategies (docs/strategies.md). Each loads on first use.
  canary, linear      rollout/canary.lua      weight steps on an ALB rule, gates, promotion
  rolling             rollout/rolling.lua     ECS's rolling update, watched, circuit breaker
  blue_green          rollout/blue_green.lua  two target groups, test listener, swap
  codedeploy          rollout/codedeploy.lua  CodeDeploy shifts; ecsplay's gates can stop it
  ecs_native          rollout/ecs_native.lua  ECS BLUE_GREEN/LINEAR/CANARY with PAUSE hooks
Each returns a report table, or raises after its rollback (rollout/run.lua).
What they share — the common options, check → prepare → run → report →
guard, version selection — is rollout/strategy.lua.
]]
local errors = require "ecsplay.errors"
local strings = require "ecsplay.util.strings"

local M = {}

-- lazy: each strategy (and the AWS service it drives) loads on first use
local function strategy(name) return require("ecsplay.rollout." .. name) end

function M.canary(o) return strategy("canary").run(o, "canary") end
function M.linear(o) return strategy("canary").linear(o) end
function M.rolling(o) return strategy("rolling").run(o) end
function M.blue_green(o) return strategy("blue_green").run(o) end
function M.codedeploy(o) return strategy("codedeploy").run(o) end
function M.ecs_native(o) return strategy("ecs_native").run(o) end
-- rollout.control(target): steering a running rollout from the playbook (rollout/control.lua)
function M.control(target) return strategy("control").handle(target) end
-- rollout.fleet{ list, run=, limit=, max_failures=, on_failure= }: many rollouts as one (rollout/fleet.lua)
function M.fleet(o) return strategy("fleet").run(o) end

-- rollout.canari{...}: bad input with a did-you-mean (exit 2 while nothing
-- changed), not "attempt to call a nil value".
local NAMES = { "canary", "linear", "rolling", "blue_green", "codedeploy", "ecs_native" }
setmetatable(M, { __index = function(_, k)
  error(errors.new("bad_input", { code = "UnknownStrategy", field = tostring(k),
    message = string.format("ecsplay.rollout has no strategy %q%s", tostring(k),
      strings.did_you_mean(tostring(k), NAMES, { quote = true, list_all = true })) }), 0)
end })

return M
