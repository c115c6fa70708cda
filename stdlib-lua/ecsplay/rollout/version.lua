--[[
What a rollout deploys: one rule for every strategy.

  image = "repo/api:v2"    a new revision of the task definition the service
                           runs now, with this image on `container`
  task_definition = "api" | "api:7" | ARN
                           an existing revision (a family means its latest
                           ACTIVE revision), resolved to its ARN before any
                           change; from then on only ARNs are compared
  container = "api"        the container that gets the image (default: the
                           first, or the one the strategy names, e.g. the
                           load balancer's for CodeDeploy); when known it must
                           exist in the task definition

Exactly one of image and task_definition: both, or neither, is bad input
(exit 2) before anything is looked up or changed.

  version.check(strategy, o)                       → v   (option check)
  version.resolve(strategy, v, base_td, default)   before any change: fills
      v.arn (task_definition's ARN), v.definition (the task definition
      deployed, or the one the new revision is made from), v.container and
      v.container_definition (when a container is named)
  version.deploy(run, v, base_td)                  → the ARN to deploy: v.arn,
      or a new revision registered as the journaled step "register" (a
      resumed run reuses the one it registered)
]]
local errors = require "ecsplay.errors"
local ecs = require "ecsplay.ecs"
local options = require "ecsplay.rollout.options"
local ecs_util = require "ecsplay.rollout.ecs_util"

local M = {}

-- The options this rule reads (every strategy takes them).
M.OPTIONS = { "image", "task_definition", "container" }

function M.check(strategy, o)
  local v = {
    image = options.string(strategy, o, "image"),
    task_definition = options.string(strategy, o, "task_definition"),
    container = options.string(strategy, o, "container"),
  }
  if v.image and v.task_definition then
    options.bad(strategy, "image", "give image= (a new image on the current task definition) or "
      .. "task_definition= (an existing revision), not both")
  end
  if not v.image and not v.task_definition then
    options.bad(strategy, "image", "required: the new container image (or task_definition = a family, "
      .. "family:revision or ARN)")
  end
  return v
end

local function describe_given(strategy, name)
  local ok, res = pcall(ecs.describe_task_definition, { taskDefinition = name })
  if ok then return res.taskDefinition end
  if errors.is(res, "ClientException") then
    options.bad(strategy, "task_definition", "task definition `" .. name .. "` does not exist")
  end
  error(res, 0)
end

--[[ Looks the version up (see the file comment). base_td: the ARN the
     service (or the side receiving the new version) runs now. ]]
function M.resolve(strategy, v, base_td, default_container)
  if v.task_definition then
    v.definition = describe_given(strategy, v.task_definition)
    v.arn = v.definition.taskDefinitionArn
  else
    v.definition = ecs.describe_task_definition({ taskDefinition = base_td }).taskDefinition
  end
  local name = v.container or default_container
  if name then
    local found, missing = ecs_util.find_container(v.definition, name)
    if not found then options.bad(strategy, "container", missing) end
    v.container_definition = found
  end
  v.container = name
  return v
end

function M.deploy(run, v, base_td)
  if v.arn then return v.arn end
  return run:step("register", "register the new task definition", function()
    local arn = ecs_util.register_with_image(base_td, v.image, v.container, "container")
    run:log("info", "register", "registered " .. ecs_util.short(arn) .. " with image " .. v.image)
    return arn
  end)
end

return M
