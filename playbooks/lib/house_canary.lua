--[[
The team's canary, as a library: rollout.canary with the house defaults, so a
playbook states only what differs (`require "lib.house_canary"` from playbooks/).

  local house = require "lib.house_canary"
  house.canary { service = "api", image = "api:v2" }            -- everything else defaulted
  house.canary { ..., gates = { extra gates }, steps = {...} }  -- added to / overriding the defaults

House rules: steps 5/25/50/100, 3-minute bakes measured every minute, a 5xx
rate below 1 % and p99 below 500 ms on the canary's target group, the
service's 5xx alarm when it has one (alarm = "name"), two failed measurements
in a row before an abort, and every event logged with the team's prefix.
]]
local rollout, gate = require "ecsplay.rollout", require "ecsplay.gate"

local M = {}

M.defaults = {
  cluster = "production",
  steps = { 5, 25, 50, 100 },
  bake = "3m",
  interval = "1m",
  failure_limit = 2,
}

-- The standard gates for a canary target group (and alarm names, if any).
function M.gates(target_group, alarms)
  local g = {
    gate.alb_5xx_rate { target_group = target_group, below = 1.0 },
    gate.alb_latency { target_group = target_group, p = 99, below_ms = 500 },
  }
  if alarms and #alarms > 0 then g[#g + 1] = gate.alarm(alarms) end
  return g
end

--[[ o: service= (the stable service; its canary is "<service>-canary" and the
     target groups "<service>-stable"/"<service>-canary" by house naming),
     image=, alarm= (one name or a list), gates= (added to the house gates),
     and any rollout.canary option, which wins over the house default. ]]
function M.canary(o)
  assert(type(o) == "table" and o.service and o.image, "house_canary.canary{ service=, image= } needed")
  local opts = {}
  for k, v in pairs(M.defaults) do opts[k] = v end
  local svc = o.service
  opts.stable = { service = svc, target_group = svc .. "-stable" }
  opts.canary = { service = svc .. "-canary", target_group = svc .. "-canary" }
  opts.container = svc
  opts.name = "house canary " .. svc
  local alarms = type(o.alarm) == "string" and { o.alarm } or o.alarm
  local gates = M.gates(opts.canary.target_group, alarms)
  for _, g in ipairs(o.gates or {}) do gates[#gates + 1] = g end
  for k, v in pairs(o) do
    if k ~= "service" and k ~= "alarm" and k ~= "gates" then opts[k] = v end
  end
  opts.gates = gates
  opts.notify = opts.notify or function(ev)
    if ev.event == "abort" or ev.event == "summary" then
      ecsplay.log.info("[house] " .. ev.message)
    end
  end
  return rollout.canary(opts)
end

return M
