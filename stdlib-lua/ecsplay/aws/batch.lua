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
  cloudwatch GetMetricData      every caller's MetricDataQueries with the same time range (and
                                ScanBy, LabelOptions), up to 500 queries a call (AWS's maximum),
                                Ids prefixed per caller
  elbv2 DescribeTargetHealth,   identical requests once (a target group read by three gates in
  ecs DescribeTaskDefinition    one round is one call); so are the requests of the operations
                                above that cannot merge (a listener's rules by ListenerArn, a
                                page by its token, metric math, what goes alone: see below)
  anything else                 straight through (aws.call)

How: a caller's coroutine adds its request to the open batch of its kind (one batch per
operation, session and the parameters that must match) and joins that batch's task. The task
first sleeps 0 seconds, which on the scheduler means "after every task that can run at this
instant has run and is waiting again" (sched.lua fires a timer only once the ready queue is
empty), so every rollout that polls in this round has enqueued; then it sends the merged calls
and sets each caller's answer. A batch that is full is closed at once, and the next request
opens another. Reads only: nothing that changes AWS is ever merged.

Errors: a merged call that fails with a service error (RuleNotFound for one ARN of twenty, a
missing target group name) or a validation error is sent again once per caller, unmerged, so
each caller gets the error or answer its own call gets. Per-item answers that are not errors
(DescribeServices' `failures`) go to the caller that asked for that item. Transport errors,
throttles that outlived the retries, and interruptions go to every caller of the batch.

Alone (a call of its own, whatever others ask), because merging could change its answer:
a request the model refuses (each caller's is validated on its own first, as aws.call does:
its ParamValidation names its own parameters and fails no one else); a list that names an
item twice; a DescribeServices reference that is neither a service name nor an ARN of the
request's cluster (an old-format ARN, another cluster's); a GetMetricData with MaxDatapoints,
with an Id CloudWatch refuses alone (the prefix would make it valid) or too long to take the
prefix, or with no query returning data. And after a merged answer, sent again alone: a
caller whose share lacks an answer for one of its items (an item answered under a name the
batcher cannot match back never vanishes), and a GetMetricData caller with more than a
page of datapoints of its own when the merged answer came in pages (its own call answers
the first page and a NextToken).

Switch: aws.configure{ batching = false } or ECSPLAY_BATCHING=0 sends every request on its
own (the same code path, one caller a call), so tests can compare both.

Callers that share an answer: each caller gets a table of its own (a copy when another caller
got the same answer), except callers that pass `readonly = true`: they promise never to modify
the answer, and get the very table every other read-only caller of that answer gets (never one
a caller without the promise holds), so a listener's rules read by fifty rollouts are not
copied fifty times.

Single flight (`join = true`), for look-ups where an answer read a moment earlier is as good
(which rule forwards to these target groups): a request identical to one already sent and not
yet answered waits for that answer instead of sending another. Never for reads that must be
fresh (what a rollback reads before it removes capacity, the read-back after a change): those
leave `join` unset and go out after they were asked.

  batch.call(service, operation, params [, opts]) → output (raises like aws.call);
                        opts: { readonly = true, join = true }
  batch.call_each(service, operation, list [, opts]) → oks, values: every request of the list
                        asked at once (so they meet other callers' in the same round), answered
                        in order; values[i] is the answer or the error of list[i]
  batch.face(service [, opts]) → { snake_name = fn(params) } for the operations above, for call
                        sites, with opts for every call
  batch.enabled()       → whether requests are merged now
]]
local sched = require "ecsplay.sched"
local errors = require "ecsplay.errors"
local tables = require "ecsplay.util.tables"
local strings = require "ecsplay.util.strings"
local aws = require "ecsplay.aws.call"

local M = {}

-- DescribeTargetGroups refuses more than 20 names or ARNs ("You cannot describe more than '20'
-- target groups at a time", docs/simulator.md); listeners' and rules' lists, whose maximum AWS
-- does not document, are held to the same.
local ELBV2_LIST = 20

--[[ Operations whose requests merge by a list parameter. list: the parameter; max: items a
     call; results: the answer's lists and, for each element, the references it answers
     (ids(element) → strings a caller may have asked by); order: "request" when the service
     answers in the order asked (each caller's share is put back in its own order), "response"
     when it answers in its own order (sorted by name); page: the answer's next-page token and
     the request parameter it goes into; omits_missing: the service leaves out what it does
     not find (no element, no error), so an unanswered reference is no sign of a mismatch;
     ref_ok(ref, params): whether a reference can be matched to its answer in a merged call
     (default: any string). ]]
local function last_part(s) return type(s) == "string" and strings.last_segment(s) or nil end

-- The name of the cluster a DescribeServices asks in (its `cluster`, a name or an ARN).
local function cluster_name(params)
  local c = params.cluster
  if c == nil then return "default" end -- ECS's default when no cluster is given
  if type(c) ~= "string" then return nil end
  return c:match("^arn:[^:]*:ecs:[^:]*:[^:]*:cluster/(.+)$") or c
end

--[[ DescribeServices answers a service under its ARN and name, a failure under an ARN whose
     last part is the name asked for. A reference merges only when it is a service name
     (letters, digits, hyphens and underscores, as ECS allows) or an ARN of the request's own
     cluster (arn:...:service/CLUSTER/NAME). Anything else goes alone: an old-format ARN (no
     cluster part) or another cluster's would not match its answer, and the service or
     failure it is answered with could carry a name another caller asks for, and be handed to
     that caller; an empty or malformed name is refused, or worse, for its caller only. ]]
local SERVICE_NAME = "^[%w_-]+$"
local function service_ref_ok(ref, params)
  if ref:find(SERVICE_NAME) then return true end
  local cluster, name = ref:match("^arn:[^:]+:ecs:[^:]*:[^:]*:service/([^/]+)/([^/]+)$")
  return cluster ~= nil and name:find(SERVICE_NAME) ~= nil and cluster == cluster_name(params)
end

local LISTS = {
  ["ecs.DescribeServices"] = { list = "services", max = 10, order = "request", ref_ok = service_ref_ok,
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
  -- a caller with more than one page's worth of names (50, MaxRecords' default) goes alone;
  -- a name that is no alarm is left out of the answer
  ["cloudwatch.DescribeAlarms"] = { list = "AlarmNames", max = 100, per_caller = 50, order = "response",
    omits_missing = true,
    page = { "NextToken", "NextToken" }, page_size = { "MaxRecords", 100 },
    results = {
      MetricAlarms = function(e) return { e.AlarmName } end,
      CompositeAlarms = function(e) return { e.AlarmName } end,
    } },
}

-- Operations where identical requests in one round are sent once.
local SAME = { ["elbv2.DescribeTargetHealth"] = true, ["ecs.DescribeTaskDefinition"] = true }

local METRIC_QUERIES = 500 -- MetricDataQueries per GetMetricData (AWS's limit)
-- A MetricDataQuery Id is at most 255 characters (the model's MetricId); merged, an Id gets a
-- prefix of at most "b500_" (a caller a prefix, at most 500 callers a call)
local METRIC_ID_MAX = 255 - #("b" .. METRIC_QUERIES .. "_")

local SNAKE = {
  ecs = { describe_services = "DescribeServices", describe_task_definition = "DescribeTaskDefinition",
    describe_service_deployments = "DescribeServiceDeployments" },
  elbv2 = { describe_target_groups = "DescribeTargetGroups", describe_listeners = "DescribeListeners",
    describe_rules = "DescribeRules", describe_target_health = "DescribeTargetHealth" },
  cloudwatch = { describe_alarms = "DescribeAlarms", get_metric_data = "GetMetricData" },
}

---------------------------------------------------------------- switch and counts

local FALSE_WORDS = { ["0"] = true, ["false"] = true, off = true, no = true }

function M.enabled(settings)
  settings = settings or (aws.client_settings and aws.client_settings())
  local opts = settings and settings.opts or {}
  if opts.batching == false then return false end
  local env = (settings and settings.getenv or os.getenv)("ECSPLAY_BATCHING")
  return not (env and FALSE_WORDS[env:lower()])
end

local function count_items(service, op, n)
  if aws.count_items then aws.count_items(service, op, n) end
end

---------------------------------------------------------------- keys

-- A number's text: integers as they are, floats to 17 digits (5 and 5.0 spell the same).
local number_text, canonical = tables.number_text, tables.canonical_into

--[[ The key text of a request's parameters. Most are flat (string keys whose values are
     strings or numbers: a listener's ARN, a target group's, a time range): spelled directly
     ("!" first, keys sorted, values length-prefixed), several times faster than canonical,
     which takes the rest. ]]
local function table_key(t)
  local keys, n = {}, 0
  for k, v in pairs(t) do
    local tv = type(v)
    if type(k) ~= "string" or k:find("[=,]") or (tv ~= "string" and tv ~= "number") then
      local out = {}
      return table.concat(out, "", 1, canonical(t, out, 0))
    end
    n = n + 1
    keys[n] = k
  end
  if n > 1 then table.sort(keys) end
  local parts = {}
  for i = 1, n do
    local k = keys[i]
    local v = t[k]
    parts[i] = type(v) == "string" and (k .. "=" .. #v .. ":" .. v) or (k .. "=" .. number_text(v))
  end
  return "!" .. table.concat(parts, ",")
end

local function key_part(v)
  if type(v) == "table" then return table_key(v) end
  if type(v) == "string" then return #v .. ":" .. v end
  return tostring(v)
end

-- The batch key: operation, session, then the parameters that must match (one or two parts).
local function key_of(name, skey, a, b)
  if b == nil then return name .. "|" .. skey .. "|" .. key_part(a) end
  return name .. "|" .. skey .. "|" .. key_part(a) .. "|" .. key_part(b)
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
local inflight = {} -- key → a batch of identical requests sent and not answered yet (for `join`)

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

--[[ A merged call failed: service errors are each caller's own, and so is a validation error
     (every caller's request was valid alone, so the merge itself was refused: each alone gets
     its own answer); anything else is everyone's. ]]
local function merged_failed(b, err)
  if sched.is_interrupt(err) then return fail_all(b, err) end
  if #b.items > 1 and errors.is(err, { "service", "validation" })
      and not (type(err) == "table" and err.retryable) then
    return each_alone(b)
  end
  fail_all(b, err)
end

--[[ Item's share of an answer `value` that several callers of batch b may get: the read-only
     callers all get the one table, which then no other caller holds; every other caller a table
     of its own (the original to the first of them when no read-only caller shares it).
     used: the originals given away so far. ]]
local function share(b, item, value, used)
  if item.readonly then return value end
  if b.readonly > 0 or used[value] then return tables.copy(value) end
  used[value] = true
  return value
end

--[[ Answers of identical reads at this instant: a second gate that reads the target group a
     first one read a moment ago in the same round (the tracker measures a rollout's gates one
     after the other) gets that answer, as long as the clock has not moved and no change was
     sent since (aws.stats.mutating_calls). In real time the clock always moves: no reuse.
     A remembered answer is held by no writing caller: read-only callers get it as it is,
     the others a copy. Forgotten on a new aws.configure{} too (another region, endpoint or
     world may answer at the same virtual instant). ]]
local memo, memo_t, memo_client = {}, nil, nil

local function memo_now(client)
  local now = sched.now()
  if memo_t ~= now or (client and memo_client ~= client) then
    memo, memo_t = {}, now
    memo_client = client or memo_client
  end
end

local function remembered(key, readonly, client)
  memo_now(client)
  local m = memo[key]
  if m and m.changes == aws.stats.mutating_calls then
    return readonly and m.value or tables.copy(m.value)
  end
  return nil
end

-- Identical requests: one call, the answer to each (callers that joined while it was in flight too).
local function flush_same(b)
  local ok, res = pcall(unmerged, b, b.items[1])
  if inflight[b.key] == b then inflight[b.key] = nil end
  local used = {}
  for _, item in ipairs(b.items) do
    item.ok, item.value = ok, ok and share(b, item, res, used) or res
  end
  if ok and aws.stats.mutating_calls == b.changes then
    memo_now()
    memo[b.key] = { changes = b.changes, value = b.readonly > 0 and res or tables.copy(res) }
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
      local into = merged[field]
      for _, e in ipairs(res[field] or {}) do into[#into + 1] = e end
    end
    local token = spec.page and res[spec.page[1]]
    if not token then break end
    params = tables.shallow_copy(params)
    params[spec.page[2]] = token
  end
  return first, merged
end

--[[ For each list of the merged answer, once per batch: the references each element answers
     (ids) and, by reference, the positions of the elements that answer it. ]]
local function index_answer(spec, merged)
  local index = {}
  for field, ids_of in pairs(spec.results) do
    local ids, at = {}, {}
    for i, e in ipairs(merged[field]) do
      local list = ids_of(e)
      ids[i] = list
      for _, id in ipairs(list) do
        local where = at[id]
        if not where then at[id] = { i } elseif where[#where] ~= i then where[#where + 1] = i end
      end
    end
    index[field] = { ids = ids, at = at }
  end
  return index
end

local NONE = {}

--[[ A caller's share of a merged list answer: the elements that answer its references (each
     once: a caller whose list names one twice goes alone), and whether every reference got
     an answer (else its own call may answer what the merge could not match back). ]]
local function split_lists(b, item, first, merged, index, used)
  local spec = b.spec
  local wanted, answered = {}, {}
  for i, ref in ipairs(item.refs) do wanted[ref] = i end
  local out = {}
  for k, v in pairs(first) do
    if spec.results[k] == nil and not (spec.page and k == spec.page[1]) then out[k] = v end
  end
  for field in pairs(spec.results) do
    local elements, ix = merged[field], index[field]
    -- the elements any of its references names, in the answer's order
    local candidates, seen = {}, {}
    for ref in pairs(wanted) do
      for _, i in ipairs(ix.at[ref] or NONE) do
        if not seen[i] then seen[i] = true; candidates[#candidates + 1] = i end
      end
    end
    table.sort(candidates)
    local mine, given = {}, {}
    for _, i in ipairs(candidates) do
      local at, ref
      for _, id in ipairs(ix.ids[i]) do
        if wanted[id] and not given[id] then at, ref = wanted[id], id break end
      end
      if at then
        given[ref], answered[ref] = true, true
        mine[#mine + 1] = { at = at, n = #mine + 1, e = share(b, item, elements[i], used) }
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
  local complete = true
  if not spec.omits_missing then
    for ref in pairs(wanted) do complete = complete and answered[ref] == true end
  end
  return out, complete
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
  local index, used = index_answer(spec, merged), {}
  for _, item in ipairs(b.items) do
    local share_of, complete = split_lists(b, item, first, merged, index, used)
    if complete then
      item.ok, item.value = true, share_of
    else
      -- something it asked for is not in its share (a reference answered under a name the
      -- batcher cannot match): its own call answers it, and nothing vanishes
      item.ok, item.value = pcall(unmerged, b, item)
    end
  end
end

--[[ Every page of a merged GetMetricData: the results in the order first seen, each one's
     Timestamps and Values concatenated; the first page's Messages; and, when the answer came
     in more than one page, how many datapoints the first held (the service's page size). ]]
local function metric_pages(b, params)
  local by_id, order, messages, page, first = {}, {}, nil, nil, true
  repeat
    local res = aws.request(b.service, b.op, params, { session = b.session or false })
    if first and res.NextToken then
      page = 0
      for _, r in ipairs(res.MetricDataResults or {}) do page = page + #(r.Values or {}) end
    end
    first = false
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
      local ts, vs = acc.Timestamps, acc.Values
      for _, t in ipairs(r.Timestamps or {}) do ts[#ts + 1] = t end
      for _, v in ipairs(r.Values or {}) do vs[#vs + 1] = v end
    end
    params = tables.shallow_copy(params)
    params.NextToken = res.NextToken
  until not res.NextToken
  return order, messages, page
end

-- GetMetricData: every caller's queries, Ids prefixed "b<n>_"; every page; split by prefix.
local function flush_metrics(b)
  local queries = {}
  for n, item in ipairs(b.items) do
    local prefix = "b" .. n .. "_"
    for _, q in ipairs(item.params.MetricDataQueries) do
      local c = tables.shallow_copy(q)
      c.Id = prefix .. q.Id
      queries[#queries + 1] = c
    end
  end
  local params = tables.shallow_copy(b.items[1].params)
  params.MetricDataQueries = queries
  local ok, order, messages, page = pcall(metric_pages, b, params)
  if not ok then return merged_failed(b, order) end
  -- one pass: each result to the caller its prefix names, its own Id back
  local mine, points = {}, {}
  for n = 1, #b.items do mine[n], points[n] = {}, 0 end
  for _, r in ipairs(order) do
    local n, id = r.Id:match("^b(%d+)_(.*)$")
    n = tonumber(n)
    local list = n and mine[n]
    if list then
      r.Id = id
      list[#list + 1] = r
      points[n] = points[n] + #r.Values
    end
  end
  local used = {}
  for n, item in ipairs(b.items) do
    if page and points[n] > page then
      -- more than a page of its own: its own call answers the first page and a NextToken
      item.ok, item.value = pcall(unmerged, b, item)
    else
      item.ok, item.value = true, { MetricDataResults = mine[n], Messages = messages and share(b, item, messages, used) }
    end
  end
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
  if b.kind == "same" then
    inflight[b.key] = b -- until answered, an identical `join` request waits for this one
    flush_same(b)
  elseif #b.items == 1 then
    local item = b.items[1]
    item.ok, item.value = pcall(unmerged, b, item)
  elseif b.kind == "lists" then
    flush_lists(b)
  else
    flush_metrics(b)
  end
  -- a batch's service errors as each caller's own call would raise them
end

local function new_batch(key, kind, service, op, sess, spec, list, client)
  local b = { key = key, kind = kind, service = service, op = op, session = sess, client = client,
    items = {}, size = 0, readonly = 0, changes = aws.stats.mutating_calls, spec = spec, list = list,
    refset = kind == "lists" and {} or nil }
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

local function join_batch(b, item)
  b.items[#b.items + 1] = item
  if item.readonly then b.readonly = b.readonly + 1 end
  item.b = b
  return item
end

--[[ Adds item to the open batch under key, or a new one (max units a call); a `join` request
     with no open batch joins the identical one in flight, if any. → item (its answer comes
     with its batch: see settle). ]]
local function enqueue(key, max, item, kind, service, op, sess, spec, list)
  local b = open[key]
  if b and b.size + added(b, item) > max then
    b.closed = true
    open[key] = nil
    b = nil
  end
  local flying = not b and item.join and inflight[key]
  if flying and flying.client == item.client then return join_batch(flying, item) end
  b = b or new_batch(key, kind, service, op, sess, spec, list, item.client)
  b.size = b.size + added(b, item)
  join_batch(b, item)
  if b.refset then for _, ref in ipairs(item.refs) do b.refset[ref] = true end end
  if b.size >= max then
    b.closed = true
    open[key] = nil
  end
  return item
end

-- An item answered at once (no batch): its call's outcome; an interruption is raised now.
local function answered(item, ok, value)
  if not ok and sched.is_interrupt(value) then error(value, 0) end
  item.ok, item.value = ok, value
  return item
end

-- Waits for item's answer: ok, value. Raises only when the wait itself is interrupted.
local function settle(item)
  local b = item.b
  if b then
    local ok, err = b.task:result()
    if not ok then return false, err end
  end
  return item.ok, item.value
end

---------------------------------------------------------------- entry

-- The list parameter a request merges by, and its references; nil when it cannot merge
-- (a reference named twice: the service may answer it twice, which a merge cannot tell).
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
  local seen = {}
  for _, ref in ipairs(params[found]) do
    if type(ref) ~= "string" or seen[ref] or (spec.ref_ok and not spec.ref_ok(ref, params)) then return nil end
    seen[ref] = true
  end
  if #params[found] > (spec.per_caller or spec.max) then return nil end
  if spec.page and params[spec.page[2]] ~= nil then return nil end
  if spec.page_size and params[spec.page_size[1]] ~= nil then return nil end
  return found, params[found]
end

--[[ Whether a caller's GetMetricData merges with others'. Never when merging would change its
     answer: an expression (its names are the request's own), a NextToken, MaxDatapoints (a
     limit on the whole request's datapoints, so on the other callers' too); nor when its own
     call is refused and a merged one would not be: CloudWatch's Id rule, "The valid
     characters are letters, numbers, and underscore. The first character must be a
     lowercase letter." (https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_MetricDataQuery.html),
     which the "b<n>_" prefix would satisfy; an Id too long to take the prefix; and no query
     returning data (ReturnData false on all of them), which CloudWatch refuses in a request
     of its own but not next to other callers' queries. ]]
local function mergeable_metrics(params)
  local qs = params.MetricDataQueries
  if params.NextToken ~= nil or params.MaxDatapoints ~= nil or type(qs) ~= "table" or #qs == 0
      or #qs > METRIC_QUERIES then
    return false
  end
  local returns = false
  for _, q in ipairs(qs) do
    if type(q) ~= "table" or q.Expression ~= nil or type(q.Id) ~= "string"
        or not q.Id:find("^[a-z][A-Za-z0-9_]*$") or #q.Id > METRIC_ID_MAX then
      return false
    end
    returns = returns or q.ReturnData ~= false
  end
  return returns
end

-- What a request asks for, for aws.stats items: its list's references (services, names,
-- queries), merged or not; else 1 (a target group's health, a listener's rules).
local function items_asked(spec, params)
  for _, name in ipairs(spec and (spec.lists or { spec.list }) or { "MetricDataQueries" }) do
    local v = params[name]
    if type(v) == "table" then return #v end
  end
  return 1
end

-- Identical requests of this round (and, for `join`, one in flight): one call.
local function submit_same(item, name, service, op, sess, skey)
  local key = key_of(name, skey, item.params)
  local known = remembered(key, item.readonly, item.client)
  if known then return answered(item, true, known) end
  return enqueue(key, math.huge, item, "same", service, op, sess)
end

-- Files one request: → its item, answered now or when its batch is sent (settle).
local function submit(service, op, params, opts)
  params = params or {}
  local item = { params = params, readonly = opts and opts.readonly or false, join = opts and opts.join or false }
  local name = service .. "." .. op
  local spec = LISTS[name]
  local metrics = name == "cloudwatch.GetMetricData"
  if not (spec or SAME[name] or metrics) then return answered(item, pcall(aws.call, service, op, params)) end
  if type(params) == "table" then count_items(service, op, items_asked(spec, params)) end
  local settings = aws.client_settings and aws.client_settings()
  -- a request the model refuses goes alone: its own ParamValidation (nothing is sent), naming
  -- its own parameters, never failing other callers'
  if not (M.enabled(settings) and sched.in_task()) or not aws.input_fits(service, op, params) then
    return answered(item, pcall(aws.call, service, op, params))
  end
  local sess = aws.current_session()
  local skey = session_key(sess)
  local list, refs
  if spec then list, refs = list_of(spec, params) end
  if list then
    local rest = tables.shallow_copy(params)
    rest[list] = nil
    item.refs, item.size = refs, #refs
    return enqueue(key_of(name, skey, list, rest), spec.max, item, "lists", service, op, sess, spec, list)
  elseif metrics and mergeable_metrics(params) then
    local rest = tables.shallow_copy(params)
    rest.MetricDataQueries = nil
    item.size = #params.MetricDataQueries
    return enqueue(key_of(name, skey, rest), METRIC_QUERIES, item, "metrics", service, op, sess)
  end
  -- the rest (a listener's rules, a page, metric math, what would not merge): identical
  -- requests merge
  item.size = 1
  item.client = settings and settings.opts -- the client configuration (aws.configure{}) it is for
  return submit_same(item, name, service, op, sess, skey)
end

function M.call(service, op, params, opts)
  local ok, value = settle(submit(service, op, params, opts))
  if not ok then error(value, 0) end
  return value
end

--[[ Every request of `list` filed at once, so that they go out in the same round as each other
     and as other callers' (a load balancer's fifty listeners' rules: one round, not fifty),
     then answered in order: → oks, values (values[i]: list[i]'s answer or error). Unbatched,
     they go one after another. An interruption while waiting is raised. ]]
function M.call_each(service, op, list, opts)
  local items = {}
  for i, params in ipairs(list) do items[i] = submit(service, op, params, opts) end
  local oks, values = {}, {}
  for i, item in ipairs(items) do oks[i], values[i] = settle(item) end
  return oks, values
end

-- { describe_services = fn, ... } for a service: the batched reads under boto3's names, each
-- call with opts ({ readonly =, join = }, see above).
function M.face(service, opts)
  local face = {}
  for snake, op in pairs(SNAKE[service] or {}) do
    face[snake] = function(params) return M.call(service, op, params, opts) end
  end
  return face
end

return M
