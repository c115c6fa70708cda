-- The canary the steering tests drive (tests/py/test_steer.py, tests/lua/test_control.lua,
-- tests/lua/test_approval.lua): api → api-canary in steps, one ALB 5xx gate, and through
-- its arguments an approval step, on_failure and the image.
--   steps=10,50,100        the weights
--   approval=2             an approval step before weight step 2 (N+1: before the promotion)
--   timeout=2m on_timeout=rollback|promote approvers=alice,bob min=1 http=1
--   on_failure=pause [pause_timeout=5m pause_on_timeout=rollback|promote]
--   image=api:v2 (api:flaky fails the gate) bake=3m
local rollout, gate = require "ecsplay.rollout", require "ecsplay.gate"
local a = ecsplay.args

local function list(s)
  local out = {}
  for x in tostring(s):gmatch("[^,]+") do out[#out + 1] = tonumber(x) or x end
  return out
end

local steps = list(a.steps or "10,50,100")
if a.approval then
  local approval = { timeout = a.timeout or "2m", on_timeout = a.on_timeout }
  if a.approvers then approval.approvers = list(a.approvers) end
  if a.min then approval.min = tonumber(a.min) end
  if a.http then approval.http = { port = 0 } end
  table.insert(steps, tonumber(a.approval), { approval = approval })
end
local on_failure = a.on_failure
if on_failure == "pause" and (a.pause_timeout or a.pause_on_timeout) then
  on_failure = { pause = { timeout = a.pause_timeout, on_timeout = a.pause_on_timeout } }
end

local report = rollout.canary {
  image = a.image or "api:v2", steps = steps, bake = a.bake or "3m", interval = "1m",
  on_failure = on_failure,
  gates = { gate.alb_5xx_rate { target_group = "api-canary", below = 1.0 } },
}
print("canary: " .. report.status)
