--[[
ecsplay.aws.batch: shared polling. Reads that many coroutines make at the same instant go out
as the fewest calls the APIs allow, and each caller gets back exactly what its own call would
have answered:

  ecs DescribeServices          up to 10 services a call (per cluster and `include`)
  ecs DescribeServiceDeployments up to 20 service deployment ARNs a call (AWS's maximum)
  elbv2 DescribeTargetGroups    Names or TargetGroupArns lists, up to 20 a call
  elbv2 DescribeListeners       ListenerArns lists, up to 20 a call
  elbv2 DescribeRules           RuleArns lists, up to 20 a call
  cloudwatch DescribeAlarms     AlarmNames lists, up to 100 a call (AWS's maximum)
  cloudwatch GetMetricData      every caller's MetricDataQueries with the same time range, up
                                to 500 queries a call (AWS's maximum), Ids prefixed per caller
  elbv2 DescribeTargetHealth,   identical requests once (a target group read by three gates in
  ecs DescribeTaskDefinition    one round is one call); so are the requests of the operations
                                above that cannot merge (a listener's rules by ListenerArn, a
                                page by its token, metric math)
  anything else                 straight through (aws.call)

How: a caller's coroutine adds its request to the open batch of its kind (one batch per
operation, session and the parameters that must match) and joins that batch's task. The task
first sleeps 0 seconds, which on the scheduler means "after every task that can run at this
instant has run and is waiting again" (sched.lua fires a timer only once the ready queue is
empty), so every rollout that polls in this round has enqueued; then it sends the merged calls
and sets each caller's answer. A batch that is full is closed at once, and the next request
opens another. Reads only: nothing that changes AWS is ever merged.

Errors: a merged call that fails with a service error (RuleNotFound for one ARN of twenty, a
missing target group name) is sent again once per caller, unmerged, so each caller gets the
error or answer its own call gets. Per-item answers that are not errors (DescribeServices'
`failures`) go to the caller that asked for that item. Transport errors, throttles that outlived
the retries, and interruptions go to every caller of the batch.

Switch: aws.configure{ batching = false } or ECSPLAY_BATCHING=0 sends every request on its
own (the same code path, one caller a call), so tests can compare both.

  batch.call(service, operation, params) → output (raises like aws.call)
  batch.face(service)   → { snake_name = fn(params) } for the operations above, for call sites
  batch.enabled()       → whether requests are merged now
]]
local sched = require "ecsplay.sched"
local errors = require "ecsplay.errors"
local tables = require "ecsplay.util.tables"
local aws = require "ecsplay.aws.call"

local M = {}

local ELBV2_LIST = 20 -- ELBv2 documents no maximum for these lists; 20 keeps each answer small

--[[ Operations whose requests merge by a list parameter. list: the parameter; max: items a
     call; results: the answer's lists and, for each element, the references it answers
     (ids(element) → strings a caller may have asked by); order: "request" when the service
     answers in the order asked (each caller's share is put back in its own order), "response"
     when it answers in its own order (sorted by name); page: the answer's next-page token and
     the request parameter it goes into. ]]
local function last_part(s) return type(s) == "string" and s:match("([^/]+)$") or nil end

local LISTS = {
  ["ecs.DescribeServices"] = { list = "services", max = 10, order = "request",
    results = {
      services = function(e) return { e.serviceArn, e.serviceName } end,
      failures = function(e) return { e.arn, last_part(e.arn) } end,
    } },
  ["ecs.DescribeServiceDeployments"] = { list = "serviceDeploymentArns", max = 20, order = "request",
    results = {
      serviceDeployments = function(e) return { e.serviceDeploymentArn } end,
      failures = function(e) return { e.arn } end,
    } },
  ["elbv2.DescribeTargetGroups"] = { lists = { "Names", "TargetGroupArns" }, max = ELBV2_LIST, order = "request",
    page = { "NextMarker", "Marker" },
    results = { TargetGroups = function(e) return { e.TargetGroupArn, e.TargetGroupName } end } },
  ["elbv2.DescribeListeners"] = { list = "ListenerArns", max = ELBV2_LIST, order = "request",
    page = { "NextMarker", "Marker" },
    results = { Listeners = function(e) return { e.ListenerArn } end } },
  ["elbv2.DescribeRules"] = { list = "RuleArns", max = ELBV2_LIST, order = "request",
    page = { "NextMarker", "Marker" },
    results = { Rules = function(e) return { e.RuleArn } end } },
  -- a caller with more than one page's worth of names (50, MaxRecords' default) goes alone
  ["cloudwatch.DescribeAlarms"] = { list = "AlarmNames", max = 100, per_caller = 50, order = "response",
    page = { "NextToken", "NextToken" }, page_size = { "MaxRecords", 100 },
    results = {
      MetricAlarms = function(e) return { e.AlarmName } end,
      CompositeAlarms = function(e) return { e.AlarmName } end,
    } },
}

-- Operations where identical requests in one round are sent once.
local SAME = { ["elbv2.DescribeTargetHealth"] = true, ["ecs.DescribeTaskDefinition"] = true }

local METRIC_QUERIES = 500 -- MetricDataQueries per GetMetricData (AWS's limit)

local SNAKE = {
  ecs = { describe_services = "DescribeServices", describe_task_definition = "DescribeTaskDefinition",
    describe_service_deployments = "DescribeServiceDeployments" },
  elbv2 = { describe_target_groups = "DescribeTargetGroups", describe_listeners = "DescribeListeners",
    describe_rules = "DescribeRules", describe_target_health = "DescribeTargetHealth" },
  cloudwatch = { describe_alarms = "DescribeAlarms", get_metric_data = "GetMetricData" },
}

---------------------------------------------------------------- switch and counts

local FALSE_WORDS = { ["0"] = true, ["false"] = true, off = true, no = true }

function M.enabled()
  local settings = aws.client_settings and aws.client_settings()
  local opts = settings and settings.opts or {}
  if opts.batching == false then return false end
  local env = (settings and settings.getenv or os.getenv)("ECSPLAY_BATCHING")
  return not (env and FALSE_WORDS[env:lower()])
end

local function count_items(service, op, n)
  if aws.count_items then aws.count_items(service, op, n) end
end

---------------------------------------------------------------- keys

-- A canonical text of a value (keys sorted), for the parameters that must match.
local function canonical(v, out)
  local t = type(v)
  if t == "table" then
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = k end
    table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
    out[#out + 1] = "{"
    for _, k in ipairs(keys) do
      out[#out + 1] = string.format("%q=", tostring(k))
      canonical(v[k], out)
      out[#out + 1] = ","
    end
    out[#out + 1] = "}"
  elseif t == "string" then
    out[#out + 1] = string.format("%q", v)
  elseif t == "number" then
    out[#out + 1] = string.format("%.17g", v)
  else
    out[#out + 1] = tostring(v)
  end
  return out
end

local function key_of(...)
  return table.concat(canonical({ ... }, {}))
end

-- The session a call runs in, by identity (nil: the default client).
local session_ids = setmetatable({}, { __mode = "k" })
local session_seq = 0
local function session_key(sess)
  if not sess then return "-" end
  local id = session_ids[sess]
  if not id then
    session_seq = session_seq + 1
    id = "s" .. session_seq
    session_ids[sess] = id
  end
  return id
end

---------------------------------------------------------------- batches

local open = {} -- key → the batch still taking requests

local function unmerged(b, item)
  return aws.request(b.service, b.op, item.params, { session = b.session or false })
end

-- Every caller's own request, one by one (a merged call failed with a service error).
local function each_alone(b)
  for _, item in ipairs(b.items) do
    item.ok, item.value = pcall(unmerged, b, item)
  end
end

local function fail_all(b, err)
  for _, item in ipairs(b.items) do item.ok, item.value = false, err end
end

-- A merged call failed: service errors are each caller's own; anything else is everyone's.
local function merged_failed(b, err)
  if sched.is_interrupt(err) then return fail_all(b, err) end
  if #b.items > 1 and errors.is(err, "service") and not (type(err) == "table" and err.retryable) then
    return each_alone(b)
  end
  fail_all(b, err)
end

-- The answer of one request, copied for every caller after the first that shares it.
local function share(value, used)
  if used[value] then return tables.copy(value) end
  used[value] = true
  return value
end

-- Identical requests: one call, the answer to each.
local function flush_same(b)
  local ok, res = pcall(unmerged, b, b.items[1])
  local used = {}
  for _, item in ipairs(b.items) do
    item.ok, item.value = ok, ok and share(res, used) or res
  end
end

-- Every page of a merged list request, the lists of `spec.results` concatenated.
local function all_pages(b, params, spec)
  local merged = {}
  for field in pairs(spec.results) do merged[field] = {} end
  local first
  while true do
    local res = aws.request(b.service, b.op, params, { session = b.session or false })
    first = first or res
    for field in pairs(spec.results) do
      for _, e in ipairs(res[field] or {}) do merged[field][#merged[field] + 1] = e end
    end
    local token = spec.page and res[spec.page[1]]
    if not token then break end
    params = tables.shallow_copy(params)
    params[spec.page[2]] = token
  end
  return first, merged
end

-- A caller's share of a merged list answer: the elements that answer its references.
local function split_lists(spec, item, first, merged, used)
  -- each reference answered as many times as the caller asked for it (first position first)
  local wanted, times = {}, {}
  for i, ref in ipairs(item.refs) do
    if wanted[ref] == nil then wanted[ref] = i end
    times[ref] = (times[ref] or 0) + 1
  end
  local out = {}
  for k, v in pairs(first) do
    if spec.results[k] == nil and not (spec.page and k == spec.page[1]) then out[k] = v end
  end
  for field, ids in pairs(spec.results) do
    local mine, given = {}, {}
    for _, e in ipairs(merged[field]) do
      local at, ref
      for _, id in ipairs(ids(e)) do
        if id and wanted[id] and (given[id] or 0) < times[id] then at, ref = wanted[id], id break end
      end
      if at then
        given[ref] = (given[ref] or 0) + 1
        mine[#mine + 1] = { at = at, n = #mine + 1, e = share(e, used) }
      end
    end
    if spec.order == "request" then table.sort(mine, function(x, y)
      if x.at ~= y.at then return x.at < y.at end
      return x.n < y.n
    end) end
    local list = {}
    for i, m in ipairs(mine) do list[i] = m.e end
    if first[field] ~= nil or #list > 0 then out[field] = list end
  end
  return out
end

local function flush_lists(b)
  local spec = b.spec
  local params = tables.shallow_copy(b.items[1].params)
  local refs, seen = {}, {}
  for _, item in ipairs(b.items) do
    for _, ref in ipairs(item.refs) do
      if not seen[ref] then seen[ref] = true; refs[#refs + 1] = ref end
    end
  end
  params[b.list] = refs
  if spec.page_size then params[spec.page_size[1]] = spec.page_size[2] end
  local ok, first, merged = pcall(all_pages, b, params, spec)
  if not ok then return merged_failed(b, first) end
  local used = {}
  for _, item in ipairs(b.items) do
    item.ok, item.value = true, split_lists(spec, item, first, merged, used)
  end
end

-- GetMetricData: every caller's queries, Ids prefixed "b<n>_"; every page; split by prefix.
local function flush_metrics(b)
  local queries = {}
  for n, item in ipairs(b.items) do
    item.prefix = "b" .. n .. "_"
    for _, q in ipairs(item.params.MetricDataQueries) do
      local c = tables.shallow_copy(q)
      c.Id = item.prefix .. q.Id
      queries[#queries + 1] = c
    end
  end
  local params = tables.shallow_copy(b.items[1].params)
  params.MetricDataQueries = queries
  local ok, err = pcall(function()
    local by_id, order, messages = {}, {}, nil
    repeat
      local res = aws.request(b.service, b.op, params, { session = b.session or false })
      messages = messages or res.Messages
      for _, r in ipairs(res.MetricDataResults or {}) do
        local acc = by_id[r.Id]
        if not acc then
          acc = tables.shallow_copy(r)
          acc.Timestamps, acc.Values = {}, {}
          by_id[r.Id] = acc
          order[#order + 1] = acc
        end
        acc.StatusCode, acc.Messages = r.StatusCode, r.Messages
        for _, t in ipairs(r.Timestamps or {}) do acc.Timestamps[#acc.Timestamps + 1] = t end
        for _, v in ipairs(r.Values or {}) do acc.Values[#acc.Values + 1] = v end
      end
      params = tables.shallow_copy(params)
      params.NextToken = res.NextToken
    until not res.NextToken
    local used = {}
    for _, item in ipairs(b.items) do
      local mine = {}
      for _, r in ipairs(order) do
        if r.Id:sub(1, #item.prefix) == item.prefix then
          r.Id = r.Id:sub(#item.prefix + 1)
          mine[#mine + 1] = r
        end
      end
      item.ok, item.value = true, { MetricDataResults = mine, Messages = messages and share(messages, used) }
    end
  end)
  if not ok then merged_failed(b, err) end
end

local function flush(b)
  -- after every task runnable at this instant has run (and so enqueued what it reads now).
  -- A signal there is not this batch's to act on: its callers got it themselves, and a
  -- rollback's read after it must find this batch sending, not failed; a cancellation
  -- (the run ended) closes it
  local waited, why = pcall(sched.sleep, 0)
  if open[b.key] == b then open[b.key] = nil end
  b.closed = true
  if not waited and not (sched.is_interrupt(why) and why.code ~= "Cancelled") then error(why, 0) end
  if #b.items == 1 then
    local item = b.items[1]
    item.ok, item.value = pcall(unmerged, b, item)
  elseif b.kind == "same" then
    flush_same(b)
  elseif b.kind == "lists" then
    flush_lists(b)
  else
    flush_metrics(b)
  end
  -- a batch's service errors as each caller's own call would raise them
end

local function new_batch(key, kind, service, op, sess, extra)
  local b = { key = key, kind = kind, service = service, op = op, session = sess, items = {}, size = 0 }
  for k, v in pairs(extra or {}) do b[k] = v end
  open[key] = b
  b.task = sched.spawn(flush, b)
  return b
end

-- The units item adds to batch b: its size, or for list batches the references b lacks.
local function added(b, item)
  if not (b and b.refset) then return item.size end
  local n, seen = 0, {}
  for _, ref in ipairs(item.refs) do
    if not b.refset[ref] and not seen[ref] then seen[ref] = true; n = n + 1 end
  end
  return n
end

-- Adds item to the open batch under key, or a new one (max units a call); waits for its answer.
local function enqueue(key, max, item, make)
  local b = open[key]
  if b and b.size + added(b, item) > max then
    b.closed = true
    open[key] = nil
    b = nil
  end
  b = b or make()
  b.items[#b.items + 1] = item
  b.size = b.size + added(b, item)
  if b.refset then for _, ref in ipairs(item.refs) do b.refset[ref] = true end end
  if b.size >= max then
    b.closed = true
    open[key] = nil
  end
  local ok, err = b.task:result()
  if not ok then error(err, 0) end
  if not item.ok then error(item.value, 0) end
  return item.value
end

---------------------------------------------------------------- entry

-- The list parameter a request merges by, and its references; nil when it cannot merge.
local function list_of(spec, params)
  local names = spec.lists or { spec.list }
  local found
  for _, name in ipairs(names) do
    local v = params[name]
    if v ~= nil then
      if found or type(v) ~= "table" or #v == 0 then return nil end
      found = name
    end
  end
  if not found then return nil end
  for _, ref in ipairs(params[found]) do if type(ref) ~= "string" then return nil end end
  if #params[found] > (spec.per_caller or spec.max) then return nil end
  if spec.page and params[spec.page[2]] ~= nil then return nil end
  if spec.page_size and params[spec.page_size[1]] ~= nil then return nil end
  return found, params[found]
end

-- GetMetricData requests that merge: plain queries (no expression, whose names are the
-- request's own) within the limit, from the first page.
local function mergeable_metrics(params)
  local qs = params.MetricDataQueries
  if params.NextToken ~= nil or type(qs) ~= "table" or #qs == 0 or #qs > METRIC_QUERIES then return false end
  for _, q in ipairs(qs) do
    if type(q) ~= "table" or q.Expression ~= nil or type(q.Id) ~= "string" then return false end
  end
  return true
end

--[[ Answers of identical reads at this instant: a second gate that reads the target group a
     first one read a moment ago in the same round (the tracker measures a rollout's gates one
     after the other) gets that answer, as long as the clock has not moved and no change was
     sent since (aws.stats.mutating_calls). In real time the clock always moves: no reuse. ]]
local memo, memo_t = {}, nil

local function remembered(key)
  local now = sched.now()
  if memo_t ~= now then memo, memo_t = {}, now return nil end
  local m = memo[key]
  if m and m.changes == aws.stats.mutating_calls then return tables.copy(m.value) end
  return nil
end

local function remember(key, value)
  local now = sched.now()
  if memo_t ~= now then memo, memo_t = {}, now end
  memo[key] = { changes = aws.stats.mutating_calls, value = tables.copy(value) }
end

-- Identical requests of this round: one call.
local function call_same(name, service, op, params, sess, skey, on)
  count_items(service, op, 1)
  if not on then return aws.call(service, op, params) end
  local key = key_of(name, skey, params)
  local known = remembered(key)
  if known then return known end
  local changes = aws.stats.mutating_calls
  local value = enqueue(key, math.huge, { params = params, size = 1 }, function()
    return new_batch(key, "same", service, op, sess)
  end)
  if aws.stats.mutating_calls == changes then remember(key, value) end
  return value
end

function M.call(service, op, params)
  params = params or {}
  local name = service .. "." .. op
  local spec = LISTS[name]
  local metrics = name == "cloudwatch.GetMetricData"
  if not (spec or SAME[name] or metrics) then return aws.call(service, op, params) end
  local on = M.enabled() and sched.in_task()
  local sess = aws.current_session()
  local skey = session_key(sess)
  local list, refs
  if spec then list, refs = list_of(spec, params) end
  if list then
    count_items(service, op, #refs)
    if not on then return aws.call(service, op, params) end
    local rest = tables.shallow_copy(params)
    rest[list] = nil
    local key = key_of(name, skey, list, rest)
    return enqueue(key, spec.max, { params = params, refs = refs, size = #refs }, function()
      return new_batch(key, "lists", service, op, sess, { spec = spec, list = list, refset = {} })
    end)
  elseif metrics and mergeable_metrics(params) then
    local n = #params.MetricDataQueries
    count_items(service, op, n)
    if not on then return aws.call(service, op, params) end
    local rest = tables.shallow_copy(params)
    rest.MetricDataQueries = nil
    local key = key_of(name, skey, rest)
    return enqueue(key, METRIC_QUERIES, { params = params, size = n }, function()
      return new_batch(key, "metrics", service, op, sess)
    end)
  end
  -- the rest (a listener's rules, a page, metric math): identical requests merge
  return call_same(name, service, op, params, sess, skey, on)
end

-- { describe_services = fn, ... } for a service: the batched reads under boto3's names.
function M.face(service)
  local face = {}
  for snake, op in pairs(SNAKE[service] or {}) do
    face[snake] = function(params) return M.call(service, op, params) end
  end
  return face
end

return M
