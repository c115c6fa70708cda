--[[
STS in the simulator: who am I, and assuming a role into another account.

  GetCallerIdentity  the caller's account (the world's: one world per Region and account)
                     and ARN (a user, or the assumed role of temporary credentials)
  AssumeRole         temporary credentials of the role's account: a new key pair the
                     simulator accepts (sim/auth.lua add_temporary) with its session token
                     until DurationSeconds (default 3600) have passed on the clock clients
                     sign with. The scenario's `roles` lists the roles that may be assumed
                     and the external id each requires (docs/scenario.md); without `roles`
                     any role ARN may be. Refusals are AWS's: AccessDenied (403) "User: ...
                     is not authorized to perform: sts:AssumeRole on resource: ...".

world.directory is the simulator (its auth, its scenario); world.caller_key the access key
id of the request being served (sim/init.lua sets both).
]]
local strings = require "ecsplay.util.strings"

local M = { name = "sts" }

local DEFAULT_DURATION = 3600

local function caller_arn(world)
  local auth = world.directory and world.directory.auth
  local temp = auth and world.caller_key and auth.temporary[world.caller_key]
  if temp and temp.arn then return temp.arn, temp.user_id end
  return string.format("arn:aws:iam::%s:user/simulator", world.account), "AIDASIMULATOR00000000"
end

local function access_denied(world, role_arn)
  world:fail("AccessDenied", string.format("User: %s is not authorized to perform: sts:AssumeRole "
    .. "on resource: %s", (caller_arn(world)), role_arn), 403)
end

local function upper_id(world, prefix)
  return prefix .. world:id(nil, 16):upper()
end

M.ops = {
  GetCallerIdentity = function(world)
    local arn, user_id = caller_arn(world)
    return { UserId = user_id, Account = world.account, Arn = arn }
  end,

  AssumeRole = function(world, input)
    local sim = world.directory
    local arn = input.RoleArn
    local account, role_name = arn:match("^arn:aws:iam::(%d%d%d%d%d%d%d%d%d%d%d%d):role/(.+)$")
    if not account then
      world:fail("ValidationError", string.format("%s is invalid", arn), 400)
    end
    local roles = sim.scenario.roles
    if roles then
      local role = roles[arn]
      if not role then access_denied(world, arn) end
      if role.external_id ~= nil and input.ExternalId ~= role.external_id then access_denied(world, arn) end
    end
    local duration = input.DurationSeconds or DEFAULT_DURATION
    if duration > 43200 then
      world:fail("ValidationError", "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.", 400)
    end
    local expires = math.floor(sim.auth.now()) + duration
    local access_key = upper_id(world, "ASIA")
    local secret = world:id(nil, 32) .. world:id(nil, 8)
    local token = "SIM" .. world:id(nil, 32) .. world:id(nil, 32)
    local role_id = upper_id(world, "AROA")
    local session = input.RoleSessionName
    sim.auth:add_temporary(access_key, secret, token, account, expires)
    local assumed = string.format("arn:aws:sts::%s:assumed-role/%s/%s", account,
      strings.last_segment(role_name), session)
    local temp = sim.auth.temporary[access_key]
    temp.arn, temp.user_id = assumed, role_id .. ":" .. session
    return {
      Credentials = { AccessKeyId = access_key, SecretAccessKey = secret, SessionToken = token,
        Expiration = expires },
      AssumedRoleUser = { AssumedRoleId = role_id .. ":" .. session, Arn = assumed },
    }
  end,
}

return M
