--[[
The simulator's front door: which service and protocol a request is for, and the errors
AWS gives before an operation runs (unknown service or operation, bad input).

frontend.detect(headers, body) → { service=, kind="json"|"query", model=, codec= }
                                  or nil, { code=, message=, status=, kind= }
frontend.validate(model, kind, op, params) → nil or {code=, message=, status=}
frontend.error_response(detected, err, request_id) → status, headers, body

`kind` here is the request's protocol ("json" or "query"), and the error tables are
answers the simulator serves (encoded in that protocol), never raised: plain tables.

Which service: the credential scope of the Authorization header names it (that is what AWS's
endpoints effectively do: one host per service). Unsigned requests fall back to the
X-Amz-Target prefix (JSON) or the form's Version (query). Which protocol: JSON when there is
an X-Amz-Target, else query. CloudWatch speaks both: ecsplay and recent SDKs send JSON 1.0,
Debian's boto3 1.26 / awscli 2.9 send query; each is answered in the protocol it asked in.
]]
local model_lib = require "ecsplay.aws.model"
local protocol = require "ecsplay.aws.protocol"
local validate = require "ecsplay.aws.validate"
local iam = require "ecsplay.sim.iam"

local M = {}

local BY_SIGNING = { ecs = "ecs", elasticloadbalancing = "elbv2", codedeploy = "codedeploy",
  monitoring = "cloudwatch", sts = "sts" }
local SERVICES = { "ecs", "elbv2", "codedeploy", "cloudwatch", "sts" }
M.SERVICES = SERVICES

local by_target, by_version
local function indexes()
  if by_target then return end
  by_target, by_version = {}, {}
  for _, s in ipairs(SERVICES) do
    local m = model_lib.load(s)
    local md = m.metadata
    if md.targetPrefix then by_target[md.targetPrefix] = s end
    for _, p in ipairs(md.protocols or { md.protocol }) do
      if p == "query" then by_version[md.apiVersion] = s end
    end
  end
end

local function url_decode(s)
  s = s:gsub("+", " ")
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

local function form_field(body, name)
  for pair in (body or ""):gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=?(.*)$")
    if url_decode(k) == name then return url_decode(v) end
  end
  return nil
end

-- A minimal error encoder for when no service could be picked (no model to encode with).
local function bare_error(kind, code, message, status, request_id)
  if kind == "query" then
    local esc = function(s) return (s:gsub("&", "&amp;"):gsub("<", "&lt;"):gsub(">", "&gt;")) end
    return status, { ["Content-Type"] = "text/xml", ["x-amzn-RequestId"] = request_id },
      string.format('<ErrorResponse><Error><Type>Sender</Type><Code>%s</Code><Message>%s</Message></Error>'
        .. '<RequestId>%s</RequestId></ErrorResponse>', esc(code), esc(message), request_id)
  end
  local q = function(s) return '"' .. s:gsub('[%c"\\]', function(c)
    return string.format("\\u%04x", c:byte()) end) .. '"' end
  return status, { ["Content-Type"] = "application/x-amz-json-1.1", ["x-amzn-RequestId"] = request_id },
    string.format('{"__type":%s,"message":%s}', q(code), q(message))
end
M.bare_error = bare_error

function M.detect(headers, body)
  indexes()
  local target = headers["x-amz-target"]
  local ct = (headers["content-type"] or ""):lower()
  local kind = (target or ct:find("json", 1, true)) and "json" or "query"
  local service
  local authz = headers["authorization"]
  if authz then
    local scope_svc = authz:match("Credential=[^/,%s]+/%d+/[^/,%s]+/([^/,%s]+)/")
    if scope_svc then
      service = BY_SIGNING[scope_svc]
      if not service then
        return nil, { kind = kind, code = kind == "json" and "UnrecognizedClientException" or "InvalidClientTokenId",
          status = 400, message = string.format("The ecsplay simulator does not serve the %q service "
            .. "(it serves ecs, elasticloadbalancing, codedeploy, monitoring and sts)", scope_svc) }
      end
    end
  end
  if not service then
    if target then
      service = by_target[target:match("^([^%.]+)%.") or ""]
    else
      service = by_version[form_field(body, "Version") or ""]
    end
  end
  if not service then
    local what = target and string.format("X-Amz-Target %q", target)
      or string.format("Version %q", tostring(form_field(body, "Version")))
    return nil, { kind = kind, code = kind == "json" and "UnknownOperationException" or "InvalidAction",
      status = 400, message = string.format("Cannot tell which service this request is for (%s; "
        .. "no SigV4 credential scope)", what) }
  end
  local m = model_lib.load(service)
  local codec, name = protocol.for_request(m, headers)
  if not codec then
    return nil, { kind = kind, code = kind == "json" and "UnknownOperationException" or "InvalidAction",
      status = 400, message = name }
  end
  return { service = service, kind = name, model = m, codec = codec }
end

-- How AWS words each kind of model violation (the validator's problem kinds,
-- ecsplay.aws.validate). false: ignored, as AWS does (a client with a newer
-- model may send members this model lacks). Kinds not listed keep the
-- validator's own message.
local AWS_WORDING = {
  unknown_member = false,
  missing_required = function(path)
    return string.format("Value null at '%s' failed to satisfy constraint: Member must not be null", path)
  end,
}

-- AWS's answer to model violations; everything but unknown members is refused
-- before the operation runs.
function M.validate(m, kind, op, params)
  local ok, err = validate.check(m, op, params)
  if ok then return nil end
  local msgs = {}
  for _, e in ipairs(err.errors or {}) do
    local path = e.path ~= "" and e.path or "input"
    local wording = AWS_WORDING[e.kind]
    if wording then
      msgs[#msgs + 1] = wording(path)
    elseif wording == nil then
      msgs[#msgs + 1] = e.message
    end
  end
  if #msgs == 0 then
    if #(err.errors or {}) > 0 then return nil end
    msgs[1] = err.message
  end
  return { code = kind == "query" and "ValidationError" or "ValidationException", status = 400,
    query_code = "ValidationError",
    message = string.format("%d validation error%s detected: %s", #msgs, #msgs == 1 and "" or "s",
      table.concat(msgs, "; ")) }
end

--[[ Drops members the model does not know (see validate above) so operations see clean
     input. Per shape (weak: dropped with its model), a stripper fn(v), or false for a shape
     that holds no structure (nothing in it to drop), so strings, numbers and lists of them
     are not walked. ]]
local strippers = setmetatable({}, { __mode = "k" })
local stripper_of

local function build_stripper(m, sh)
  if sh.type == "structure" and sh.members then
    local inner = {}
    for name, mem in pairs(sh.members) do inner[name] = stripper_of(m, m.shapes[mem.shape]) end
    return function(v)
      for k, x in pairs(v) do
        local strip = inner[k]
        if strip == nil then v[k] = nil elseif strip and type(x) == "table" then strip(x) end
      end
    end
  elseif sh.type == "list" and sh.member then
    local strip = stripper_of(m, m.shapes[sh.member.shape])
    if not strip then return false end
    return function(v)
      for _, item in ipairs(v) do
        if type(item) == "table" then strip(item) end
      end
    end
  elseif sh.type == "map" and sh.value then
    local strip = stripper_of(m, m.shapes[sh.value.shape])
    if not strip then return false end
    return function(v)
      for _, item in pairs(v) do
        if type(item) == "table" then strip(item) end
      end
    end
  end
  return false
end

function stripper_of(m, sh)
  if not sh then return false end
  local strip = strippers[sh]
  if strip ~= nil then return strip end
  local built
  strippers[sh] = function(v) if built then built(v) end end -- stand-in for a recursive shape
  built = build_stripper(m, sh)
  strippers[sh] = built
  return built
end

function M.strip_unknown(m, shape_name, v)
  if type(v) ~= "table" then return v end
  local strip = stripper_of(m, m.shapes[shape_name])
  if strip then strip(v) end
  return v
end

-- IAM (sim/iam.lua): the call's checks are recorded, and refused with AccessDenied(Exception)
-- when the scenario's policy does not allow them. → nil or the error answer.
function M.authorize(sim, d, op, params, world)
  return iam.authorize(sim, d.service, op, params, d.kind, world)
end

--[[ CloudWatch speaks JSON query-compatibly (awsQueryCompatible): its errors carry
     `x-amzn-query-error: CODE;Sender|Receiver`, CODE being what the same error is called over
     the query protocol, which SDKs then report (botocore parsers.py). The model's awsQueryError
     code is that name for the errors it has (the JSON codec writes it); for the others (throttling,
     signatures, validation, access: AWS's common errors) it is the query spelling the answer's
     maker gives, err.query_code ("Throttling" for "ThrottlingException"). ]]
local function query_compatible(m, err, headers)
  local header = headers["x-amzn-query-error"]
  if not (header and err.query_code) then return end
  local _, sh = model_lib.error_shape(m, err.code)
  if sh and sh.error and sh.error.code then return end
  headers["x-amzn-query-error"] = err.query_code .. (header:match(";.*$") or "")
end

function M.error_response(d, err, request_id)
  if d and d.codec then
    local status, headers, body = d.codec.encode_error(d.model, err.code, err.message, err.status or 400, request_id)
    query_compatible(d.model, err, headers)
    return status, headers, body
  end
  return bare_error(err.kind or (d and d.kind) or "json", err.code, err.message, err.status or 400, request_id)
end

-- STS: only what SDKs and ecsplay ask it for (who am I); the account is the world's.
M.sts = {
  name = "sts",
  ops = {
    GetCallerIdentity = function(world)
      return { UserId = "AIDASIMULATOR00000000", Account = world.account,
        Arn = string.format("arn:aws:iam::%s:user/simulator", world.account) }
    end,
  },
}

return M
