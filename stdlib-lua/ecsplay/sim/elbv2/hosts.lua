--[[
Host-based traffic (a scenario's traffic.hosts = { [host] = rps }): which rule of a listener
takes the requests of each host, as an Application Load Balancer routes by host name
(docs/simulator.md, "Host-based traffic"). Used by routing.lua's traffic split.

  hosts.add(got, listener, hosts)      adds each arriving host's rps to got[tg_arn] through
                                       the rule that takes it → the rate added
  hosts.add_forward(got, rule, rps)    adds rps split by the rule's forward weights
]]
local actions = require "ecsplay.sim.elbv2.actions"

local M = {}

-- A host-header value as a Lua pattern: case-insensitive (callers lower both sides), `*` any
-- run of characters, `?` exactly one (docs/simulator.md, "Host-based traffic").
local host_patterns = setmetatable({}, { __mode = "k" })
local function host_pattern(value)
  local p = host_patterns[value]
  if not p then
    p = "^" .. value:lower():gsub("[%^%$%(%)%%%.%[%]%+%-]", "%%%0"):gsub("%*", ".*"):gsub("%?", ".") .. "$"
    host_patterns[value] = p
  end
  return p
end

local function is_wildcard(value) return value:find("[%*%?]") ~= nil end

-- Does a rule's condition hold for a GET of "/" with Host `host`? Only host and path conditions
-- can hold for such a request: a header, query-string, method or source-ip condition does not.
local function condition_holds(c, host)
  if not c.values then return false end
  for _, v in ipairs(c.values) do
    if c.Field == "host-header" then
      if host:match(host_pattern(v)) then return true end
    elseif c.Field == "path-pattern" then
      if v == "/" or v == "*" or v == "/*" then return true end
    end
  end
  return false
end

local function rule_takes(rule, host)
  for _, c in ipairs(rule.conditions or {}) do
    if not condition_holds(c, host) then return false end
  end
  return true
end

--[[ The hosts of world.traffic.hosts that arrive at listener l: those a host-header value of
     one of its rules names (exactly or by wildcard), as a DNS name pointing at its load
     balancer would. Exact names are looked up, wildcards matched against every host. ]]
local function arriving_hosts(l, hosts)
  local out = {}
  for _, r in ipairs(l.rules) do
    for _, c in ipairs(r.conditions or {}) do
      if c.Field == "host-header" and c.values then
        for _, v in ipairs(c.values) do
          if is_wildcard(v) then
            for h in pairs(hosts) do if h:match(host_pattern(v)) then out[h] = true end end
          elseif hosts[v:lower()] then
            out[v:lower()] = true
          end
        end
      end
    end
  end
  return out
end

-- Adds the forward split of `rps` requests/s through `rule` to got.
function M.add_forward(got, rule, rps)
  local a = actions.forward_action(rule)
  if not (a and rps > 0) then return end
  local sum = 0
  for _, t in ipairs(a.tgs) do sum = sum + t.weight end
  for _, t in ipairs(a.tgs) do
    got[t.arn] = (got[t.arn] or 0) + (sum > 0 and rps * t.weight / sum or 0)
  end
end

--[[ Host-based traffic on listener l: each arriving host's requests go to the first rule, by
     priority, whose conditions all hold for them (else the default rule). Returns the rate added. ]]
function M.add(got, l, hosts)
  local total = 0
  for h in pairs(arriving_hosts(l, hosts)) do
    local rule = l.default_rule
    for _, r in ipairs(l.rules) do
      if not r.is_default and rule_takes(r, h) then rule = r break end
    end
    M.add_forward(got, rule, hosts[h])
    total = total + hosts[h]
  end
  return total
end

return M
