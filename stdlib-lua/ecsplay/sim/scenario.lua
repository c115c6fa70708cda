--[[
Scenario files (docs/scenario.md): loading, checking and normalising.

scenario.load(path)        → normalised scenario table, or raises "path:line: field: problem"
scenario.check(tbl, name)  → the same for a table already in memory (name = where it came from)

Why check everything up front: a typo in a scenario ("eror_rate") would otherwise silently
give the default behaviour, and the rehearsal would pass for the wrong reason. So every
field is checked, unknown keys are refused with a "did you mean", and every error names the
file, a line (best effort: found by scanning the source for the field's keys) and the field
path as the user would write it: images["api:v2"].start.

The normalised table has durations in seconds, start as epoch seconds, and
`image_list` = the images in lookup order (exact names before "~patterns", each sorted),
ready for World.new{images=}.
]]
local timestamp = require "ecsplay.util.timestamp"
local strings = require "ecsplay.util.strings"
local duration = require "ecsplay.duration"
local errors = require "ecsplay.errors"
local iam = require "ecsplay.sim.iam"
local endpoints = require "ecsplay.aws.endpoints"

local M = {}

--[[ Ranges (docs/scenario.md "Ranges"): what keeps a rehearsal finite and its numbers
     finite. The world ticks every 5 simulated seconds, so a time far away is work, and
     a rate or latency of 1e308 makes every metric inf. ]]
M.START_MIN = 946684800          -- 2000-01-01T00:00:00Z
M.START_MAX = 4102444800         -- 2100-01-01T00:00:00Z (exclusive)
M.MAX_OFFSET = 366 * 86400       -- at/from/to, alarm `then` times, image start/after, timeouts
M.MAX_DELAY = 3600               -- a fault's delay (an SDK gives up after 60 s anyway)
M.MAX_RPS = 1000000              -- traffic.rps and per-listener rates
M.MAX_LATENCY_MS = 4000000       -- an ALB's idle timeout is at most 4000 s
M.MAX_TIMES = 1000000000         -- a fault's `times`

local SERVICES = { ecs = true, elbv2 = true, codedeploy = true, cloudwatch = true, sts = true, ["*"] = true }
local ALARM_STATES = { OK = true, ALARM = true, INSUFFICIENT_DATA = true }
local normalised = setmetatable({}, { __mode = "k" })

-- Every problem is errors.new("scenario", { file=, line=, field=, message= }):
-- bad input (exit 2) for the command line, a 400 for POST /_sim/faults.
local function scenario_error(fields) return errors.new("scenario", fields) end

-- How a scenario value is shown in a message (scenario files hold strings,
-- numbers, tables and functions; never a secret: keys are checked by type only).
local function describe(v)
  local t = type(v)
  if t == "string" then return string.format("string %q", #v > 40 and v:sub(1, 37) .. "..." or v) end
  if t == "number" then return "number " .. tostring(v) end
  return t
end

local function key_repr(k)
  if type(k) == "string" and k:match("^[%a_][%w_]*$") then return "." .. k end
  if type(k) == "string" then return string.format("[%q]", k) end
  return "[" .. tostring(k) .. "]"
end

-- Best-effort line of a field: find each path component in turn in the source text,
-- each search starting where the previous one matched.
local function find_line(src, keys)
  if not src then return nil end
  local lines = {}
  for l in (src .. "\n"):gmatch("([^\n]*)\n") do lines[#lines + 1] = l end
  local from, found = 1, nil
  for _, k in ipairs(keys) do
    if type(k) == "string" then
      local plain = k:match("^[%a_][%w_]*$") and ("%f[%w_]" .. k .. "%s*=") or nil
      local quoted = '%[%s*["\']' .. k:gsub("%p", "%%%0") .. '["\']%s*%]'
      local hit
      for i = from, #lines do
        local line = lines[i]:gsub("%-%-.*$", "")
        if (plain and line:find(plain)) or line:find(quoted) then hit = i break end
      end
      if hit then found, from = hit, hit end
    elseif type(k) == "number" and found then
      -- the k-th table constructor after the list's key: count lines that open one
      local n = 0
      for i = from + 1, #lines do
        local line = lines[i]:gsub("%-%-.*$", "")
        if line:find("^%s*{") then
          n = n + 1
          if n == k then found, from = i, i break end
        end
      end
    end
  end
  return found
end

local Ctx = {}
Ctx.__index = Ctx

-- Raises the error for field path `keys` (a list of keys from the scenario root).
function Ctx:fail(keys, msg)
  local parts = {}
  for i, k in ipairs(keys) do
    local r = key_repr(k)
    if i == 1 and r:sub(1, 1) == "." then r = r:sub(2) end
    parts[#parts + 1] = r
  end
  local field = table.concat(parts)
  local line = find_line(self.src, keys)
  local where = self.name .. (line and (":" .. line) or "")
  error(scenario_error { file = self.name, line = line, field = field,
    message = string.format("%s: %s%s", where, field ~= "" and (field .. ": ") or "", msg) }, 0)
end

local function path_plus(keys, k)
  local p = {}
  for i, v in ipairs(keys) do p[i] = v end
  p[#p + 1] = k
  return p
end

-- Unknown keys → error with a suggestion.
function Ctx:known(tbl, keys, allowed)
  local names = {}
  for k in pairs(allowed) do names[#names + 1] = k end
  table.sort(names)
  local bad = {}
  for k in pairs(tbl) do
    if not allowed[k] then bad[#bad + 1] = k end
  end
  table.sort(bad, function(a, b) return tostring(a) < tostring(b) end)
  local k = bad[1]
  if k == nil then return end
  if type(k) ~= "string" then
    self:fail(keys, string.format("unexpected list item [%s]; expected named fields (%s)",
      tostring(k), table.concat(names, ", ")))
  end
  self:fail(path_plus(keys, k), string.format("unknown field %q%s (known fields: %s)", k,
    strings.did_you_mean(k, names, { quote = true }), table.concat(names, ", ")))
end

-- A duration in seconds, at most `max` (default M.MAX_OFFSET).
function Ctx:duration(v, keys, allow_fn, max)
  if allow_fn and type(v) == "function" then return v end
  max = max or M.MAX_OFFSET
  local secs, err
  if type(v) == "number" or type(v) == "string" then secs, err = duration.parse(v) end
  if secs == nil or secs < 0 then
    self:fail(keys, string.format("expected a duration (\"40s\", \"5m\" or seconds)%s, got %s%s",
      allow_fn and " or a function" or "", describe(v), err and (" (" .. err .. ")") or ""))
  end
  if secs > max then
    self:fail(keys, string.format("%s is too long: at most %s (%d seconds)", describe(v),
      duration.format(max), max))
  end
  return secs
end

function Ctx:number(v, keys, lo, hi, allow_fn, what)
  if allow_fn and type(v) == "function" then return v end
  if type(v) ~= "number" or v ~= v or (lo and v < lo) or (hi and v > hi) then
    self:fail(keys, string.format("expected %s%s, got %s", what or "a number",
      allow_fn and " or a function" or "", describe(v)))
  end
  return v
end

function Ctx:table(v, keys, what)
  if type(v) ~= "table" then
    self:fail(keys, string.format("expected %s, got %s", what or "a table", describe(v)))
  end
  return v
end

local IMAGE_FIELDS = { start = true, crash = true, after = true, error_rate = true, latency_ms = true }

function Ctx:image(name, v, keys)
  self:table(v, keys, "a table of behaviour fields (start, crash, after, error_rate, latency_ms)")
  self:known(v, keys, IMAGE_FIELDS)
  local b = {}
  if v.start ~= nil then b.start = self:duration(v.start, path_plus(keys, "start"), true) end
  if v.crash ~= nil then
    local c = v.crash
    if type(c) ~= "function" and c ~= "on_start" and c ~= "after" then
      self:fail(path_plus(keys, "crash"),
        string.format("expected \"on_start\", \"after\" or a function, got %s", describe(c)))
    end
    b.crash = c
  end
  if v.after ~= nil then b.after = self:duration(v.after, path_plus(keys, "after"), true) end
  if b.crash == "after" and b.after == nil then
    self:fail(path_plus(keys, "after"), "crash = \"after\" needs `after` (a duration such as \"3m\")")
  end
  if v.error_rate ~= nil then
    b.error_rate = self:number(v.error_rate, path_plus(keys, "error_rate"), 0, 1, true,
      "a number from 0 to 1")
  end
  if v.latency_ms ~= nil then
    local l = v.latency_ms
    local lk = path_plus(keys, "latency_ms")
    if type(l) == "function" then
      b.latency_ms = l
    else
      self:table(l, lk, "a table {p50=, p99=} (milliseconds) or a function")
      self:known(l, lk, { p50 = true, p99 = true })
      local out = {}
      for _, p in ipairs({ "p50", "p99" }) do
        if l[p] == nil then self:fail(path_plus(lk, p), "missing (milliseconds)") end
        out[p] = self:number(l[p], path_plus(lk, p), 0, M.MAX_LATENCY_MS, true,
          string.format("a number of milliseconds from 0 to %d", M.MAX_LATENCY_MS))
      end
      if type(out.p50) == "number" and type(out.p99) == "number" and out.p99 < out.p50 then
        self:fail(path_plus(lk, "p99"), string.format("p99 (%s) is below p50 (%s)", out.p99, out.p50))
      end
      b.latency_ms = out
    end
  end
  if type(name) ~= "string" or name == "" or name == "~" then
    self:fail(keys, "image keys must be non-empty strings (an image name, or \"~\" and a Lua pattern)")
  end
  if name:sub(1, 1) == "~" then
    local ok, err = pcall(string.find, "", name:sub(2))
    if not ok then self:fail(keys, "bad Lua pattern: " .. tostring(err)) end
  end
  return b
end

-- Images map → lookup-ordered list: exact names first, then patterns; sorted for determinism.
function M.image_list(images)
  local exact, patterns = {}, {}
  for k in pairs(images or {}) do
    if k:sub(1, 1) == "~" then patterns[#patterns + 1] = k else exact[#exact + 1] = k end
  end
  table.sort(exact)
  table.sort(patterns)
  local list = {}
  for _, k in ipairs(exact) do list[#list + 1] = { key = k, behaviour = images[k] } end
  for _, k in ipairs(patterns) do list[#list + 1] = { key = k, behaviour = images[k] } end
  return list
end

local FAULT_FIELDS = { service = true, operation = true, error = true, status = true, delay = true,
  drop = true, times = true, at = true, from = true, to = true, message = true, rate = true,
  per = true, burst = true, region = true }
M.MAX_RATE = 1000000             -- a rate fault's requests per second (or minute), and burst
local RATE_PERIODS = { second = 1, minute = 60 }

-- A rate fault: rate = requests a `per` ("second", default, or "minute"), burst = the
-- bucket's capacity (default: one period's rate, at least 1). AWS's token bucket.
function Ctx:rate_fault(f, keys, out)
  out.rate = self:number(f.rate, path_plus(keys, "rate"), 0, M.MAX_RATE, false,
    string.format("a number of requests above 0 and at most %d", M.MAX_RATE))
  if out.rate <= 0 then self:fail(path_plus(keys, "rate"), "expected a number of requests above 0, got 0") end
  local per = f.per == nil and "second" or f.per
  if not RATE_PERIODS[per] then
    self:fail(path_plus(keys, "per"), "expected \"second\" or \"minute\", got " .. describe(per))
  end
  out.per = per
  out.refill = out.rate / RATE_PERIODS[per]
  if f.burst ~= nil then
    out.burst = self:number(f.burst, path_plus(keys, "burst"), 1, M.MAX_RATE, false,
      string.format("a number of requests from 1 to %d", M.MAX_RATE))
  else
    out.burst = math.max(1, out.rate)
  end
  if f.drop or f.delay then
    self:fail(keys, "a rate fault answers with a throttling error: drop= and delay= do not go with rate=")
  end
end

-- One fault (also used for faults added at run time through /_sim/faults).
function Ctx:fault(f, keys)
  self:table(f, keys, "a fault table {service=, operation=, error=|status=|delay=|drop=, ...}")
  self:known(f, keys, FAULT_FIELDS)
  local out = {}
  local svc = f.service == nil and "*" or f.service
  if type(svc) ~= "string" or not SERVICES[svc] then
    self:fail(path_plus(keys, "service"), string.format(
      "expected one of \"ecs\", \"elbv2\", \"codedeploy\", \"cloudwatch\", \"sts\" or \"*\", got %s",
      describe(svc)))
  end
  out.service = svc
  local op = f.operation == nil and "*" or f.operation
  if type(op) ~= "string" or not op:match("^[%*%a][%w]*$") then
    self:fail(path_plus(keys, "operation"),
      string.format("expected an operation name such as \"ModifyRule\" or \"*\", got %s", describe(op)))
  end
  out.operation = op
  if f.error ~= nil then
    if type(f.error) ~= "string" or not f.error:match("^[%a][%w%.]*$") then
      self:fail(path_plus(keys, "error"),
        string.format("expected an AWS error code such as \"ThrottlingException\", got %s", describe(f.error)))
    end
    out.error = f.error
  end
  if f.status ~= nil then
    if math.type(f.status) ~= "integer" or f.status < 400 or f.status > 599 then
      self:fail(path_plus(keys, "status"), string.format("expected an HTTP error status (400-599), got %s",
        describe(f.status)))
    end
    out.status = f.status
  end
  if f.message ~= nil then
    if type(f.message) ~= "string" then self:fail(path_plus(keys, "message"), "expected a string, got " .. describe(f.message)) end
    out.message = f.message
  end
  if f.delay ~= nil then out.delay = self:duration(f.delay, path_plus(keys, "delay"), false, M.MAX_DELAY) end
  if f.drop ~= nil then
    if type(f.drop) ~= "boolean" then self:fail(path_plus(keys, "drop"), "expected true or false, got " .. describe(f.drop)) end
    out.drop = f.drop or nil
  end
  if f.times ~= nil then
    if math.type(f.times) ~= "integer" or f.times < 1 or f.times > M.MAX_TIMES then
      self:fail(path_plus(keys, "times"), string.format("expected an integer from 1 to %d, got %s",
        M.MAX_TIMES, describe(f.times)))
    end
    out.times = f.times
  end
  for _, w in ipairs({ "at", "from", "to" }) do
    if f[w] ~= nil then out[w] = self:duration(f[w], path_plus(keys, w)) end
  end
  if f.rate ~= nil then self:rate_fault(f, keys, out)
  elseif f.per ~= nil or f.burst ~= nil then
    self:fail(path_plus(keys, f.per ~= nil and "per" or "burst"), "goes with rate= (a rate fault)")
  end
  if f.region ~= nil then
    if type(f.region) ~= "string" or not f.region:match("^%l%l[%l%-]*%-%d+$") then
      self:fail(path_plus(keys, "region"), "expected a Region name such as \"eu-west-1\", got " .. describe(f.region))
    end
    out.region = f.region
  end
  if out.at and (out.from or out.to) then
    self:fail(path_plus(keys, "at"), "use either `at` or `from`/`to`, not both")
  end
  if out.from and out.to and out.to <= out.from then
    self:fail(path_plus(keys, "to"), string.format("`to` (%ss) must be after `from` (%ss)", out.to, out.from))
  end
  if not (out.error or out.status or out.delay or out.drop or out.rate) then
    self:fail(keys, "a fault needs an effect: error=, status=, delay=, drop=true or rate=")
  end
  return out
end

-- keys = { ACCESS_KEY_ID = "secret" | { secret = "secret", account = "210987654321" } }: the
-- key pairs the simulator accepts, and the account each belongs to (default: `account`).
-- → secrets by key id, accounts by key id (only those given one)
function Ctx:keys(keys)
  self:table(keys, { "keys" }, "a table { ACCESS_KEY_ID = \"secret\" }")
  local n, out, accounts = 0, {}, {}
  for k, v in pairs(keys) do
    if type(k) ~= "string" or k == "" then self:fail({ "keys" }, "access key ids must be non-empty strings") end
    if type(v) == "table" then
      self:known(v, { "keys", k }, { secret = true, account = true })
      accounts[k] = self:account(v.account, { "keys", k, "account" })
      v = v.secret
    end
    -- never echo the secret: describe only its type
    if type(v) ~= "string" or v == "" then self:fail({ "keys", k }, "expected the secret key as a non-empty string, got " .. type(v)) end
    out[k] = v
    n = n + 1
  end
  if n == 0 then self:fail({ "keys" }, "no key pairs given (omit `keys` for the default pair)") end
  return out, accounts
end

function Ctx:account(v, keys)
  if type(v) ~= "string" or not v:match("^%d%d%d%d%d%d%d%d%d%d%d%d$") then
    self:fail(keys, "expected a 12-digit AWS account id as a string, got " .. describe(v))
  end
  return v
end

M.MAX_REGIONS = 32

-- regions = { "us-east-1", "eu-west-1", ... }: the Regions the simulator serves (the first
-- is the default world's; each gets its own world).
function Ctx:regions(v)
  self:table(v, { "regions" }, "a list of Region names such as { \"us-east-1\", \"eu-west-1\" }")
  local n, seen, out = #v, {}, {}
  for k in pairs(v) do
    if math.type(k) ~= "integer" or k < 1 or k > n then
      self:fail({ "regions" }, "expected a list { \"us-east-1\", ... }, found key " .. tostring(k))
    end
  end
  if n == 0 or n > M.MAX_REGIONS then
    self:fail({ "regions" }, string.format("expected 1 to %d Regions, got %d", M.MAX_REGIONS, n))
  end
  for i = 1, n do
    local r = v[i]
    if type(r) ~= "string" or not r:match("^%l%l[%l%-]*%-%d+$") then
      self:fail({ "regions", i }, "expected a Region name such as \"eu-west-1\", got " .. describe(r)
        .. (type(r) == "string" and endpoints.region_hint(r) or ""))
    end
    if not endpoints.known_region(r) then
      self:fail({ "regions", i }, string.format("unknown Region %q: not a Region of ecsplay's "
        .. "partition data%s", r, endpoints.region_hint(r)))
    end
    if seen[r] then self:fail({ "regions", i }, string.format("%q is listed twice", r)) end
    seen[r] = true
    out[i] = r
  end
  return out
end

-- roles = { ["arn:aws:iam::210987654321:role/deploy"] = { external_id = "..." } | true }: the
-- roles STS AssumeRole accepts (without `roles`, any role ARN); the assumed credentials
-- belong to the role's account.
function Ctx:roles(v)
  self:table(v, { "roles" }, "a table { [\"arn:aws:iam::ACCOUNT:role/NAME\"] = { external_id = } }")
  local out = {}
  for arn, r in pairs(v) do
    if type(arn) ~= "string" or not arn:match("^arn:aws:iam::%d%d%d%d%d%d%d%d%d%d%d%d:role/[%w+=,%.@_/%-]+$") then
      self:fail({ "roles" }, "keys are role ARNs such as \"arn:aws:iam::210987654321:role/deploy\", got " .. describe(arn))
    end
    if r == true then r = {} end
    self:table(r, { "roles", arn }, "true or a table { external_id = }")
    self:known(r, { "roles", arn }, { external_id = true })
    if r.external_id ~= nil and (type(r.external_id) ~= "string" or #r.external_id < 2) then
      self:fail({ "roles", arn, "external_id" }, "expected a string of 2 or more characters, got " .. describe(r.external_id))
    end
    out[arn] = { external_id = r.external_id, account = arn:match("^arn:aws:iam::(%d+):") }
  end
  return out
end

-- traffic = { rps=, listeners = { [port] = rps }, hosts = { [host name] = rps } }. Listeners
-- are named by port only: a listener's ARN is made by the simulator and cannot be known when
-- the file is written. Host names are compared case-insensitively, as ALB does.
function Ctx:traffic(traffic)
  self:table(traffic, { "traffic" }, "a table {rps=}")
  self:known(traffic, { "traffic" }, { rps = true, listeners = true, hosts = true })
  local tr = {}
  local rate = string.format("a number >= 0 and at most %d (requests per second)", M.MAX_RPS)
  tr.rps = traffic.rps == nil and 200 or self:number(traffic.rps, { "traffic", "rps" }, 0, M.MAX_RPS, false, rate)
  if traffic.listeners ~= nil then
    self:table(traffic.listeners, { "traffic", "listeners" }, "a table { [listener port] = rps }")
    tr.listeners = {}
    for k, v in pairs(traffic.listeners) do
      if math.type(k) ~= "integer" or k < 1 or k > 65535 then
        self:fail({ "traffic", "listeners" }, string.format("keys are listener ports (integers from 1 "
          .. "to 65535, such as [8443]), got %s", describe(k)))
      end
      tr.listeners[k] = self:number(v, { "traffic", "listeners", k }, 0, M.MAX_RPS, false, rate)
    end
  end
  if traffic.hosts ~= nil then
    self:table(traffic.hosts, { "traffic", "hosts" }, "a table { [\"host name\"] = rps }")
    tr.hosts = {}
    for k, v in pairs(traffic.hosts) do
      if type(k) ~= "string" or not k:match("^[%w%-_%.]+$") or #k > 128 then
        self:fail({ "traffic", "hosts" }, string.format("keys are host names (letters, digits, '-', '_' "
          .. "and '.', up to 128 characters, such as [\"api.example.com\"]), got %s", describe(k)))
      end
      tr.hosts[k:lower()] = self:number(v, { "traffic", "hosts", k }, 0, M.MAX_RPS, false, rate)
    end
  end
  return tr
end

-- alarms["name"] = { state=, then = { at=, state= } }
function Ctx:alarm(name, a)
  local keys = { "alarms", name }
  if type(name) ~= "string" then self:fail({ "alarms" }, "alarm names must be strings") end
  self:table(a, keys, "a table {state=, then={at=, state=}}")
  self:known(a, keys, { state = true, ["then"] = true })
  local o = {}
  if a.state ~= nil then
    if not ALARM_STATES[a.state] then
      self:fail(path_plus(keys, "state"), "expected \"OK\", \"ALARM\" or \"INSUFFICIENT_DATA\", got " .. describe(a.state))
    end
    o.state = a.state
  end
  if a["then"] ~= nil then
    local tk = path_plus(keys, "then")
    local th = self:table(a["then"], tk, "a table {at=, state=} or a list of them")
    if th[1] == nil then
      o["then"] = self:alarm_step(th, tk)
    else
      local steps, n = {}, #th
      for k in pairs(th) do
        if math.type(k) ~= "integer" or k < 1 or k > n then
          self:fail(tk, "expected {at=, state=} or a list { {at=, state=}, ... }, found key " .. tostring(k))
        end
      end
      for i = 1, n do
        steps[i] = self:alarm_step(th[i], path_plus(tk, i))
        if i > 1 and steps[i].at <= steps[i - 1].at then
          self:fail(path_plus(path_plus(tk, i), "at"), string.format("must be after the previous "
            .. "step's `at` (%ss)", steps[i - 1].at))
        end
      end
      o["then"] = steps
    end
  end
  return o
end

-- One scripted state change of an alarm: { at = duration from the start, state = }.
function Ctx:alarm_step(th, tk)
  self:table(th, tk, "a table {at=, state=}")
  self:known(th, tk, { at = true, state = true })
  if th.at == nil then self:fail(path_plus(tk, "at"), "missing (a duration from the scenario start, such as \"12m\")") end
  if not ALARM_STATES[th.state] then
    self:fail(path_plus(tk, "state"), "expected \"OK\", \"ALARM\" or \"INSUFFICIENT_DATA\", got " .. describe(th.state))
  end
  return { at = self:duration(th.at, path_plus(tk, "at")), state = th.state }
end

-- codedeploy = { hooks = P | { [function name] = P, ["*"] = P }, hook_timeout =, install_timeout = }
-- with P = "succeed" | "fail" | "wait" | a duration (succeed after it): what the simulated
-- Lambda functions of AppSpec lifecycle hooks do (sim/codedeploy/flow.lua reads it).
function Ctx:hook_policy(p, keys)
  if p == "succeed" or p == "fail" or p == "wait" then return p end
  if type(p) == "number" or (type(p) == "string" and duration.parse(p)) then
    return self:duration(p, keys)
  end
  self:fail(keys, "expected \"succeed\", \"fail\", \"wait\" or a duration (succeed after it), got "
    .. describe(p))
end

function Ctx:codedeploy(c)
  local keys = { "codedeploy" }
  self:table(c, keys, "a table { hooks =, hook_timeout =, install_timeout = }")
  self:known(c, keys, { hooks = true, hook_timeout = true, install_timeout = true })
  local out = {}
  if c.hooks ~= nil then
    local hk = path_plus(keys, "hooks")
    if type(c.hooks) == "table" then
      out.hooks = {}
      for fn, p in pairs(c.hooks) do
        if type(fn) ~= "string" or fn == "" then
          self:fail(hk, "keys are Lambda function names (or \"*\" for any other), got " .. describe(fn))
        end
        out.hooks[fn] = self:hook_policy(p, path_plus(hk, fn))
      end
    else
      out.hooks = self:hook_policy(c.hooks, hk)
    end
  end
  for _, k in ipairs { "hook_timeout", "install_timeout" } do
    if c[k] ~= nil then out[k] = self:duration(c[k], path_plus(keys, k)) end
  end
  return out
end

-- metrics = { delay = "2m" }: how long after a period ends CloudWatch shows the
-- ALB's datapoints for it (nil: the simulator's default, docs/simulator.md).
function Ctx:metrics(m)
  self:table(m, { "metrics" }, "a table { delay = \"2m\" }")
  self:known(m, { "metrics" }, { delay = true })
  local out = {}
  if m.delay ~= nil then out.delay = self:duration(m.delay, { "metrics", "delay" }) end
  return out
end

-- iam = { policy = "file.json" (relative to the scenario's folder) or a policy table }: the
-- identity-based policy the simulator enforces (ecsplay.sim.iam, docs/iam.md).
function Ctx:iam(v)
  self:table(v, { "iam" }, "a table { policy = \"policy.json\" }")
  self:known(v, { "iam" }, { policy = true })
  local p, path = v.policy, nil
  if type(p) == "string" and p ~= "" then
    path = p
    local dir = p:sub(1, 1) ~= "/" and tostring(self.name):match("^(.*)/[^/]*$")
    if dir then path = dir .. "/" .. p end
  elseif type(p) ~= "table" then
    self:fail({ "iam", "policy" }, "expected a policy file name or a policy table, got " .. describe(p))
  end
  local ok, doc = pcall(path and iam.load_policy or iam.check_policy, path or p)
  if not ok then self:fail({ "iam", "policy" }, errors.describe(doc)) end
  return { policy = doc, path = path }
end

-- The steering commands a scenario may script (docs/scenario.md `controls`).
M.CONTROL_COMMANDS = { promote = true, pause = true, unpause = true, abort = true }

-- A list of scripted steering events: approvals = { { at = "5m", by = "alice" [, reject = true] } },
-- controls = { { at = "7m", command = "pause", by = "bob" [, full = true] } } (rollout/control.lua).
function Ctx:script_list(v, key, fields)
  self:table(v, { key }, "a list of tables like { at = \"5m\", by = \"alice\" }")
  local n, out = #v, {}
  for k in pairs(v) do
    if math.type(k) ~= "integer" or k < 1 or k > n then
      self:fail({ key }, "expected a list { {...}, {...} }, found key " .. tostring(k))
    end
  end
  for i = 1, n do
    local e, keys = v[i], { key, i }
    self:table(e, keys, "a table like { at = \"5m\", by = \"alice\" }")
    self:known(e, keys, fields)
    if e.at == nil then self:fail(path_plus(keys, "at"), "missing (a duration from the scenario start, such as \"5m\")") end
    local item = { at = self:duration(e.at, path_plus(keys, "at")) }
    if e.by ~= nil and (type(e.by) ~= "string" or e.by == "") then
      self:fail(path_plus(keys, "by"), "expected a name (a non-empty string), got " .. describe(e.by))
    end
    item.by = e.by or "scenario"
    for _, flag in ipairs { "reject", "full" } do
      if fields[flag] and e[flag] ~= nil then
        if type(e[flag]) ~= "boolean" then self:fail(path_plus(keys, flag), "expected true or false, got " .. describe(e[flag])) end
        item[flag] = e[flag] or nil
      end
    end
    if fields.command then
      if not M.CONTROL_COMMANDS[e.command] then
        local names = { "promote", "pause", "unpause", "abort" }
        self:fail(path_plus(keys, "command"), string.format("expected one of %s, got %s%s", table.concat(names, ", "),
          describe(e.command), type(e.command) == "string" and strings.did_you_mean(e.command, names, { quote = true }) or ""))
      end
      if e.full and e.command ~= "promote" then
        self:fail(path_plus(keys, "full"), "only a promote can be full")
      end
      item.command = e.command
    end
    out[i] = item
  end
  return out
end

local TOP = { seed = true, start = true, keys = true, world = true, setup = true, traffic = true,
  images = true, alarms = true, faults = true, metrics = true, codedeploy = true, iam = true,
  regions = true, account = true, roles = true, approvals = true, controls = true }

function Ctx:check(s)
  self:table(s, {}, "the scenario file to return a table")
  self:known(s, {}, TOP)
  local out = { path = self.name, images = {}, alarms = {}, faults = {} }
  if s.seed ~= nil then
    if math.type(s.seed) ~= "integer" then self:fail({ "seed" }, "expected an integer, got " .. describe(s.seed)) end
    out.seed = s.seed
  end
  if s.start ~= nil then
    local t, err
    if type(s.start) == "number" then t = s.start
    elseif type(s.start) == "string" then t, err = timestamp.parse(s.start) end
    if not t then
      self:fail({ "start" }, string.format("expected an ISO 8601 time such as \"2026-11-26T10:00:00Z\" or epoch seconds, got %s%s",
        describe(s.start), err and (" (" .. err .. ")") or ""))
    end
    if not (t >= M.START_MIN and t < M.START_MAX) then
      self:fail({ "start" }, string.format("%s is out of range: from 2000-01-01T00:00:00Z (%d) to "
        .. "before 2100-01-01T00:00:00Z (%d)", describe(s.start), M.START_MIN, M.START_MAX))
    end
    out.start = t
  end
  if s.keys ~= nil then out.keys, out.key_accounts = self:keys(s.keys) end
  if s.account ~= nil then out.account = self:account(s.account, { "account" }) end
  if s.regions ~= nil then out.regions = self:regions(s.regions) end
  if s.roles ~= nil then out.roles = self:roles(s.roles) end
  if s.world ~= nil then
    if s.world ~= "default" and s.world ~= "empty" then
      self:fail({ "world" }, "expected \"default\" or \"empty\", got " .. describe(s.world))
    end
  end
  out.world = s.world or "default"
  if s.setup ~= nil then
    if type(s.setup) ~= "function" then self:fail({ "setup" }, "expected a function(aws), got " .. describe(s.setup)) end
    out.setup = s.setup
  end
  if s.traffic ~= nil then out.traffic = self:traffic(s.traffic) end
  if s.codedeploy ~= nil then out.codedeploy = self:codedeploy(s.codedeploy) end
  if s.metrics ~= nil then out.metrics = self:metrics(s.metrics) end
  if s.iam ~= nil then out.iam = self:iam(s.iam) end
  if s.images ~= nil then
    self:table(s.images, { "images" }, "a table { [\"image:tag\"] = {...} }")
    for k, v in pairs(s.images) do
      if type(k) ~= "string" then self:fail({ "images" }, "image keys must be strings such as \"api:v2\" or \"~:v2$\"") end
      out.images[k] = self:image(k, v, { "images", k })
    end
  end
  out.image_list = M.image_list(out.images)
  if s.alarms ~= nil then
    self:table(s.alarms, { "alarms" }, "a table { [\"alarm name\"] = {state=, then=} }")
    for name, a in pairs(s.alarms) do out.alarms[name] = self:alarm(name, a) end
  end
  if s.approvals ~= nil then out.approvals = self:script_list(s.approvals, "approvals", { at = true, by = true, reject = true }) end
  if s.controls ~= nil then
    out.controls = self:script_list(s.controls, "controls", { at = true, by = true, command = true, full = true })
  end
  if s.faults ~= nil then
    self:table(s.faults, { "faults" }, "a list of fault tables")
    local n = #s.faults
    for k in pairs(s.faults) do
      if math.type(k) ~= "integer" or k < 1 or k > n then
        self:fail({ "faults" }, "expected a list { {...}, {...} }, found key " .. tostring(k))
      end
    end
    for i = 1, n do out.faults[i] = self:fault(s.faults[i], { "faults", i }) end
    local served = {}
    for _, r in ipairs(out.regions or { "us-east-1" }) do served[r] = true end
    for i, f in ipairs(out.faults) do
      if f.region and not served[f.region] then
        self:fail({ "faults", i, "region" }, string.format("%q is not one of the scenario's regions (%s)",
          f.region, table.concat(out.regions or { "us-east-1" }, ", ")))
      end
    end
  end
  normalised[out] = true
  return out
end

local function new_ctx(name, src)
  return setmetatable({ name = name or "scenario", src = src }, Ctx)
end

--[[ Checks with ctx, turning an error raised while reading the scenario's own values (a
     metatable whose __index raises, say) into the scenario error it is. ]]
local function checked(ctx, tbl)
  local ok, res = pcall(ctx.check, ctx, tbl)
  if ok then return res end
  if errors.is_error(res) then error(res, 0) end
  local msg = errors.describe(res)
  local line = tonumber(msg:match("^[^\n]-:(%d+): "))
  error(scenario_error { file = ctx.name, line = line, message = string.format(
    "%s: reading the scenario failed: %s", ctx.name, msg) }, 0)
end

-- A table already in memory (sim.new(tbl)); idempotent on normalised tables.
function M.check(tbl, name)
  if normalised[tbl] then return tbl end
  return checked(new_ctx(name), tbl)
end

function M.is_normalised(tbl) return normalised[tbl] == true end

-- A single fault (runtime injection through /_sim/faults). → fault or raises a scenario error.
function M.check_fault(f, name)
  return new_ctx(name or "fault"):fault(f, {})
end

-- What a scenario chunk may use: pure functions only, so a scenario cannot reach the
-- file system or the network, and the same seed gives the same run.
local function sandbox()
  local env = {
    assert = assert, error = error, ipairs = ipairs, next = next, pairs = pairs, pcall = pcall,
    select = select, tonumber = tonumber, tostring = tostring, type = type, xpcall = xpcall,
    rawequal = rawequal, rawget = rawget, rawlen = rawlen, rawset = rawset,
    setmetatable = setmetatable, getmetatable = getmetatable, _VERSION = _VERSION,
    string = string, table = table, math = math, utf8 = utf8,
  }
  env._G = env
  return env
end

function M.load(path)
  local fh, oerr = io.open(path, "rb")
  if not fh then
    error(scenario_error { file = path,
      message = string.format("cannot read scenario %s: %s", path, tostring(oerr)) }, 0)
  end
  local src = fh:read("a")
  fh:close()
  local chunk, err = load(src, "@" .. path, "t", sandbox())
  if not chunk then
    error(scenario_error { file = path, line = tonumber(tostring(err):match(":(%d+):")),
      message = string.format("syntax error in scenario %s", tostring(err)) }, 0)
  end
  local ok, res = pcall(chunk)
  if not ok then
    error(scenario_error { file = path,
      message = string.format("scenario %s failed while loading: %s", path, errors.describe(res)) }, 0)
  end
  return checked(new_ctx(path, src), res)
end

return M
