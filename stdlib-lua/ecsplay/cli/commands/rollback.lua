-- `ecsplay rollback JOURNAL.jsonl`: undo what a run's journal says it changed.
local journal_command = require "ecsplay.cli.journal_command"

return {
  summary = "undo what a run changed, from its journal (safe to repeat)",
  usage = "ecsplay rollback [--endpoint-url URL] [--region R] [--profile P] "
    .. "[--log-format text|json] [-v|-q] JOURNAL.jsonl",
  run = function(opts, argv) return journal_command.run("rollback", opts, argv) end,
}
