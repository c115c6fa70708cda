--[[
What the parts of the simulated CodeDeploy share: the state and its
constants, the look-ups that raise AWS's errors, and the views of the other
simulated services a deployment works through (ECS task sets, ELBv2
listeners), reached as world.svc.X so tests can stand in for them.

State (world.state.codedeploy): apps (name -> { groups = name -> group }),
configs (name -> deployment config), deployments (id -> deployment),
order (ids in creation order), active (the deployments still moving).
]]
local M = {}

M.EVENTS = { "BeforeInstall", "Install", "AfterInstall", "AllowTestTraffic",
             "AfterAllowTestTraffic", "BeforeAllowTraffic", "AllowTraffic", "AfterAllowTraffic" }
M.TERMINAL = { Succeeded = true, Failed = true, Stopped = true }
M.START_DELAY = 1            -- seconds between CreateDeployment and InProgress
M.MINUTE = 60

-- The predefined ECS configurations (AWS's list; creation time is arbitrary but fixed).
local PREDEFINED = {
  { "CodeDeployDefault.ECSAllAtOnce", { type = "AllAtOnce" } },
  { "CodeDeployDefault.ECSLinear10PercentEvery1Minutes",
    { type = "TimeBasedLinear", timeBasedLinear = { linearPercentage = 10, linearInterval = 1 } } },
  { "CodeDeployDefault.ECSLinear10PercentEvery3Minutes",
    { type = "TimeBasedLinear", timeBasedLinear = { linearPercentage = 10, linearInterval = 3 } } },
  { "CodeDeployDefault.ECSCanary10Percent5Minutes",
    { type = "TimeBasedCanary", timeBasedCanary = { canaryPercentage = 10, canaryInterval = 5 } } },
  { "CodeDeployDefault.ECSCanary10Percent15Minutes",
    { type = "TimeBasedCanary", timeBasedCanary = { canaryPercentage = 10, canaryInterval = 15 } } },
}
local PREDEFINED_TIME = 1543190400 -- 2018-11-26, when ECS blue/green arrived

function M.state(world) return world.state.codedeploy end

-- A fresh state with the predefined deployment configurations.
function M.new_state()
  local st = { apps = {}, configs = {}, deployments = {}, order = {}, active = {} }
  for i, p in ipairs(PREDEFINED) do
    st.configs[p[1]] = {
      deploymentConfigId = string.format("00000000-0000-4000-8000-%012d", i),
      deploymentConfigName = p[1],
      createTime = PREDEFINED_TIME,
      computePlatform = "ECS",
      trafficRoutingConfig = p[2],
      predefined = true,
    }
  end
  return st
end

function M.contains(list, v)
  for _, x in ipairs(list or {}) do if x == v then return true end end
  return false
end

-- An id in AWS's UUID layout, deterministic from world:id.
function M.uuid(world)
  local h = world:id(nil, 32)
  return string.format("%s-%s-%s-%s-%s", h:sub(1, 8), h:sub(9, 12), h:sub(13, 16), h:sub(17, 20), h:sub(21, 32))
end

---------------------------------------------------------------- look-ups (API errors)

-- A name the request must give: raises `code` ("...NameRequiredException") when it is nil or empty.
function M.required(world, value, code, message)
  if value == nil or value == "" then world:fail(code, message) end
  return value
end

--[[ A look-up of a required name in the state table `index`: raises `required_code` when the
     name is missing, `missing_code` with `missing` and the name when nothing has it. ]]
local function getter(index, required_code, required_message, missing_code, missing)
  return function(world, name)
    M.required(world, name, required_code, required_message)
    local x = M.state(world)[index][name]
    if not x then world:fail(missing_code, missing .. name) end
    return x
  end
end

M.get_app = getter("apps", "ApplicationNameRequiredException", "The application name is required.",
  "ApplicationDoesNotExistException", "No application found for name: ")
M.get_config = getter("configs", "DeploymentConfigNameRequiredException", "The deployment configuration name is required.",
  "DeploymentConfigDoesNotExistException", "No deployment configuration found for name: ")

function M.get_group(world, app, name)
  M.required(world, name, "DeploymentGroupNameRequiredException", "The deployment group name is required.")
  local g = app.groups[name]
  if not g then
    world:fail("DeploymentGroupDoesNotExistException",
      "No Deployment Group found for name: " .. name .. " (application " .. app.applicationName .. ")")
  end
  return g
end

function M.get_deployment(world, id)
  M.required(world, id, "DeploymentIdRequiredException", "The deployment ID is required.")
  if not id:match("^d%-[%u%d]+$") then
    world:fail("InvalidDeploymentIdException", "Specified DeploymentId is not in the valid format (d- followed by upper-case letters and digits): " .. id)
  end
  local d = M.state(world).deployments[id]
  if not d then world:fail("DeploymentDoesNotExistException", "The deployment " .. id .. " could not be found.") end
  return d
end

---------------------------------------------------------------- the deployment's own errors

--[[ An error of the deployment itself (not of an API call), with a CodeDeploy error code
     (ECS_UPDATE_ERROR, ...): raised inside the deployment flow and caught by its driver
     (flow.lua's step), which fails the deployment with it. It never leaves the simulator. ]]
function M.abort(code, message)
  error({ deploy_error = true, code = code, message = message }, 0)
end

-- Runs fn; a simulator error from another service becomes a deployment error with `code`.
function M.attempt(world, code, what, fn, ...)
  local ok, err = pcall(fn, ...)
  if ok then return err end
  if world:is_error(err) then M.abort(code, what .. " failed: " .. err.code .. ": " .. err.message) end
  error(err, 0)
end

---------------------------------------------------------------- cross-service views

function M.elbv2(world)
  local e = world.svc.elbv2
  if not e then M.abort("ELASTIC_LOAD_BALANCING_INVALID", "no load balancing service in this world") end
  return e
end

function M.ecs(world)
  local e = world.svc.ecs
  if not e then M.abort("INVALID_ECS_SERVICE", "no ECS service in this world") end
  return e
end

function M.tg_arn_of(tg)
  return tg.TargetGroupArn or tg.arn or tg.targetGroupArn
end

-- The ECS service as DescribeServices shows it, or nil when it is missing or not ACTIVE.
function M.describe_service(world, cluster, service)
  local out = M.ecs(world).ops.DescribeServices(world, { cluster = cluster, services = { service } }, "codedeploy")
  local svc = out and out.services and out.services[1]
  if not svc or (svc.status and svc.status ~= "ACTIVE") then return nil end
  return svc
end

-- The task set of a described service that `ref` ({ arn=, id= }) names.
function M.find_task_set(svc, ref)
  if not (svc and ref) then return nil end
  for _, ts in ipairs(svc.taskSets or {}) do
    if ts.taskSetArn == ref.arn or (ref.id and ts.id == ref.id) then return ts end
  end
  return nil
end

return M
