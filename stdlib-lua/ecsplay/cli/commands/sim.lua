-- `ecsplay sim serve ...` (and `ecsplay sim --help`): the simulator over HTTP.
local exit = require "ecsplay.cli.exit"

local USAGE = "ecsplay sim serve [--port N] [--scenario FILE] [--speed X | --lockstep] [--no-auth]"

return {
  summary = "serve the AWS simulator over HTTP (boto3, the AWS CLI, ecsplay --endpoint-url)",
  usage = USAGE,
  run = function(opts, argv)
    local sub = argv[1]
    if sub == "serve" or sub == "--help" or sub == "-h" then
      local rest = {}
      for i = sub == "serve" and 2 or 1, #argv do rest[#rest + 1] = argv[i] end
      -- lazy: the simulator and its HTTP server load only for `sim serve` (start-up cost)
      return require("ecsplay.cli.sim_serve").run(opts, rest)
    end
    return exit.BAD_INPUT, "ecsplay: unknown sim command"
      .. (sub and (": " .. sub) or "") .. " (expected `ecsplay sim serve`)\nusage: " .. USAGE
  end,
}
