-- `ecsplay unpause RUN`: a paused rollout goes on (`resume` restarts a killed run from its journal).
return require("ecsplay.cli.steer").command("unpause",
  "let a paused rollout go on (a killed run is restarted with `ecsplay resume`)")
