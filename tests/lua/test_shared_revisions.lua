-- Shared revisions (rollout/version.lua): rollouts of one process that would register the same
-- revision (one family, one image: a fleet of services of one family) register it once and
-- all deploy it; another image, or another world (a new aws.configure{}), registers its own;
-- a registration that fails is shared by no one (its rollout fails, the others register one).
-- Counted as the simulator receives the requests; every case reads the world back.
local T = require "harness"
local R = require "rollout_sim"
local W = require "fleet_world"
local json = require "ecsplay.json"
local ecsplay = require "ecsplay"

local received -- "service.Operation" → requests the simulator received

local function fresh(n)
  local sim = R.fresh(W.scenario(n))
  received = W.counting_client(sim)
  return sim
end

local function registrations() return received["ecs.RegisterTaskDefinition"] or 0 end

-- The canaries of images[i] on pair i, all at once: → their reports (errors as { error = }).
local function fleet(images)
  local list = {}
  for i = 1, #images do list[i] = i end
  return ecsplay.map(list, function(i)
    local ok, r = pcall(W.canary, i, images[i], { steps = { 100 }, bake = "1m", gates = {} })
    return ok and r or { error = r }
  end)
end

T.test("four services of one family deploying one image: one revision, registered once, all on it", function()
  fresh(4)
  local reports = fleet { "api:v2", "api:v2", "api:v2", "api:v2" }
  for i, r in ipairs(reports) do T.eq(r.status, "succeeded", "svc" .. i .. ": " .. tostring(r.error)) end
  T.eq(registrations(), 1, "RegisterTaskDefinition calls")
  for i = 1, 4 do T.eq(W.td(i), "api:2", "svc" .. i .. " runs the shared revision") end
  T.eq(R.revisions("api"), 2, "api:1 and the one new revision")
end)

T.test("another image registers its own; a new world (aws.configure) does not reuse the last one's", function()
  fresh(3)
  local reports = fleet { "api:v2", "api:v3", "api:v2" }
  for i, r in ipairs(reports) do T.eq(r.status, "succeeded", "svc" .. i .. ": " .. tostring(r.error)) end
  T.eq(registrations(), 2, "one a distinct revision")
  T.eq(W.td(1), W.td(3), "svc1 and svc3 share api:v2's revision")
  T.ok(W.td(2) ~= W.td(1), "svc2 on api:v3's own: " .. W.td(2))
  T.eq(R.revisions("api"), 3)
end)

T.test("a registration that fails is shared by no one: its rollout fails, the others register one", function()
  local sim = fresh(3)
  local res = sim:handle { method = "POST", path = "/_sim/faults", headers = { ["content-type"] = "application/json" },
    body = json.encode { service = "ecs", operation = "RegisterTaskDefinition", error = "ClientException",
      message = "Too many revisions", times = 1 } }
  T.eq(res.status, 200, res.body)
  local reports = fleet { "api:v2", "api:v2", "api:v2" }
  local failed, succeeded = 0, 0
  for _, r in ipairs(reports) do
    if r.status == "succeeded" then
      succeeded = succeeded + 1
    else
      failed = failed + 1
      T.ok(tostring(json.encode(r)):find("Too many revisions", 1, true), "the failed one: its own call's error")
    end
  end
  T.eq({ failed, succeeded }, { 1, 2 }, "failed, succeeded")
  T.eq(registrations(), 2, "the failed call, then one for the two waiting")
  T.eq(R.revisions("api"), 2, "one revision registered")
end)
