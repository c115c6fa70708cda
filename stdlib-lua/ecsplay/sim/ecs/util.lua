--[[
Shared helpers of the simulated ECS (sim/ecs/*.lua): look-ups that raise AWS's
errors, identifiers in AWS's layouts, service events, the common shape of
Describe*/List* answers.
No state of its own: everything lives in world.state.ecs (built by sim/ecs/init.lua).
]]
local tables = require "ecsplay.util.tables"
local strings = require "ecsplay.util.strings"

local U = {}

U.MAX_EVENTS = 100

function U.st(world) return world.state.ecs end

--[[ Something about a service changed (a task of it moved on, an API call named it): the
     next tick's scheduler looks at it again (sim/ecs/init.lua's tick visits the services that
     are restless or woken, not all of them). ]]
function U.dirty(st, svc)
  svc.dirty = true
  -- a service created again under its name replaced this one: the tick no longer visits it
  if svc.cluster.services[svc.name] == svc then st.woken[svc.arn] = svc end
end

-- AWS's messages for the common look-up failures (as the real API answers them).
function U.cluster_not_found(world) world:fail("ClusterNotFoundException", "Cluster not found.") end
function U.service_not_found(world) world:fail("ServiceNotFoundException", "Service not found.") end

-- The part of an ARN after its last "/" (util/strings.lua: linear, not the pattern's quadratic).
U.last_segment = strings.last_segment

-- "name", or an ARN whose last path element is the name.
function U.short_name(s)
  if type(s) ~= "string" then return s end
  if s:sub(1, 4) == "arn:" then return strings.last_segment(s) or s end
  return s
end

--[[ The parts of an ECS ARN: its Region, account, resource type and the rest
     ("arn:aws:ecs:R:A:service/C/N" → "R", "A", "service", "C/N"); nil for anything else (a
     name, another service's ARN). The one place ECS ARNs are taken apart for the checks below. ]]
function U.parse_arn(s)
  if type(s) ~= "string" or not s:find("^arn:[^:]+:ecs:") then return nil end
  return s:match("^arn:[^:]+:ecs:([^:]*):([^:]*):([^/]*)/?(.*)$")
end

--[[ ECS refuses an ECS ARN outside the caller's Region and account, whatever the operation,
     before it looks anything up:
     - another Region: InvalidParameterException "Invalid Region in ARN" (RunTask with another
       Region's cluster ARN, aws/aws-cli#3175; DescribeServices,
       aws-samples/ecs-bg-external-controller#9; a task definition ARN, aws/amazon-ecs-cli#821);
     - another account: InvalidParameterException "Identifier is for ACCOUNT. Your accountId is
       CALLER" (DescribeTasks, aws-actions/amazon-ecs-deploy-task-definition#261; another
       account's cluster ARN, teralytics/prometheus-ecs-discovery#95). The world is the caller's
       account (sim/regions.lua picks it by the access key), so world.account is the caller's.
       An ARN with no account at all is left to the look-up (no source says what ECS answers).
     Checked on the input's references: its strings and lists of strings (ECS takes its
     references at the top level of a request). ]]
local function check_scope(world, s)
  local region, account = U.parse_arn(s)
  if not region then return end
  if region ~= world.region then world:fail("InvalidParameterException", "Invalid Region in ARN") end
  if account ~= "" and account ~= world.account then
    world:fail("InvalidParameterException",
      string.format("Identifier is for %s. Your accountId is %s", account, world.account))
  end
end

function U.check_arns(world, input)
  for _, v in pairs(type(input) == "table" and input or {}) do
    if type(v) == "table" then
      for _, x in ipairs(v) do check_scope(world, x) end
    else
      check_scope(world, v)
    end
  end
end

-- The cluster named (or ARN'd) by `ref` ("default" when nil); raises ClusterNotFoundException.
function U.cluster(world, ref)
  local st = U.st(world)
  local name = U.short_name(ref or "default")
  local c = st.clusters[name]
  if not c or c.status == "INACTIVE" then U.cluster_not_found(world) end
  return c
end

--[[ A new-format ARN of a service or task (KIND/CLUSTER/ID) names its cluster; one of another
     cluster than c's is refused as ECS refuses it: InvalidParameterException "Invalid identifier:
     Identifier is for cluster X. Your cluster is Y" (DescribeServices, aws/aws-toolkit-vscode#2915;
     CreateService, docker/compose-cli#2086), rather than looked up by its last part in c.
     Tasks alike: the sources name services, but the message names no resource type and
     DescribeTasks checks a task ARN's account the same way (docs/simulator.md). ]]
local CLUSTER_SCOPED = { service = true, task = true }

function U.check_cluster(world, c, ref)
  local _, _, kind, rest = U.parse_arn(ref)
  local cluster = CLUSTER_SCOPED[kind] and rest:match("^([^/]+)/[^/]+$")
  if cluster and cluster ~= c.name then
    world:fail("InvalidParameterException", string.format(
      "Invalid identifier: Identifier is for cluster %s. Your cluster is %s", cluster, c.name))
  end
end

-- The name of service `ref` (a name, or its ARN in the old or the new format) in cluster c.
function U.service_name(world, c, ref)
  U.check_cluster(world, c, ref)
  return U.short_name(ref)
end

-- The service `ref` in cluster c; with `any` also INACTIVE ones. Raises ServiceNotFoundException.
function U.service(world, c, ref, any)
  local s = c.services[U.service_name(world, c, ref)]
  if not s or (s.status == "INACTIVE" and not any) then U.service_not_found(world) end
  return s
end

-- Services that accept changes must be ACTIVE.
function U.active_service(world, c, ref)
  local s = U.service(world, c, ref, true)
  if s.status ~= "ACTIVE" then world:fail("ServiceNotActiveException", "Service was not ACTIVE.") end
  return s
end

-- Digits for AWS's numeric ids ("ecs-svc/1234567890123456789"): deterministic from world:id.
function U.digits(world, n)
  local hex = world:id(nil, n)
  local out = {}
  for i = 1, n do
    local d = tonumber(hex:sub(i, i), 16) % 10
    if i == 1 and d == 0 then d = 1 end
    out[i] = tostring(d)
  end
  return table.concat(out)
end

function U.uuid(world)
  return world:request_id()
end

-- A deep copy: what an answer hands out must not alias the world's tables.
U.copy = tables.copy

--[[ Appends a service event; a service keeps its latest U.MAX_EVENTS (AWS: "A maximum of 100
     of the latest events are displayed", docs/simulator.md), the oldest falls off. Memory:
     svc.events is flat, oldest first, three slots an event (id, createdAt, message) rather
     than a table each, for the thousands of events of a fleet; U.events_out makes the list
     DescribeServices shows. ]]
function U.event(world, svc, message)
  local ev = svc.events
  local n = #ev
  ev[n + 1], ev[n + 2], ev[n + 3] = U.uuid(world), world.now, string.format("(service %s) %s", svc.name, message)
  n = n + 3
  while n > 3 * U.MAX_EVENTS do
    table.move(ev, 4, n, 1)
    ev[n], ev[n - 1], ev[n - 2] = nil, nil, nil
    n = n - 3
  end
end

-- A service's events as DescribeServices lists them: newest first, { id=, createdAt=, message= }.
function U.events_out(svc)
  local ev, out = svc.events, {}
  for i = #ev - 2, 1, -3 do out[#out + 1] = { id = ev[i], createdAt = ev[i + 1], message = ev[i + 2] } end
  return out
end

-- "(task a) (task b)" for events.
function U.task_list(tasks)
  local parts = {}
  for i, t in ipairs(tasks) do parts[i] = "(task " .. t.id .. ")" end
  return table.concat(parts, " ")
end

-- Alarm state through the simulated CloudWatch, when there is one.
function U.alarm_state(world, name)
  local cw = world.svc.cloudwatch
  if cw and cw.alarm_state then return cw.alarm_state(world, name) end
  return nil
end

-- The first named alarm in ALARM, or nil.
function U.alarm_firing(world, names)
  for _, n in ipairs(names or {}) do
    if U.alarm_state(world, n) == "ALARM" then return n end
  end
  return nil
end

-- include = { "TAGS", ... } on Describe* asks for each resource's tags.
function U.wants_tags(include)
  for _, f in ipairs(include or {}) do if f == "TAGS" then return true end end
  return false
end

-- AWS's bounds on a Describe* list of references, worded as AWS words them ("Services cannot be
-- empty."); `what` is the name AWS uses ("Tasks", "serviceRevisionArns").
function U.check_refs(world, refs, what, max, nonempty)
  if nonempty and #refs == 0 then world:fail("InvalidParameterException", what .. " cannot be empty.") end
  if #refs > max then
    world:fail("InvalidParameterException", what .. " cannot have more than " .. max .. " elements.")
  end
end

--[[ Describe* answer what they find and, for each reference they do not, a failure
     { arn, reason = "MISSING" } rather than an error. find(ref) -> object or nil;
     describe(object) -> its output; missing_arn(ref) -> the ARN to report (the reference
     itself when missing_arn is nil). Returns the outputs and the failures, in reference order. ]]
function U.describe_each(refs, find, describe, missing_arn)
  local out, failures = {}, {}
  for _, ref in ipairs(refs) do
    local x = find(ref)
    if x then out[#out + 1] = describe(x)
    else failures[#failures + 1] = { arn = missing_arn and missing_arn(ref) or ref, reason = "MISSING" } end
  end
  return out, failures
end

--[[ DescribeServices and DescribeTasks: the references in input[field] (AWS's bounds: `what`,
     at most `max`, not empty) to objects of the input's cluster, each found by find(c, ref) and
     described by describe(x, include_tags); one not found is a MISSING failure naming the ARN
     the reference stands for (`kind`: "service" or "task"). ]]
function U.describe_in_cluster(world, input, field, what, max, kind, find, describe)
  local c = U.cluster(world, input.cluster)
  local refs = input[field]
  U.check_refs(world, refs, what, max, true)
  local include_tags = U.wants_tags(input.include)
  return U.describe_each(refs,
    function(ref) return find(c, ref) end,
    function(x) return describe(x, include_tags) end,
    function(ref) return U.ref_arn(world, c, kind, ref) end)
end

-- The ARN a reference to a service or task ("name", "id" or an ARN) in cluster c stands for.
function U.ref_arn(world, c, kind, ref)
  if ref:sub(1, 4) == "arn:" then return ref end
  return world:arn("ecs", kind .. "/" .. c.name .. "/" .. ref)
end

-- nextToken/maxResults paging: the page of `list` and the next token (the offset) or nil.
function U.paginate(list, input)
  local start = tonumber(input.nextToken or "0") or 0
  local max = input.maxResults or 100
  local out = {}
  for i = start + 1, math.min(#list, start + max) do out[#out + 1] = list[i] end
  local token
  if start + max < #list then token = tostring(start + max) end
  return out, token
end

-- A List* answer: the page of `list` under `field`, and nextToken.
function U.list_answer(list, input, field)
  local page, token = U.paginate(list, input)
  return { [field] = page, nextToken = token }
end

return U
