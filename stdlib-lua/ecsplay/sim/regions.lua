--[[
Several Regions and accounts in one simulator: one world (sim/world.lua) per Region and
account, all on one clock, so an ARN, a cluster or a metric of one never shows in another,
as in AWS, where each account's resources live in one Region.

Which world serves a request: the Region of its SigV4 credential scope and the account of
its access key (scenario `keys = { AK = { secret =, account = } }`, or `account`, the
default; temporary credentials from STS AssumeRole belong to the role's account). The
scenario's `regions` lists the Regions served (default { "us-east-1" }; the first is the
primary world's: sim.world, the control endpoints' and the in-process client's default).
The worlds of the scenario's accounts (`account`, the keys' and the roles' accounts) in each
Region are built at the start, each like the primary one (the default world and the
scenario's setup, which is called as setup(aws, { region =, account = }) for each); an
account first seen later (a role assumed without a `roles` list) gets its worlds then.

  regions.build_all(sim)        sim.worlds[key], sim.world_list (build order), sim.world
  regions.world_for(sim, who)   who = auth's { region=, account= } → the world
  regions.sync(sim, t)          every world to time t
  regions.failure(sim)          the first behaviour failure of any world (world.failure)
  regions.auth_options(sc)      what sim/auth.lua needs to know of Regions and accounts
]]
local M = {}

M.DEFAULT_REGION = "us-east-1"
M.DEFAULT_ACCOUNT = "123456789012"
-- seeds of the worlds after the first: apart, so their ids and noise differ
local SEED_STEP = 7919

function M.regions(sc) return sc.regions or { M.DEFAULT_REGION } end
function M.default_account(sc) return sc.account or M.DEFAULT_ACCOUNT end

function M.key(region, account) return region .. "/" .. account end

-- The default account first, then the other accounts the scenario names, sorted.
function M.accounts(sc)
  local default = M.default_account(sc)
  local seen, others = { [default] = true }, {}
  local function add(a)
    if a and not seen[a] then seen[a] = true others[#others + 1] = a end
  end
  for _, a in pairs(sc.key_accounts or {}) do add(a) end
  for _, r in pairs(sc.roles or {}) do add(r.account) end
  table.sort(others)
  table.insert(others, 1, default)
  return others
end

function M.auth_options(sc)
  local list = M.regions(sc)
  local set
  if #list > 1 then
    set = {}
    for _, r in ipairs(list) do set[r] = true end
  end
  return { region = list[1], regions = set, accounts = sc.key_accounts,
    account = M.default_account(sc) }
end

-- Builds the world of (region, account) through sim:build_world and files it.
function M.add(sim, region, account)
  local sc = sim.scenario
  local n = #sim.world_list
  local primary = sim.world_list[1]
  local seed = sc.seed
  if n > 0 then seed = (sc.seed or 1) + SEED_STEP * n end
  local w = sim:build_world { region = region, account = account, seed = seed,
    at = primary and primary.now or nil }
  sim.worlds[M.key(region, account)] = w
  sim.world_list[n + 1] = w
  sim.world = primary or w
  return w
end

function M.build_all(sim)
  sim.worlds, sim.world_list, sim.world = {}, {}, nil
  local sc = sim.scenario
  for _, account in ipairs(M.accounts(sc)) do
    for _, region in ipairs(M.regions(sc)) do M.add(sim, region, account) end
  end
  sim.world = sim.world_list[1]
end

function M.world_for(sim, who)
  local primary = sim.world_list[1]
  if not who then return primary end
  local region = who.region
  local served = false
  for _, r in ipairs(M.regions(sim.scenario)) do if r == region then served = true end end
  if not served then region = primary.region end -- only under --no-auth: auth refuses it
  local account = who.account or primary.account
  return sim.worlds[M.key(region, account)] or M.add(sim, region, account)
end

function M.sync(sim, t)
  for _, w in ipairs(sim.world_list) do
    if t > w.now then w:advance(t) end
  end
end

function M.failure(sim)
  for _, w in ipairs(sim.world_list) do
    if w.failure then return w.failure end
  end
end

return M
