-- `ecsplay abort RUN`: a running rollout rolls back now; it exits 1 saying who aborted it.
return require("ecsplay.cli.steer").command("abort",
  "roll a running rollout back now (it exits 1, naming who aborted it)")
