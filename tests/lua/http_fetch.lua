-- Test helper (not a test file): one request through ecsplay.core.http, run to completion
-- outside the scheduler (the stub clients' own requests).
--   local fetch = require "http_fetch"
--   local c = fetch(req, rounds, wait)  -- at most `rounds` polls of `wait` seconds; raises after
local http = require "ecsplay.core.http"

return function(req, rounds, wait)
  local id = http.start(req)
  for _ = 1, rounds do
    for _, c in ipairs(http.poll(wait)) do
      if c.id == id then return c end
    end
  end
  error("transfer " .. id .. " never completed: " .. tostring(req.url))
end
