-- playbooks/codedeploy.lua: CodeDeploy shifts the traffic; ecsplay's gates stop it when one fails.
local testing = require "ecsplay.testing"

local PLAYBOOK = testing.relative("../codedeploy.lua")
local APP_TRAFFIC = "tests/scenarios/rollout_app_traffic.lua" -- the api rule narrowed, so app gets traffic

describe("playbooks/codedeploy.lua", function()
  it("deploys app:v2: one deployment of app-deploy/app-dg, production on app-green", function()
    local r = testing.run(PLAYBOOK, {})
    assert.equals(0, r.code)
    assert.equals("succeeded", r.report.status)
    local created = r.world:calls { operation = "CreateDeployment" }
    assert.equals(1, #created)
    assert.equals("app-deploy", created[1].params.applicationName)
    assert.equals("app-dg", created[1].params.deploymentGroupName)
    assert.matches("^d%-%w+$", r.report.deployment_id)
    assert.same({ ["app-green"] = 100 }, r.world:listener_weights(443))
    local app = r.world:service("app")
    assert.same({ "app:2", "app:v2", 3 }, { app.task_definition, app.image, app.desired })
    assert.same({}, r.world:calls { operation = "StopDeployment" })
  end)

  it("stops the deployment of app:bad, whose green tasks never become healthy: exit 1", function()
    local r = testing.run(PLAYBOOK, { image = "app:bad" })
    assert.equals(1, r.code)
    assert.equals("rolled_back", r.report.status)
    local stops = r.world:calls { operation = "StopDeployment" }
    assert.equals(1, #stops)
    assert.equals(r.report.deployment_id, stops[1].params.deploymentId)
    assert.same({ ["app-blue"] = 1 }, r.world:listener_weights(443))
    assert.equals("app:1", r.world:service("app").task_definition)
  end)

  it("with traffic on app, metrics=on stops app:flaky on its 5xx rate", function()
    local r = testing.run(PLAYBOOK, { image = "app:flaky", metrics = "on" }, { scenario = APP_TRAFFIC })
    assert.equals(1, r.code)
    assert.matches("5xx rate app-green", r.report.reason, 1, true)
    assert.equals(1, #r.world:calls { operation = "StopDeployment" })
    assert.same({ ["app-blue"] = 1 }, r.world:listener_weights(443))
    assert.equals("app:1", r.world:service("app").task_definition)
  end)

  it("with traffic on app, metrics=on deploys app:v2", function()
    local r = testing.run(PLAYBOOK, { metrics = "on" }, { scenario = APP_TRAFFIC })
    assert.equals(0, r.code)
    assert.is_true(#r.report.measurements > 0)
    assert.same({ ["app-green"] = 100 }, r.world:listener_weights(443))
  end)

  it("config=linear names its own deployment configuration", function()
    local r = testing.run(PLAYBOOK, { config = "linear" })
    assert.equals(0, r.code)
    local created = r.world:calls { operation = "CreateDeployment" }
    assert.equals(1, #created)
    assert.is_not.equals("CodeDeployDefault.ECSAllAtOnce", created[1].params.deploymentConfigName)
    assert.equals(1, #r.world:calls { operation = "CreateDeploymentConfig" })
  end)
end)
