-- The compiled (per-shape) codecs and validation against the generic walks they replace on
-- the hot path: on random values of every shape of the models, the same bytes, the same
-- tables, the same yes/no, the same errors. The walks stay the reference (they word the
-- errors with paths), so any difference is a bug in the compiled form.
local T = require "harness"
local cjson = require "cjson"
local model = require "ecsplay.aws.model"
local json = require "ecsplay.aws.protocol.json"
local query = require "ecsplay.aws.protocol.query"
local validate = require "ecsplay.aws.validate"
local frontend = require "ecsplay.sim.frontend"
local tables = require "ecsplay.util.tables"

local JSON_MODELS = { "ecs", "codedeploy", "cloudwatch" }
local ALL_MODELS = { "ecs", "codedeploy", "cloudwatch", "elbv2", "sts" }

-- A small deterministic generator (the same values every run, whatever the process's seed).
local seed = 12345
local function rnd()
  seed = (seed * 1103515245 + 12345) % 2147483648
  return seed / 2147483648
end
local function pick(list) return list[math.floor(rnd() * #list) + 1] end

local STRINGS = { "api", "arn:aws:ecs:us-east-1:123456789012:service/production/api", "",
  'quote " and \\ backslash', "line\nbreak\ttab", "caf\195\169", "<tag>&amp;", "\1control" }
local strings_pool = STRINGS
-- wild: also values of the wrong type, nulls and unknown members (what decoding and
-- validation must refuse or drop exactly as the walks do)
local WILD = { "text", 7, 2.5, true, {}, { 1, 2 }, cjson.null, json.null }

local function gen(m, sh, depth, wild)
  local t = sh.type
  if wild and rnd() < 0.06 then return pick(WILD) end
  if t == "structure" then
    local r = {}
    if depth > 4 or sh.document then return r end
    for _, name in ipairs(sh.order or {}) do
      if rnd() < 0.55 then r[name] = gen(m, m.shapes[sh.members[name].shape], depth + 1, wild) end
    end
    if wild and rnd() < 0.1 then r.notAMember = "x" end
    return r
  elseif t == "list" then
    local r = {}
    if depth > 4 then return r end
    for i = 1, math.floor(rnd() * 4) do r[i] = gen(m, m.shapes[sh.member.shape], depth + 1, wild) end
    return r
  elseif t == "map" then
    local r = {}
    for i = 1, math.floor(rnd() * 3) do r["k" .. i] = gen(m, m.shapes[sh.value.shape], depth + 1, wild) end
    return r
  elseif t == "string" then
    if sh.enum and rnd() < 0.8 then return pick(sh.enum) end
    return pick(strings_pool)
  elseif t == "integer" or t == "long" then
    return pick { 0, 1, 42, -3, 3.0, 1e6 }
  elseif t == "double" or t == "float" then
    return pick { 0.5, 2, 2.0, 1e300, -1.25, 1 / 3 }
  elseif t == "boolean" then
    return rnd() < 0.5
  elseif t == "timestamp" then
    return pick { 1795000000, 1795000000.25, "2026-11-26T10:00:00Z" }
  elseif t == "blob" then
    return "bytes\0with nul"
  end
  return "other"
end

local function sorted_names(m, want)
  local names = {}
  for name, sh in pairs(m.shapes) do
    if want(sh) then names[#names + 1] = name end
  end
  table.sort(names)
  return names
end
local function is_structure(sh) return sh.type == "structure" end

local function outcome(fn, ...)
  local r = table.pack(pcall(fn, ...))
  if not r[1] then r[2] = tostring(r[2]) end
  return r
end

T.test("compiled JSON encoders write the walk's bytes, or raise its error", function()
  local compared, failed = 0, 0
  for _, service in ipairs(JSON_MODELS) do
    local m = model.load(service)
    for _, name in ipairs(sorted_names(m, is_structure)) do
      for round = 1, 3 do
        local v = gen(m, m.shapes[name], 0, round == 3)
        local got = outcome(json.encode_shape, m, name, v)
        local want = outcome(json.encode_walk, m, name, v)
        T.eq(got, want, service .. " " .. name)
        compared = compared + 1
        if not got[1] then failed = failed + 1 end
      end
    end
  end
  T.ok(compared > 2000, "shapes compared: " .. compared)
  T.ok(failed > 0 and failed < compared, "some values cannot be encoded, most can: " .. failed)
end)

T.test("a bad value still gets the walk's message with its path", function()
  local m = model.load("cloudwatch")
  T.raises(function()
    json.encode_shape(m, "GetMetricDataInput", { StartTime = 1, EndTime = 2,
      MetricDataQueries = { { Id = "a", Expression = "x" }, { Id = "b", Period = 0 / 0 } } })
  end, "MetricDataQueries%[2%]%.Period", "the non-finite number's path")
end)

T.test("in-place typing gives what the copying walk gives, lenient and strict", function()
  local same_strict_ok, strict_fail = 0, 0
  for _, service in ipairs(JSON_MODELS) do
    local m = model.load(service)
    for _, name in ipairs(sorted_names(m, is_structure)) do
      local sh = m.shapes[name]
      for round = 1, 2 do
        local v = gen(m, sh, 0, round == 2)
        local lenient_got = json.type_in_place(m, sh, tables.copy(v), false)
        T.eq(lenient_got, json.typed(m, sh, tables.copy(v), "", false), "lenient " .. name)
        local got = table.pack(pcall(json.type_in_place, m, sh, tables.copy(v), true))
        local want = table.pack(pcall(json.typed, m, sh, tables.copy(v), "", true))
        T.eq(got[1], want[1], "strict accepts the same values: " .. name)
        if got[1] then
          T.eq(got[2], want[2], "strict " .. name)
          same_strict_ok = same_strict_ok + 1
        else
          strict_fail = strict_fail + 1
        end
      end
    end
  end
  T.ok(same_strict_ok > 500 and strict_fail > 50, ("both outcomes seen: %d typed, %d refused")
    :format(same_strict_ok, strict_fail))
end)

T.test("decode_request refuses a mistyped member with the walk's message and path", function()
  local m = model.load("ecs")
  local op, err = json.decode_request(m, '{"cluster":"c","services":["a",null,5]}',
    { ["X-Amz-Target"] = "AmazonEC2ContainerServiceV20141113.DescribeServices" })
  T.eq(op, nil)
  T.eq(err.code, "SerializationException")
  -- the index is the request's own (before nulls are dropped): the walk over a fresh decode
  T.eq(err.message, "expected a string at `services[3]`, found number")
  op, err = json.decode_request(m, '{"cluster":"c","services":["a",null,"b"],"x":1}',
    { ["X-Amz-Target"] = "AmazonEC2ContainerServiceV20141113.DescribeServices" })
  T.eq(op, "DescribeServices")
  T.eq(err, { cluster = "c", services = { "a", "b" } }, "nulls and unknown members dropped")
end)

T.test("validate.fits says yes exactly when the Checker finds no problem", function()
  local yes, no = 0, 0
  for _, service in ipairs(ALL_MODELS) do
    local m = model.load(service)
    for _, name in ipairs(sorted_names(m, is_structure)) do
      for round = 1, 2 do
        local v = gen(m, m.shapes[name], 0, round == 2)
        local fits = validate.fits(m, name, v)
        local problems = validate.problems(m, name, v)
        T.eq(fits, #problems == 0, service .. " " .. name .. ": " .. (problems[1] and problems[1].message or ""))
        if fits then yes = yes + 1 else no = no + 1 end
      end
    end
  end
  T.ok(yes > 300 and no > 300, ("both answers seen: %d yes, %d no"):format(yes, no))
end)

-- The walk strip_unknown replaced: every member the model lacks goes, at any depth.
local function strip_walk(m, shape_name, v)
  local sh = m.shapes[shape_name]
  if not sh or type(v) ~= "table" then return v end
  if sh.type == "structure" and sh.members then
    for k in pairs(v) do
      local mem = sh.members[k]
      if not mem then v[k] = nil else strip_walk(m, mem.shape, v[k]) end
    end
  elseif sh.type == "list" and sh.member then
    for _, item in ipairs(v) do strip_walk(m, sh.member.shape, item) end
  elseif sh.type == "map" and sh.value then
    for _, item in pairs(v) do strip_walk(m, sh.value.shape, item) end
  end
  return v
end

T.test("frontend.strip_unknown drops what the member-by-member walk drops", function()
  local stripped = 0
  for _, service in ipairs(ALL_MODELS) do
    local m = model.load(service)
    for _, name in ipairs(sorted_names(m, is_structure)) do
      local v = gen(m, m.shapes[name], 0, true)
      local want = strip_walk(m, name, tables.copy(v))
      T.eq(frontend.strip_unknown(m, name, tables.copy(v)), want, service .. " " .. name)
      if not T.deep_eq(want, v) then stripped = stripped + 1 end
    end
  end
  T.ok(stripped > 20, "values that lost a member: " .. stripped)
end)

T.test("query: responses read back as written, for every output shape of elbv2", function()
  local m = model.load("elbv2")
  local count = 0
  -- XML 1.0 cannot carry control characters: the other strings
  strings_pool = {}
  for _, s in ipairs(STRINGS) do
    if not s:find("\1", 1, true) then strings_pool[#strings_pool + 1] = s end
  end
  for _, opname in ipairs(model.operation_names(m)) do
    local op = m.operations[opname]
    if op.output then
      local out = gen(m, m.shapes[op.output], 0, false)
      local _, headers, body = query.encode_response(m, opname, out, "rid")
      local ok, back = query.parse_response(m, opname, 200, headers, body)
      T.ok(ok, opname)
      -- what XML cannot carry: empty structures and lists read back absent or empty
      local _, _, again = query.encode_response(m, opname, back, "rid")
      T.eq(again, body, opname .. " reads back to the same XML")
      count = count + 1
    end
  end
  strings_pool = STRINGS
  T.ok(count > 20, "operations: " .. count)
end)
