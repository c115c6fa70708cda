--[[
ecsplay.util.arn: Amazon Resource Names. Part of the closed kernel: requires
nothing. arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE
]]
local M = {}

function M.is_arn(s)
  return type(s) == "string" and s:match("^arn:") ~= nil
end

-- → { partition=, service=, region=, account=, resource= } or nil
function M.parse(s)
  if type(s) ~= "string" then return nil end
  local partition, service, region, account, resource =
    s:match("^arn:([%w-]+):([%w-]+):([^:]*):([^:]*):(.+)$")
  if not partition then return nil end
  return { partition = partition, service = service, region = region,
    account = account, resource = resource }
end

function M.account(s)
  local a = M.parse(s)
  return a and a.account ~= "" and a.account or nil
end

-- The resource's type and the rest: "service/cluster/api" → "service", "cluster/api".
function M.resource(s)
  local a = M.parse(s)
  if not a then return nil end
  local kind, rest = a.resource:match("^([%w-]+)[/:](.+)$")
  return kind, rest
end

return M
