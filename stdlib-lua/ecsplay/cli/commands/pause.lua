-- `ecsplay pause RUN`: hold a running rollout at its current weights (its gates still measure).
return require("ecsplay.cli.steer").command("pause",
  "hold a running rollout at its current weights, gates still measuring (until unpause)")
