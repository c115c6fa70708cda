-- lint fixture: parameters of literal AWS calls checked against the service models
local ecs, elbv2 = require "ecsplay.ecs", require "ecsplay.elbv2"
local svc = ecsplay.args.service
ecs.update_service { cluster = "production", service = svc, desiredCount = "3", forceNewDeploymnt = true }
ecs.update_servic { cluster = "production" }
ecs.wait.services_stabel { cluster = "production", services = { svc } }
ecs.describe_services { cluster = svc }
elbv2.describe_target_health { TargetGroupArn = svc, Targets = { { Id = "i-1", Port = "80" } } }
for _ in ecs.pages.list_services { cluster = "production", launchType = "EC3" } do end
ecs.update_service { cluster = "production", service = svc, desiredCount = 3 }
