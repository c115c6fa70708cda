-- lint fixture: a syntax error stops at the first one
local rollout = require "ecsplay.rollout"
rollout.canary {
  image = "api:v2",
  steps = { 10, 50 100 },
}
