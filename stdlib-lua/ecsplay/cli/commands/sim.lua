-- `ecsplay sim serve ...` (and `ecsplay sim --help`): the simulator over HTTP.
local strings = require "ecsplay.util.strings"
local args = require "ecsplay.cli.args"

local USAGE = "ecsplay sim serve [--port N] [--scenario FILE] [--speed X | --lockstep] [--no-auth] [--iam-policy FILE]"

return {
  summary = "serve the AWS simulator over HTTP (boto3, the AWS CLI, ecsplay --endpoint-url)",
  usage = USAGE,
  -- `sim serve --help` explains every option (cli/sim_serve.lua), more than the usage line
  own_help = true,
  run = function(opts, argv)
    local sub = argv[1]
    if args.wants_help(argv) and sub ~= "serve" then sub = "--help" argv = { "--help" } end
    if sub == "serve" or args.HELP_FLAGS[sub] then
      local rest = {}
      for i = sub == "serve" and 2 or 1, #argv do rest[#rest + 1] = argv[i] end
      -- lazy: the simulator and its HTTP server load only for `sim serve` (start-up cost)
      return require("ecsplay.cli.sim_serve").run(opts, rest)
    end
    if sub == nil then return args.usage_error("sim", "which sim command? (`serve` is the one)", USAGE) end
    return args.usage_error("sim", "unknown sim command `" .. sub .. "`"
      .. strings.did_you_mean(sub, { "serve" }, { list_all = true }), USAGE)
  end,
}
