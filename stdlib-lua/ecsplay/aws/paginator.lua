-- Paginators from the models: `for page in ecs.pages.list_services{...} do ... end`.
-- Each page is the operation's whole output; the next request carries the output token(s)
-- as the input token(s) until no token comes back (or more_results says no).
local errors = require "ecsplay.errors"
local jmespath = require "ecsplay.aws.jmespath"
local model = require "ecsplay.aws.model"
local aws = require "ecsplay.aws.call"

local M = {}

local function list(v)
  if type(v) == "table" then return v end
  return { v }
end

-- pages(service, op, params, call) → iterator of output tables.
function M.pages(service, opname, params, call)
  local m = model.load(service)
  local op = model.operation(m, opname)
  local def = op and m.paginators and m.paginators[op.name]
  if not def then error(string.format("%s %s cannot be paginated", service, tostring(opname)), 2) end
  call = call or aws.call
  local inputs, outputs = list(def.input_token), list(def.output_token)
  local req = {}
  for k, v in pairs(params or {}) do req[k] = v end
  local done, seen = false, {}
  return function()
    if done then return nil end
    local out = call(service, op.name, req)
    local any, key = false, {}
    for i, path in ipairs(outputs) do
      local tok = jmespath.search(path, out)
      if tok == "" then tok = nil end
      -- a malformed answer, not the caller's bad input: every token of these services is a string
      if tok ~= nil and type(tok) ~= "string" then
        error(errors.response { service = service, operation = op.name, code = "InvalidResponse",
          message = string.format("the answer's pagination token %s is a %s, not a string", path,
            type(tok)) }, 0)
      end
      req[inputs[i]] = tok
      if tok ~= nil then any = true end
      key[#key + 1] = tostring(tok)
    end
    if def.more_results and not jmespath.truthy(jmespath.search(def.more_results, out)) then
      any = false
    end
    if any then
      local k = table.concat(key, "\0")
      if seen[k] then
        error(errors.response { service = service, operation = op.name, code = "RepeatedPaginationToken",
          message = "the service returned the same pagination token twice" }, 0)
      end
      seen[k] = true
    else
      done = true
    end
    return out
  end
end

-- all(service, op, params) → the result_key list(s) of every page concatenated: a list for
-- one result key, else { [key] = list, ... }.
function M.all(service, opname, params, call)
  local m = model.load(service)
  local op = model.operation(m, opname)
  local def = op and m.paginators and m.paginators[op.name]
  if not def then error(string.format("%s %s cannot be paginated", service, tostring(opname)), 2) end
  local keys = list(def.result_key)
  local acc = {}
  for _, k in ipairs(keys) do acc[k] = {} end
  for page in M.pages(service, opname, params, call) do
    for _, k in ipairs(keys) do
      local v = jmespath.search(k, page)
      if type(v) == "table" then
        for _, x in ipairs(v) do acc[k][#acc[k] + 1] = x end
      end
    end
  end
  if #keys == 1 then return acc[keys[1]] end
  return acc
end

return M
