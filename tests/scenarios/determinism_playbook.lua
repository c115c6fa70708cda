--[[
A fixed set of calls, then a canonical JSON summary of the world on one line starting with
"SUMMARY ". Runs two ways that must print the same line (tests/py/test_boto3_stories.py):
  ecsplay --simulate=tests/scenarios/determinism.lua tests/scenarios/determinism_playbook.lua
  ecsplay --endpoint-url URL --region us-east-1 tests/scenarios/determinism_playbook.lua sim=URL
       (against `ecsplay sim serve --scenario tests/scenarios/determinism.lua`; time moves
        through POST URL/_sim/advance instead of ecsplay.sleep)
]]
local ecs = require "ecsplay.ecs"
local elbv2 = require "ecsplay.elbv2"
local cloudwatch = require "ecsplay.cloudwatch"

local sim_url = ecsplay.args.sim

local function sim_get(path)
  local r, err = ecsplay.http.request { method = "GET", url = sim_url .. path }
  assert(r and r.status == 200, "GET " .. path .. " failed: " .. tostring(err or (r and r.body)))
  return ecsplay.json.decode(r.body)
end

-- simulated "now": the virtual clock in process, the server's clock over HTTP
local function now()
  if ecsplay.simulating() then return ecsplay.now() end
  return sim_get("/_sim/time").now
end

local function advance(seconds)
  if ecsplay.simulating() then return ecsplay.sleep(seconds) end
  local r, err = ecsplay.http.request { method = "POST", url = sim_url .. "/_sim/advance",
    body = { seconds = seconds } }
  assert(r and r.status == 200, "POST /_sim/advance failed: " .. tostring(err or (r and r.body)))
end

-- Canonical JSON: sorted keys, integers without decimals, floats rounded to 6 places.
local function encode(v)
  local t = type(v)
  if t == "table" then
    if #v > 0 or next(v) == nil then
      local parts = {}
      for i = 1, #v do parts[i] = encode(v[i]) end
      return "[" .. table.concat(parts, ",") .. "]"
    end
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = tostring(k) end
    table.sort(keys)
    local parts = {}
    for i, k in ipairs(keys) do parts[i] = string.format("%q:%s", k, encode(v[k])) end
    return "{" .. table.concat(parts, ",") .. "}"
  elseif t == "number" then
    if math.type(v) == "integer" or v == math.floor(v) then return string.format("%d", math.floor(v)) end
    return string.format("%.6f", v)
  elseif t == "string" then return string.format("%q", v)
  end
  return tostring(v)
end

local start = now()

-- 1. the weighted rule: 70 / 30
local lb = elbv2.describe_load_balancers { Names = { "web" } }.LoadBalancers[1]
local listeners = elbv2.describe_listeners { LoadBalancerArn = lb.LoadBalancerArn }.Listeners
table.sort(listeners, function(a, b) return a.Port < b.Port end)
local prod = listeners[1]
local tg = {}
local tg_name = {}
for _, t in ipairs(elbv2.describe_target_groups {}.TargetGroups) do
  tg[t.TargetGroupName] = t
  tg_name[t.TargetGroupArn] = t.TargetGroupName
end
local rule
for _, r in ipairs(elbv2.describe_rules { ListenerArn = prod.ListenerArn }.Rules) do
  if r.Priority == "10" then rule = r end
end
elbv2.modify_rule { RuleArn = rule.RuleArn, Actions = { { Type = "forward", ForwardConfig = { TargetGroups = {
  { TargetGroupArn = tg["api-stable"].TargetGroupArn, Weight = 70 },
  { TargetGroupArn = tg["api-canary"].TargetGroupArn, Weight = 30 },
} } } } }

-- 2. the canary gets a flaky image (5xx once it has >= 25% of the traffic), 2 tasks
local td = ecs.describe_task_definition { taskDefinition = "api:1" }.taskDefinition
local flaky = ecs.reuse(td)
flaky.containerDefinitions[1].image = "api:flaky"
local flaky_arn = ecs.register_task_definition(flaky).taskDefinition.taskDefinitionArn
ecs.update_service { cluster = "production", service = "api-canary", taskDefinition = flaky_arn, desiredCount = 2 }

-- 3. the stable service rolls to api:v2
local v2 = ecs.reuse(td)
v2.containerDefinitions[1].image = "api:v2"
local v2_arn = ecs.register_task_definition(v2).taskDefinition.taskDefinitionArn
ecs.update_service { cluster = "production", service = "api", taskDefinition = v2_arn }

-- 4. ten simulated minutes
advance(300)
advance(300)

-- 5. the summary
local summary = { elapsed = math.floor(now() - start + 0.5), services = {}, rules = {}, health = {}, alarms = {}, metrics = {} }
local short = function(arn) return arn and arn:match("[^/]+$") end
for _, s in ipairs(ecs.describe_services { cluster = "production", services = { "api", "api-canary", "app" } }.services) do
  local deps = {}
  for _, d in ipairs(s.deployments or {}) do
    deps[#deps + 1] = { status = d.status, task_definition = short(d.taskDefinition), desired = d.desiredCount,
      running = d.runningCount, rollout = d.rolloutState, failed = d.failedTasks }
  end
  table.sort(deps, function(a, b) return a.status .. a.task_definition < b.status .. b.task_definition end)
  local tasks = ecs.list_tasks { cluster = "production", serviceName = s.serviceName }.taskArns
  summary.services[s.serviceName] = { task_definition = short(s.taskDefinition), desired = s.desiredCount,
    running = s.runningCount, pending = s.pendingCount, deployments = deps, tasks = #tasks }
end
for _, l in ipairs(listeners) do
  for _, r in ipairs(elbv2.describe_rules { ListenerArn = l.ListenerArn }.Rules) do
    local w = {}
    for _, a in ipairs(r.Actions) do
      if a.ForwardConfig and a.ForwardConfig.TargetGroups then
        for _, t in ipairs(a.ForwardConfig.TargetGroups) do w[tg_name[t.TargetGroupArn]] = t.Weight end
      elseif a.TargetGroupArn then
        w[tg_name[a.TargetGroupArn]] = 1
      end
    end
    summary.rules[l.Port .. "/" .. r.Priority] = w
  end
end
for name, t in pairs(tg) do
  local counts = {}
  for _, d in ipairs(elbv2.describe_target_health { TargetGroupArn = t.TargetGroupArn }.TargetHealthDescriptions) do
    counts[d.TargetHealth.State] = (counts[d.TargetHealth.State] or 0) + 1
  end
  summary.health[name] = counts
end
for _, a in ipairs(cloudwatch.describe_alarms {}.MetricAlarms) do summary.alarms[a.AlarmName] = a.StateValue end

-- metric sums over the last five whole minutes before start + 600
local t1 = math.floor((start + 600) / 60) * 60
local queries = {}
for i, m in ipairs { { "canary_requests", "api-canary", "RequestCount" }, { "canary_5xx", "api-canary", "HTTPCode_Target_5XX_Count" },
                     { "stable_requests", "api-stable", "RequestCount" } } do
  queries[i] = { Id = m[1], ReturnData = true, MetricStat = { Period = 60, Stat = "Sum", Metric = {
    Namespace = "AWS/ApplicationELB", MetricName = m[3], Dimensions = {
      { Name = "TargetGroup", Value = tg[m[2]].TargetGroupArn:match(":(targetgroup/.+)$") },
      { Name = "LoadBalancer", Value = lb.LoadBalancerArn:match(":loadbalancer/(.+)$") } } } } }
end
local md = cloudwatch.get_metric_data { MetricDataQueries = queries, StartTime = t1 - 300, EndTime = t1 }
for _, r in ipairs(md.MetricDataResults) do
  local sum = 0
  for _, v in ipairs(r.Values or {}) do sum = sum + v end
  summary.metrics[r.Id] = { sum = sum, points = #(r.Values or {}) }
end

print("SUMMARY " .. encode(summary))
