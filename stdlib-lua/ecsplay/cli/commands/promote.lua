--[[ `ecsplay promote RUN [--full]`: end the current bake (or approve the
     approval step: the approver is the user, or --as NAME); --full skips the
     remaining steps and approvals to 100 % and promotes. ]]
return require("ecsplay.cli.steer").command("promote",
  "end a running rollout's bake, or approve its approval step (--full: straight to 100%, promote)",
  " [--full]", { ["--full"] = function(o) o.full = true end })
