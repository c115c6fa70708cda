--[[
The built-in default world (docs/simulator.md), built through the ordinary operations (caller
"setup", each input validated against the model first) so it is exactly what a user could
have created with the API. It is built 15 minutes before the scenario start and advanced to
it, so a run begins steady: tasks RUNNING, targets healthy, metric history present.

default_world.build(sim)  (sim:call(service, Op, params) → output)
default_world.images      image behaviours of the default world (after the scenario's own)

Deliberate values (also in docs/simulator.md):
target groups check health every 10 s with a healthy threshold of 2, so a new task is
healthy about 20 s after it starts serving; both listeners are HTTPS with a fake ACM
certificate; the alarm fires when api-canary's 5xx Sum over 60 s exceeds 10 (1 period,
missing data not breaching).
]]
local M = {}

local SUBNETS = { "subnet-0sima", "subnet-0simb" }
local VPC = "vpc-0sim"
local SECURITY_GROUP = "sg-0sim"
local BUILD_LEAD = 900

M.VPC, M.SUBNETS, M.BUILD_LEAD = VPC, SUBNETS, BUILD_LEAD

M.images = {
  { key = "api:v1", behaviour = {} },
  { key = "app:v1", behaviour = {} },
  { key = "~:v2$", behaviour = {} },
  { key = "~:bad$", behaviour = { crash = "on_start" } },
  { key = "~:slow$", behaviour = { latency_ms = { p50 = 300, p99 = 1200 } } },
  { key = "~:flaky$", behaviour = {
    error_rate = function(ctx) return (ctx.weight or 0) >= 25 and 0.06 or 0.001 end } },
}

local function task_definition(family)
  return {
    family = family,
    containerDefinitions = { {
      name = family, image = family .. ":v1", essential = true,
      portMappings = { { containerPort = 8080, protocol = "tcp" } },
    } },
    requiresCompatibilities = { "FARGATE" },
    networkMode = "awsvpc",
    cpu = "256",
    memory = "512",
  }
end

local function network()
  return { awsvpcConfiguration = { subnets = SUBNETS, securityGroups = { SECURITY_GROUP },
    assignPublicIp = "DISABLED" } }
end

-- ELBv2: load balancer, target groups, listeners, the weighted rule.
local function build_elbv2(world, call)
  local cert = world:arn("acm", "certificate/00000000-0000-4000-8000-00000000051a")
  local lb = call("elbv2", "CreateLoadBalancer", { Name = "web", Subnets = SUBNETS,
    SecurityGroups = { SECURITY_GROUP }, Scheme = "internet-facing", Type = "application" })
    .LoadBalancers[1].LoadBalancerArn
  local tg = {}
  for _, name in ipairs({ "api-stable", "api-canary", "app-blue", "app-green" }) do
    tg[name] = call("elbv2", "CreateTargetGroup", {
      Name = name, Protocol = "HTTP", Port = 8080, VpcId = VPC, TargetType = "ip",
      HealthCheckProtocol = "HTTP", HealthCheckPath = "/health",
      HealthCheckIntervalSeconds = 10, HealthCheckTimeoutSeconds = 5,
      HealthyThresholdCount = 2, UnhealthyThresholdCount = 2,
    }).TargetGroups[1].TargetGroupArn
  end
  local prod = call("elbv2", "CreateListener", { LoadBalancerArn = lb, Port = 443, Protocol = "HTTPS",
    Certificates = { { CertificateArn = cert } },
    DefaultActions = { { Type = "forward", TargetGroupArn = tg["app-blue"] } },
  }).Listeners[1].ListenerArn
  local test = call("elbv2", "CreateListener", { LoadBalancerArn = lb, Port = 8443, Protocol = "HTTPS",
    Certificates = { { CertificateArn = cert } },
    DefaultActions = { { Type = "forward", TargetGroupArn = tg["app-green"] } },
  }).Listeners[1].ListenerArn
  call("elbv2", "CreateRule", { ListenerArn = prod, Priority = 10,
    Conditions = { { Field = "path-pattern", PathPatternConfig = { Values = { "/*" } } } },
    Actions = { { Type = "forward", ForwardConfig = { TargetGroups = {
      { TargetGroupArn = tg["api-stable"], Weight = 100 },
      { TargetGroupArn = tg["api-canary"], Weight = 0 },
    } } } },
  })
  return lb, tg, prod, test
end

-- ECS services: api (rolling), api-canary (empty), app (CODE_DEPLOY).
local function build_services(call, tg)
  call("ecs", "CreateService", {
    cluster = "production", serviceName = "api", taskDefinition = "api:1", desiredCount = 4,
    launchType = "FARGATE", deploymentController = { type = "ECS" },
    deploymentConfiguration = { maximumPercent = 200, minimumHealthyPercent = 100,
      deploymentCircuitBreaker = { enable = true, rollback = true } },
    loadBalancers = { { targetGroupArn = tg["api-stable"], containerName = "api", containerPort = 8080 } },
    networkConfiguration = network(),
  })
  call("ecs", "CreateService", {
    cluster = "production", serviceName = "api-canary", taskDefinition = "api:1", desiredCount = 0,
    launchType = "FARGATE", deploymentController = { type = "ECS" },
    deploymentConfiguration = { maximumPercent = 200, minimumHealthyPercent = 100 },
    loadBalancers = { { targetGroupArn = tg["api-canary"], containerName = "api", containerPort = 8080 } },
    networkConfiguration = network(),
  })
  -- CODE_DEPLOY controller: CreateService makes the initial (PRIMARY) task set itself, as AWS does.
  call("ecs", "CreateService", {
    cluster = "production", serviceName = "app", taskDefinition = "app:1", desiredCount = 3,
    launchType = "FARGATE", deploymentController = { type = "CODE_DEPLOY" },
    deploymentConfiguration = { maximumPercent = 200, minimumHealthyPercent = 100 },
    loadBalancers = { { targetGroupArn = tg["app-blue"], containerName = "app", containerPort = 8080 } },
    networkConfiguration = network(),
  })
end

-- CodeDeploy blue/green for app.
local function build_codedeploy(world, call, prod, test)
  call("codedeploy", "CreateApplication", { applicationName = "app-deploy", computePlatform = "ECS" })
  call("codedeploy", "CreateDeploymentGroup", {
    applicationName = "app-deploy", deploymentGroupName = "app-dg",
    serviceRoleArn = string.format("arn:aws:iam::%s:role/ecsCodeDeployRole", world.account),
    deploymentConfigName = "CodeDeployDefault.ECSAllAtOnce",
    deploymentStyle = { deploymentType = "BLUE_GREEN", deploymentOption = "WITH_TRAFFIC_CONTROL" },
    blueGreenDeploymentConfiguration = {
      terminateBlueInstancesOnDeploymentSuccess = { action = "TERMINATE", terminationWaitTimeInMinutes = 5 },
      deploymentReadyOption = { actionOnTimeout = "CONTINUE_DEPLOYMENT", waitTimeInMinutes = 0 },
    },
    ecsServices = { { serviceName = "app", clusterName = "production" } },
    loadBalancerInfo = { targetGroupPairInfoList = { {
      targetGroups = { { name = "app-blue" }, { name = "app-green" } },
      prodTrafficRoute = { listenerArns = { prod } },
      testTrafficRoute = { listenerArns = { test } },
    } } },
    autoRollbackConfiguration = { enabled = true,
      events = { "DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_ALARM", "DEPLOYMENT_STOP_ON_REQUEST" } },
  })
end

-- CloudWatch: the canary's 5xx alarm (dimensions are the ARN suffixes, as ALB metrics use).
local function build_alarm(sim, call, lb, tg)
  call("cloudwatch", "PutMetricAlarm", {
    -- 60 errors a minute: 0.5% of the whole load balancer's traffic (200 rps), so a
    -- healthy image (0.1%) never trips it even with all traffic, and api:flaky does at 25%.
    AlarmName = "api-5xx-high",
    AlarmDescription = "api-canary target 5xx responses above 60 a minute",
    Namespace = "AWS/ApplicationELB", MetricName = "HTTPCode_Target_5XX_Count",
    Dimensions = {
      { Name = "TargetGroup", Value = tg["api-canary"]:match(":(targetgroup/.+)$") },
      { Name = "LoadBalancer", Value = lb:match(":loadbalancer/(.+)$") },
    },
    Statistic = "Sum", Period = 60, EvaluationPeriods = 1, Threshold = 60,
    ComparisonOperator = "GreaterThanThreshold", TreatMissingData = "notBreaching",
  })
  -- A new alarm is INSUFFICIENT_DATA until its first evaluation; the contract says OK from
  -- the start, and with missing data not breaching the evaluations keep it OK.
  if sim:has_op("cloudwatch", "SetAlarmState") then
    call("cloudwatch", "SetAlarmState", { AlarmName = "api-5xx-high", StateValue = "OK",
      StateReason = "default world: initial state" })
  end
end

function M.build(sim)
  local world = sim.world
  local call = function(service, op, params) return sim:call(service, op, params) end
  call("ecs", "CreateCluster", { clusterName = "production" })
  call("ecs", "RegisterTaskDefinition", task_definition("api"))
  call("ecs", "RegisterTaskDefinition", task_definition("app"))
  local lb, tg, prod, test = build_elbv2(world, call)
  build_services(call, tg)
  build_codedeploy(world, call, prod, test)
  build_alarm(sim, call, lb, tg)
  return { load_balancer = lb, target_groups = tg, listeners = { prod = prod, test = test } }
end

return M
