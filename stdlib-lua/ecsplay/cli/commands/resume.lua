-- `ecsplay resume JOURNAL.jsonl`: restart a killed run where its journal stopped.
local journal_command = require "ecsplay.cli.journal_command"

return {
  summary = "restart a killed run where its journal stopped",
  usage = "ecsplay resume [--endpoint-url URL] [--region R] [--profile P] "
    .. "[--log-format text|json] [-v|-q] JOURNAL.jsonl",
  run = function(opts, argv) return journal_command.run("resume", opts, argv) end,
}
