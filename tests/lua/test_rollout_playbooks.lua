-- The example playbooks in playbooks/, run as users run them: `ecsplay --simulate playbooks/X.lua
-- key=value` as a subprocess (exit code and output), and in this process against a fresh
-- simulator where the final world is read back.
local T = require "harness"
local R = require "rollout_sim"

-- `ecsplay --simulate<args>` as a subprocess, as users run it: checks the exit code and, when
-- `text` is given, that the output holds it (plain find). Returns the output for further checks.
local function expect_run(args, rc_want, text)
  local out, rc = T.sh(R.bin .. " --simulate" .. args)
  T.eq(rc, rc_want, out)
  if text then T.ok(out:find(text, 1, true), out) end
  return out
end

-- The same playbook in this process against a fresh default simulator, so that the test can read
-- the final world back afterwards.
local function expect_playbook(path, params, code_want)
  R.fresh()
  local code, err = R.playbook(path, params)
  T.eq(code, code_want, err)
end

local function home()
  T.eq(R.weights(), { ["api-stable"] = 100, ["api-canary"] = 0 })
  local s, c = R.service("api"), R.service("api-canary")
  T.eq({ s.td, s.desired, c.td, c.desired }, { "api:1", 4, "api:1", 0 })
end

T.test("canary.lua promotes api:v2 in the default world with no flags", function()
  expect_run(" playbooks/canary.lua", 0, "canary: succeeded")
end)

T.test("canary.lua image=api:flaky rolls back: exit 1, rule back at 100% stable", function()
  expect_run(" playbooks/canary.lua image=api:flaky", 1, "traffic back to api-canary=0 api-stable=100")
  expect_playbook("playbooks/canary.lua", { image = "api:flaky" }, 1)
  home()
end)

T.test("canary.lua with a rule that does not exist: exit 2, nothing changed", function()
  expect_run(" playbooks/canary.lua rule=arn:aws:elasticloadbalancing:us-east-1:123456789012:"
    .. "listener-rule/app/web/0/1/2", 2, "rule: listener rule")
end)

T.test("linear.lua promotes; image=api:slow rolls back", function()
  expect_run(" playbooks/linear.lua", 0)
  expect_run(" playbooks/linear.lua image=api:slow", 1)
  expect_playbook("playbooks/linear.lua", { image = "api:slow" }, 1)
  home()
end)

T.test("rolling.lua deploys api:v2; image=api:bad: ECS rolls back, exit 1", function()
  expect_run(" playbooks/rolling.lua", 0, "rolling: succeeded, api runs api:2")
  expect_run(" playbooks/rolling.lua image=api:bad", 1, "ECS rolled back")
  expect_playbook("playbooks/rolling.lua", { image = "api:bad" }, 1)
  home()
end)

T.test("blue_green.lua swaps to api-canary; image=api:slow swaps back", function()
  expect_run(" playbooks/blue_green.lua", 0, "api-canary now serves api:2")
  expect_playbook("playbooks/blue_green.lua", { image = "api:slow" }, 1)
  home()
end)

T.test("codedeploy.lua deploys app:v2 where app has traffic; app:flaky is stopped", function()
  expect_run("=tests/scenarios/rollout_app_traffic.lua playbooks/codedeploy.lua metrics=on", 0,
    "codedeploy: succeeded")
  expect_run("=tests/scenarios/rollout_app_traffic.lua playbooks/codedeploy.lua image=app:flaky metrics=on",
    1, "stop CodeDeploy deployment")
end)

T.test("codedeploy.lua in the default world with no flags; app:bad is stopped there too", function()
  expect_run(" playbooks/codedeploy.lua", 0)
  expect_playbook("playbooks/codedeploy.lua", { image = "app:bad" }, 1)
  T.eq(R.listener_weights(443), { ["app-blue"] = 1 })
  T.eq(R.service("app").td, "app:1")
end)

T.test("ecs_native.lua deploys api:v2; image=api:slow rolls back", function()
  expect_run(" playbooks/ecs_native.lua", 0, "ecs_native: succeeded, api runs api:2 after 2 pause(s)")
  expect_playbook("playbooks/ecs_native.lua", { image = "api:slow" }, 1)
  home()
end)

T.test("multi_service.lua: both deploy; api:flaky aborts the whole fleet", function()
  expect_run(" playbooks/multi_service.lua", 0, "multi_service: api succeeded, app succeeded")
  expect_playbook("playbooks/multi_service.lua", { image = "api:flaky" }, 1)
  home()
  T.eq(R.listener_weights(443), { ["app-blue"] = 1 }, "app rolled back too")
  T.eq(R.service("app").td, "app:1")
end)

T.test("rollback.lua rehearses in the default world: api back on api:1", function()
  expect_run(" playbooks/rollback.lua", 0, "rollback: succeeded, api back on api:1 (from api:2)")
  expect_playbook("playbooks/rollback.lua", {}, 0)
  local s = R.service("api")
  T.eq({ s.td, s.running, s.deployments }, { "api:1", 4, 1 })
end)

T.test("rollback.lua to= a revision that does not exist: exit 2", function()
  expect_run(" playbooks/rollback.lua to=0", 2, "no earlier ACTIVE revision")
end)
