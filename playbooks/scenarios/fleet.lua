-- The world of playbooks/fleet.lua: 8 independent canary pairs behind shared load balancers,
-- routed by host name, the usual way to put many services behind one ALB. For each i:
-- services svc<i> (2 tasks) and svc<i>-canary (0) in cluster production, target groups
-- svc<i>-stable and svc<i>-canary, and a rule on the :80 listener of load balancer lb<k>
-- (fifty pairs a load balancer) sending Host svc<i>.example.com 100/0 between them; each host
-- gets 200 requests/s of its own, and nothing else reaches the listener (its default action
-- answers 404).
--   ecsplay --simulate=playbooks/scenarios/fleet.lua playbooks/fleet.lua
-- bench/fleet.sh runs the same world at 50, 200 and 1,000 pairs (it rewrites the `local N`
-- line): fifty rules and a hundred target groups a load balancer, at most 20 load balancers,
-- keep it inside ELBv2's quotas (sim/limits.lua).
local N = 8
local PER_LB = 50
local hosts = {}
for i = 1, N do hosts[("svc%d.example.com"):format(i)] = 200 end
return {
  seed = 50,
  start = "2026-11-26T10:00:00Z",
  world = "default",
  traffic = { rps = 0, hosts = hosts },
  setup = function(aws)
    local subnets, sg = { "subnet-0sima", "subnet-0simb" }, { "sg-0sim" }
    local net = { awsvpcConfiguration = { subnets = subnets, securityGroups = sg } }
    local listener
    for i = 1, N do
      local slot = (i - 1) % PER_LB + 1
      if slot == 1 then
        local lb = aws.elbv2.CreateLoadBalancer { Name = "lb" .. ((i - 1) // PER_LB + 1), Subnets = subnets,
          SecurityGroups = sg, Type = "application" }.LoadBalancers[1].LoadBalancerArn
        listener = aws.elbv2.CreateListener { LoadBalancerArn = lb, Port = 80, Protocol = "HTTP",
          DefaultActions = { { Type = "fixed-response", FixedResponseConfig = { StatusCode = "404" } } },
        }.Listeners[1].ListenerArn
      end
      local tg = {}
      for _, side in ipairs { "stable", "canary" } do
        tg[side] = aws.elbv2.CreateTargetGroup { Name = ("svc%d-%s"):format(i, side), Protocol = "HTTP",
          Port = 8080, VpcId = "vpc-0sim", TargetType = "ip", HealthCheckPath = "/health",
          HealthCheckIntervalSeconds = 10, HealthyThresholdCount = 2 }.TargetGroups[1].TargetGroupArn
      end
      aws.elbv2.CreateRule { ListenerArn = listener, Priority = slot,
        Conditions = { { Field = "host-header", HostHeaderConfig = { Values = { ("svc%d.example.com"):format(i) } } } },
        Actions = { { Type = "forward", ForwardConfig = { TargetGroups = {
          { TargetGroupArn = tg.stable, Weight = 100 }, { TargetGroupArn = tg.canary, Weight = 0 } } } } } }
      for _, side_count in ipairs { { "stable", 2 }, { "canary", 0 } } do -- in this order (pairs has none)
        local side, count = side_count[1], side_count[2]
        aws.ecs.CreateService { cluster = "production", taskDefinition = "api:1", desiredCount = count,
          serviceName = side == "stable" and ("svc" .. i) or ("svc%d-canary"):format(i),
          launchType = "FARGATE", networkConfiguration = net,
          loadBalancers = { { targetGroupArn = tg[side], containerName = "api", containerPort = 8080 } } }
      end
    end
  end,
}
