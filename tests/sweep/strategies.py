"""What the sweep runs: every shipped playbook (playbooks/*.lua), as shipped, plus the failing
variant each documents (its rollback path is where kill -9 meets `undone` lines).

    name: {playbook, args, scenario, setup, expect (the baseline's exit code),
           signals (SIGINT/SIGTERM cases), faults (injected-fault cases),
           regions (the Regions its scenario serves: the invariants read each one's world),
           multi (several rollouts, each its own journal: False, "strategy" or "name", how
           journal lines are labelled: by the rollout's strategy, or by its name when one
           strategy runs several times)}

`setup` runs first against the fresh world (rollback.lua needs a revision to go back from).
Faults and signals are swept on the happy runs only; the failing variants add kill -9 cases.
"""

STRATEGIES = {
    "canary": {"playbook": "playbooks/canary.lua"},
    "linear": {"playbook": "playbooks/linear.lua"},
    "rolling": {"playbook": "playbooks/rolling.lua"},
    "blue_green": {"playbook": "playbooks/blue_green.lua"},
    "codedeploy": {"playbook": "playbooks/codedeploy.lua"},
    "ecs_native": {"playbook": "playbooks/ecs_native.lua"},
    "multi_service": {"playbook": "playbooks/multi_service.lua", "multi": "strategy"},
    # a canary per Region in waves (one session each), a soak between waves
    "multi_region": {"playbook": "playbooks/multi_region.lua", "scenario": "playbooks/scenarios/multi_region.lua",
                     "regions": ["us-east-1", "eu-west-1", "ap-southeast-1"], "multi": "name"},
    # rollout.fleet: 8 canaries, 4 at a time
    "fleet": {"playbook": "playbooks/fleet.lua", "scenario": "playbooks/scenarios/fleet.lua", "multi": "name"},
    "rollback": {"playbook": "playbooks/rollback.lua",
                 "setup": [["playbooks/rolling.lua", "bake=0"]]},
    # the documented failures: a gate (or ECS's circuit breaker) fails and the run rolls back
    "canary-flaky": {"playbook": "playbooks/canary.lua", "args": ["image=api:flaky"], "expect": 1},
    "linear-slow": {"playbook": "playbooks/linear.lua", "args": ["image=api:slow"], "expect": 1},
    "rolling-bad": {"playbook": "playbooks/rolling.lua", "args": ["image=api:bad"], "expect": 1},
    "blue_green-slow": {"playbook": "playbooks/blue_green.lua", "args": ["image=api:slow"], "expect": 1},
    # green's healthy-hosts gate wants 4 of app's 3 tasks: fails at its first measurement (a
    # metric gate's verdict over HTTP depends on when the windows close: not for a sweep)
    "codedeploy-gate": {"playbook": "playbooks/codedeploy.lua", "args": ["min_healthy=4"], "expect": 1},
    "ecs_native-slow": {"playbook": "playbooks/ecs_native.lua", "args": ["image=api:slow"], "expect": 1},
    "multi_service-flaky": {"playbook": "playbooks/multi_service.lua", "args": ["image=api:flaky"],
                            "expect": 1, "multi": "strategy"},
    # svc5's tasks crash: the fleet stops its members (each rolls back) and puts back those promoted
    "fleet-bad": {"playbook": "playbooks/fleet.lua", "scenario": "playbooks/scenarios/fleet.lua",
                  "args": ["bad=5"], "expect": 1, "multi": "name"},
}

for _name, _s in STRATEGIES.items():
    _s.setdefault("args", [])
    _s.setdefault("scenario", None)
    _s.setdefault("setup", [])
    _s.setdefault("expect", 0)
    _s.setdefault("regions", None)
    _s.setdefault("multi", False)
    happy = _s["expect"] == 0
    _s.setdefault("signals", happy)
    _s.setdefault("faults", happy)

# Injected faults, one kind per case (sim/faults.lua; POST /_sim/faults). Persistent kinds stay
# until the run (and its rollback) ended: "ModifyRule answers 503 for an hour". Transient kinds
# hit the next `times` matching calls: the retries must absorb them, and a call whose answer was
# lost (drop, delay past the client's 60 s timeout) must not be done twice.
FAULT_KINDS = {
    "throttle": {"error": "ThrottlingException", "times": 3},
    "503": {"status": 503},
    "denied": {"status": 403},
    "drop": {"drop": True, "times": 2},
    "delay": {"delay": 75, "times": 2},
}

SERVICES = ["ecs", "elbv2", "codedeploy", "cloudwatch"]
