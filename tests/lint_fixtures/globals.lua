-- lint fixture: undefined globals and fields (luacheck)
local rollout = require "ecsplay.rollout"
ecsplay.sleeep(1)
ecsplay.log.info("deploying")
rollout.canary(options)
helper = function() end
print(string.fromat("%d", 1))
