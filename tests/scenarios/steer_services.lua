-- The world of the steering tests of the strategies whose own service moves the traffic
-- (tests/py/test_steer.py: rolling, ecs_native, codedeploy): the default world, plus an
-- image whose tasks take 6 minutes to become healthy, so that ECS's rolling update of it
-- lasts long enough for commands to reach the run while it runs.
return {
  images = { ["api:slowstart"] = { start = "6m" } },
}
