-- ECS: every operation of the model as ecs.<snake_name>{...}, plus ecs.reuse.
local tables = require "ecsplay.util.tables"
local model = require "ecsplay.aws.model"
local service = require "ecsplay.aws.service"

local M = {}

-- Fields DescribeTaskDefinition returns that RegisterTaskDefinition does not take.
local RESPONSE_ONLY = { "taskDefinitionArn", "revision", "status", "requiresAttributes",
  "compatibilities", "registeredAt", "registeredBy", "deregisteredAt" }

-- ecs.reuse(td) → a copy of a described task definition that register_task_definition
-- accepts: response-only fields dropped, only members of its input shape kept.
function M.reuse(td)
  if type(td) ~= "table" then
    error("ecs.reuse: expected a task definition table (describe_task_definition{...}"
      .. ".taskDefinition), got " .. type(td), 2)
  end
  local input = model.input_shape(model.load("ecs"), "RegisterTaskDefinition")
  local drop = {}
  for _, k in ipairs(RESPONSE_ONLY) do drop[k] = true end
  local out = {}
  for k, v in pairs(td) do
    if not drop[k] and input.members[k] then out[k] = tables.copy(v) end
  end
  return out
end

return service.build("ecs", M)
