-- Rollout tests: the default world with the api rule narrowed to /api/* so the :443 listener's
-- default action (app-blue / app-green, shifted by CodeDeploy) receives the production traffic,
-- and a service with no load balancer (worker) for the bad-input tests.
return {
  seed = 7,
  start = "2026-11-26T10:00:00Z",
  world = "default",
  setup = function(aws)
    local lb = aws.elbv2.DescribeLoadBalancers { Names = { "web" } }.LoadBalancers[1]
    for _, l in ipairs(aws.elbv2.DescribeListeners { LoadBalancerArn = lb.LoadBalancerArn }.Listeners) do
      for _, r in ipairs(aws.elbv2.DescribeRules { ListenerArn = l.ListenerArn }.Rules) do
        if r.Priority == "10" then
          aws.elbv2.ModifyRule { RuleArn = r.RuleArn, Conditions = {
            { Field = "path-pattern", PathPatternConfig = { Values = { "/api/*" } } } } }
        end
      end
    end
    aws.ecs.CreateService { cluster = "production", serviceName = "worker", taskDefinition = "api:1",
      desiredCount = 1, launchType = "FARGATE",
      networkConfiguration = { awsvpcConfiguration = { subnets = { "subnet-0sima" } } } }
  end,
}
