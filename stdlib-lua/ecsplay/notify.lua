--[[
Ready-made `notify` hooks for the strategies: chat webhooks and JSON sinks.

  -- notify: the module ecsplay.notify
  rollout.canary { ..., notify = notify.webhook { url = os.getenv("SLACK_WEBHOOK") } }

webhook{ url=, format = "slack" (default: {"text": "..."}, which Slack,
Mattermost and Google Chat accept) | "json" (the event itself), events = { ... }
(default: the ones a channel wants: step, promote, abort, rollback, undo,
summary), headers = {}, timeout = "5s" } returns function(event).

A webhook that fails is logged as a warning; it never stops or slows a
rollback beyond its timeout.
]]
local log = require "ecsplay.log"
local http = require "ecsplay.http"

local M = {}

M.DEFAULT_EVENTS = { "step", "promote", "abort", "rollback", "undo", "summary" }

-- One line for people: "[canary api] step 2/4: api-canary=25 api-stable=75"
function M.text(event)
  local who = event.strategy or "ecsplay"
  local msg = tostring(event.message or event.event or ""):gsub("^%s+", "")
  -- the log says an abort's reason once, at the end; a chat message has to say it itself
  if event.event == "abort" and event.reason then msg = msg .. ": " .. tostring(event.reason) end
  local icon = ({ abort = ":x: ", rollback = ":leftwards_arrow_with_hook: ",
    summary = event.level == "info" and ":white_check_mark: " or ":warning: " })[event.event] or ""
  return string.format("%s[%s] %s", icon, who, msg)
end

function M.webhook(opts)
  if type(opts) ~= "table" or type(opts.url) ~= "string" or not opts.url:match("^https?://") then
    error("notify.webhook: url = \"https://...\" is required", 2)
  end
  local format = opts.format or "slack"
  if format ~= "slack" and format ~= "json" then
    error("notify.webhook: format: expected \"slack\" or \"json\", got " .. tostring(format), 2)
  end
  local wanted = {}
  for _, e in ipairs(opts.events or M.DEFAULT_EVENTS) do wanted[e] = true end
  local headers = { ["Content-Type"] = "application/json" }
  for k, v in pairs(opts.headers or {}) do headers[k] = v end
  return function(event)
    if not wanted[event.event] then return end
    local body = format == "slack" and { text = M.text(event) } or event
    local res, err = http.request { method = "POST", url = opts.url,
      headers = headers, body = body, timeout = opts.timeout or 5 }
    if not res then
      log.event("warn", "notify", "webhook failed: " .. tostring(err))
    elseif res.status >= 300 then
      log.event("warn", "notify", "webhook answered HTTP " .. res.status)
    end
  end
end

return M
