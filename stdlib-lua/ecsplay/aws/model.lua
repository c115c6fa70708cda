-- Service models: lazy loading of the generated tables and helpers to walk them.
-- A model is the table in ecsplay/aws/models/<service>.lua (see tools/gen_models.py):
--   { service=, metadata={...}, operations={Name={name,http,input,output,resultWrapper,errors,...}},
--     shapes={Name={type=, members=, order=, required=, member=, key=, value=, enum=, min=, max=,
--     error=, exception=}}, paginators=, waiters=, snake={OpName="op_name"} }
local M = {}

local cache = {}
local SERVICES = { ecs = true, elbv2 = true, codedeploy = true, cloudwatch = true, sts = true }

-- Build the reverse name index once per model; kept out of the generated file to keep it small.
local function index(m)
  local by_snake = {}
  for op, snake in pairs(m.snake) do by_snake[snake] = op end
  m.by_snake = by_snake
  return m
end

-- The services ecsplay has models for, sorted.
function M.services()
  local names = {}
  for k in pairs(SERVICES) do names[#names + 1] = k end
  table.sort(names)
  return names
end

-- model.load("ecs") → model table (cached). Raises on an unknown service.
function M.load(service)
  local m = cache[service]
  if m then return m end
  if not SERVICES[service] then
    error(string.format("unknown AWS service %q (expected one of: %s)", tostring(service),
      table.concat(M.services(), ", ")), 2)
  end
  -- lazy: the generated models are large; each loads when its service is first used
  m = index(require("ecsplay.aws.models." .. service))
  cache[service] = m
  return m
end

-- botocore's xform_name, for names not in a model's table.
function M.xform_name(name)
  if name:find("_", 1, true) then return name end
  -- [A-Z]{2,}s$ → "_" .. lower (e.g. "ARNs" → "_arns"), leftmost match like re.search.
  local head, tail = name:match("^(.-)(%u%u+s)$")
  if head then name = head .. "_" .. tail:lower() end
  -- (.)([A-Z][a-z]+) then ([a-z0-9])([A-Z]); gsub scans without overlap like re.sub.
  name = name:gsub("(.)(%u%l+)", "%1_%2")
  name = name:gsub("([%l%d])(%u)", "%1_%2")
  return name:lower()
end

-- model.snake(opname) → "describe_services".
function M.snake(m, opname)
  if type(m) == "string" then return M.xform_name(m) end
  return m.snake[opname] or M.xform_name(opname)
end

-- model.operation(m, "DescribeServices" or "describe_services") → operation table or nil.
function M.operation(m, name)
  local op = m.operations[name]
  if op then return op end
  local real = m.by_snake and m.by_snake[name]
  return real and m.operations[real] or nil
end

-- Resolve a shape reference: a shape name, or a member table {shape=...}.
function M.shape(m, ref)
  if type(ref) == "table" then ref = ref.shape end
  return m.shapes[ref]
end

-- Iterate a structure's members in model order: for name, member, shape in model.members(m, sh)
function M.members(m, sh)
  local order, i = sh.order or {}, 0
  return function()
    i = i + 1
    local name = order[i]
    if name == nil then return nil end
    local mem = sh.members[name]
    return name, mem, m.shapes[mem.shape]
  end
end

-- The shape table of an operation's input / output (nil when the operation has none).
function M.input_shape(m, opname)
  local op = M.operation(m, opname)
  return op and op.input and m.shapes[op.input] or nil
end

function M.output_shape(m, opname)
  local op = M.operation(m, opname)
  return op and op.output and m.shapes[op.output] or nil
end

-- Find an error shape by shape name ("RuleNotFoundException") or wire code ("RuleNotFound").
-- → shape_name, shape (or nil).
function M.error_shape(m, code)
  local sh = m.shapes[code]
  if sh and (sh.exception or sh.error) then return code, sh end
  if not m.error_codes then
    local idx = {}
    for name, s in pairs(m.shapes) do
      if s.error and s.error.code and not idx[s.error.code] then idx[s.error.code] = name end
    end
    -- Prefer the shape whose own name is the code (CloudWatch has two shapes for some codes).
    for name, s in pairs(m.shapes) do
      if s.error and s.error.code == name then idx[name] = name end
    end
    m.error_codes = idx
  end
  local name = m.error_codes[code]
  if name then return name, m.shapes[name] end
  return nil
end

-- The code an error has on the query wire (error.code), else its shape name.
function M.query_error_code(m, code)
  local name, sh = M.error_shape(m, code)
  if sh and sh.error and sh.error.code then return sh.error.code end
  return name or code
end

-- Sorted operation names (for generated service modules and help texts).
function M.operation_names(m)
  local names = {}
  for k in pairs(m.operations) do names[#names + 1] = k end
  table.sort(names)
  return names
end

return M
