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
      resumed run reuses the one it registered: from the journal, or, when
      the run was stopped before the answer came, by the run-id tag that a
      journaled run puts on it); rollouts of this process that would register
      the same revision share one (below)
]]
local errors = require "ecsplay.errors"
local ecs = require "ecsplay.ecs"
local sched = require "ecsplay.sched"
local tables = require "ecsplay.util.tables"
local aws = require "ecsplay.aws.call"
local batch = require "ecsplay.aws.batch"
local options = require "ecsplay.rollout.options"
local ecs_util = require "ecsplay.rollout.ecs_util"

local M = {}

-- rollouts of one fleet that start together read the same revisions: one call (aws/batch.lua)
local ecs_reads = batch.face "ecs"

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
  local ok, res = pcall(ecs_reads.describe_task_definition, { taskDefinition = name })
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
    v.definition = ecs_reads.describe_task_definition({ taskDefinition = base_td }).taskDefinition
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

-- The tag a journaled run puts on the revision it registers, so that a run
-- resumed after a kill between RegisterTaskDefinition and its answer finds
-- that revision instead of registering another (the API has no client token).
M.RUN_TAG = "ecsplay:run"

--[[ The newest revisions of base_td's family (at most `scan`) tagged with
     run id `id`: the revision's ARN, or nil. ]]
function M.registered_by(base_td, id, scan)
  local family = base_td:match("task%-definition/([^:]+)") or base_td:match("^([^:]+)")
  local list = ecs.list_task_definitions { familyPrefix = family, sort = "DESC", maxResults = scan or 10 }
  for _, arn in ipairs(list.taskDefinitionArns or {}) do
    if arn:match("task%-definition/([^:]+)") == family then
      local res = ecs.describe_task_definition { taskDefinition = arn, include = { "TAGS" } }
      for _, tag in ipairs(res.tags or {}) do
        if tag.key == M.RUN_TAG and tag.value == id then return arn end
      end
    end
  end
  return nil
end

--[[ Shared revisions. Rollouts of one process that would register the same revision (the same
     family and content: a fleet of services of one family deploying one image) register it
     once and all deploy it: a revision never changes once registered, so theirs would differ
     only in number, and RegisterTaskDefinition's bucket (20 at once, then one a second:
     aws/ratelimit.lua) would otherwise spread a thousand such rollouts over sixteen minutes.
     Per client configuration and session (another Region, account or world registers its
     own), for SHARE_FOR seconds; the revision carries the tags of the rollout that
     registered it (a journaled run's run-id tag), so a resumed rollout that finds no revision
     with its own run id registers one of its own. A registration that fails is shared by
     no one: each waiting rollout then tries its own. ]]
local SHARE_FOR = 3600
local shared = setmetatable({}, { __mode = "k" }) -- client options → session → key → entry

local function shared_entries()
  local opts = aws.client_settings().opts
  local by_client = shared[opts]
  if not by_client then
    by_client = setmetatable({}, { __mode = "k" })
    shared[opts] = by_client
  end
  local sess = aws.current_session() or by_client
  local entries = by_client[sess]
  if not entries then
    entries = {}
    by_client[sess] = entries
  end
  return entries
end

-- → arn, registered_here (false: another rollout's revision). An entry is the registering
-- task (its result, once done, is at hand to every later rollout) and when it started.
local function register_shared(params)
  local content = tables.shallow_copy(params)
  content.tags = nil
  local key = tables.canonical(content)
  local entries = shared_entries()
  local entry = entries[key]
  while entry and sched.now() - entry.at <= SHARE_FOR do
    local ok, arn = entry.task:result()
    if ok then return arn, false end
    -- it failed: shared by no one (another waiter may have started the next try already)
    if entries[key] == entry then entries[key] = nil end
    entry = entries[key]
  end
  -- a task of its own, so that rollouts waiting for it are not stopped by this one's interruption
  entry = { at = sched.now(), task = sched.spawn(function()
    return ecs.register_task_definition(params).taskDefinition.taskDefinitionArn
  end) }
  entries[key] = entry
  local ok, arn = entry.task:result()
  if not ok then
    if entries[key] == entry then entries[key] = nil end
    error(arn, 0)
  end
  return arn, true
end

--[[ A new revision of the described v.definition with v.image on v.container, tagged `tags`
     (or the same revision another rollout of this process registered: above): its ARN, and
     whether this rollout registered it. A revision never changes once registered, so the
     definition resolve read is the one to copy (no second DescribeTaskDefinition). ]]
local function register_with_image(v, tags)
  local td = tables.copy(v.definition)
  local target = ecs_util.find_container(td, v.container)
  target.image = v.image
  local params = ecs.reuse(td)
  params.tags = tags
  return register_shared(params)
end

function M.deploy(run, v, base_td)
  if v.arn then return v.arn end
  return run:step("register", "register the new task definition", function()
    if run:started("register") then
      local arn = M.registered_by(base_td, run.id)
      if arn then
        run:log("info", "register", "reusing " .. ecs_util.short(arn) .. ", registered before the run was stopped")
        return arn
      end
    end
    local tags = run.journal and { { key = M.RUN_TAG, value = run.id } } or nil
    local arn, registered = register_with_image(v, tags)
    if registered then
      run:log("info", "register", "registered " .. ecs_util.short(arn) .. " with image " .. v.image)
    else
      run:log("info", "register", "reusing " .. ecs_util.short(arn) .. " with image " .. v.image
        .. ", the same revision another rollout of this process registered")
    end
    return arn
  end)
end

return M
