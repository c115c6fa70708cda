-- 50 independent canary pairs for bench/map50.lua: for each i, services svc<i> (2 tasks) and
-- svc<i>-canary (0), target groups svc<i>-stable / svc<i>-canary, and a load balancer lb<i>
-- whose :80 listener forwards 100/0 between them (so each pair gets its own traffic).
local N = 50
return {
  seed = 50,
  start = "2026-11-26T10:00:00Z",
  world = "default",
  setup = function(aws)
    local subnets, sg = { "subnet-0sima", "subnet-0simb" }, { "sg-0sim" }
    local net = { awsvpcConfiguration = { subnets = subnets, securityGroups = sg } }
    for i = 1, N do
      local tg = {}
      for _, side in ipairs { "stable", "canary" } do
        tg[side] = aws.elbv2.CreateTargetGroup { Name = ("svc%d-%s"):format(i, side), Protocol = "HTTP",
          Port = 8080, VpcId = "vpc-0sim", TargetType = "ip", HealthCheckPath = "/health",
          HealthCheckIntervalSeconds = 10, HealthyThresholdCount = 2 }.TargetGroups[1].TargetGroupArn
      end
      local lb = aws.elbv2.CreateLoadBalancer { Name = "lb" .. i, Subnets = subnets, SecurityGroups = sg,
        Type = "application" }.LoadBalancers[1].LoadBalancerArn
      aws.elbv2.CreateListener { LoadBalancerArn = lb, Port = 80, Protocol = "HTTP",
        DefaultActions = { { Type = "forward", ForwardConfig = { TargetGroups = {
          { TargetGroupArn = tg.stable, Weight = 100 }, { TargetGroupArn = tg.canary, Weight = 0 } } } } } }
      for side, count in pairs { stable = 2, canary = 0 } do
        aws.ecs.CreateService { cluster = "production", taskDefinition = "api:1", desiredCount = count,
          serviceName = side == "stable" and ("svc" .. i) or ("svc%d-canary"):format(i),
          launchType = "FARGATE", networkConfiguration = net,
          loadBalancers = { { targetGroupArn = tg[side], containerName = "api", containerPort = 8080 } } }
      end
    end
  end,
}
