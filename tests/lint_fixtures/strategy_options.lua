-- lint fixture: strategy options checked by rollout/strategy.lua's own option check
local rollout = require "ecsplay.rollout"
local a = ecsplay.params { image = { type = "string", default = "api:v2" } }
rollout.canary {
  image = a.image,
  steps = { 10, 50, 25 },
  bake = "5 minutes",
  failure_limt = 2,
}
rollout.linear { image = a.image, step = 150, every = "1m" }
rollout.rolling { service = "api", image = "api:v2", task_definition = "api:3" }
rollout.blue_green { service = "api" }
rollout.canari { image = "api:v2" }
require("ecsplay.rollout").codedeploy { application = "app", group = "app-dg", image = "app:v2", poll = 0 }
