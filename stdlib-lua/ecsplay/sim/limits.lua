--[[
AWS's own quotas on counts and sizes, as the simulator enforces them (docs/simulator.md
"Limits" cites the AWS page of each). They are AWS's default quotas; the simulator answers
beyond them with the error AWS gives, so a playbook that would hit a quota in production
hits it in rehearsal, and no request can make the simulated world grow without bound.

  limits.ECS, limits.ELBV2, limits.CLOUDWATCH, limits.CODEDEPLOY   the numbers
  limits.count(t)          how many entries a table has (pairs), for maps of resources
]]
local M = {}

-- Amazon ECS service quotas (AmazonECS/latest/developerguide/service-quotas.html).
M.ECS = {
  CLUSTERS = 10000,                -- Clusters per account
  SERVICES_PER_CLUSTER = 5000,     -- Services per cluster
  TASKS_PER_SERVICE = 5000,        -- Tasks per service (the desired count)
  CONTAINERS_PER_TASK_DEFINITION = 10,
  TASK_DEFINITION_BYTES = 65536,   -- Task definition size: 64 KiB
  TASK_SETS_PER_SERVICE = 5,       -- "5 deployments exist on the service" (CreateTaskSet)
}

-- Quotas for Application Load Balancers (elasticloadbalancing/latest/application/load-balancer-limits.html).
M.ELBV2 = {
  LOAD_BALANCERS = 50,             -- Application Load Balancers per Region
  LISTENERS_PER_LOAD_BALANCER = 50,
  TARGET_GROUPS = 3000,            -- Target Groups per Region
  TARGETS_PER_TARGET_GROUP = 1000, -- Targets per Target Group per Region (instances or IP addresses)
  RULES_PER_LOAD_BALANCER = 100,   -- Rules per Application Load Balancer (not counting default rules)
  TARGET_GROUPS_PER_ACTION = 5,
  MAX_WEIGHT = 999,                -- ForwardConfig target group weights: 0 to 999
  DESCRIBE_TARGET_GROUPS = 20,     -- Names or TargetGroupArns in one DescribeTargetGroups
}

-- Amazon CloudWatch (AmazonCloudWatch/latest/APIReference: GetMetricData, PutMetricData,
-- PutMetricAlarm; AmazonCloudWatch/latest/monitoring/cloudwatch_limits.html).
M.CLOUDWATCH = {
  QUERIES_PER_GET_METRIC_DATA = 500,
  DATAPOINTS_PER_GET_METRIC_DATA = 100800,
  METRIC_DATA_PER_PUT = 1000,      -- MetricData members per PutMetricData
  VALUES_PER_DATUM = 150,          -- Values (and Counts) per MetricDatum
  VALUE_MAGNITUDE = 2.0 ^ 360,     -- values must lie within -2^360 .. 2^360
  PAST_SECONDS = 14 * 86400,       -- timestamps up to two weeks in the past ...
  FUTURE_SECONDS = 2 * 3600,       -- ... and two hours into the future
  RETENTION_SECONDS = 15 * 86400,  -- 1-minute datapoints are kept 15 days
  ALARM_RANGE_SECONDS = 604800,    -- Period x EvaluationPeriods: at most 7 days,
  ALARM_RANGE_SHORT_SECONDS = 86400, -- at most 1 day when Period is under an hour
}

-- CodeDeploy quotas (codedeploy/latest/userguide/limits.html).
M.CODEDEPLOY = {
  APPLICATIONS = 1000,             -- Applications associated per account per region
  DEPLOYMENT_GROUPS_PER_APPLICATION = 1000,
  CUSTOM_DEPLOYMENT_CONFIGS = 50,  -- Custom deployment configurations per account
}

function M.count(t)
  local n = 0
  for _ in pairs(t or {}) do n = n + 1 end
  return n
end

return M
