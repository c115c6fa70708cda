"""Fuzzer (c): mutated scenario files (docs/simulator.md, sim/scenario.lua).

Each case writes a scenario built from a valid table (seed, start, world, traffic, images,
alarms, faults and a setup function that calls the simulated AWS), with one to three fields
replaced by hostile values (huge counts such as desiredCount 2147483647, inf, nan, negative
durations, a start in year 9999, wrong types, unknown or misspelt keys, long strings, deep
tables), or its text cut or flipped, and runs a small playbook on it:
    ecsplay --simulate=CASE.lua tests/fuzz/scenario_playbook.lua
Passing means it ran (exit 0), or was refused clearly (exit 2 naming the scenario file;
sim/scenario.lua adds `:line: field:` where it can), or failed a call with an error that has a
code (exit 1); never a crash, a sanitizer report, a Lua traceback through ecsplay's files, or
more than TIMEOUT seconds.
"""
import os
import re

import fuzzlib

NAME = "scenarios"
TIMEOUT = 10
PLAYBOOK = os.path.join(fuzzlib.ROOT, "tests", "fuzz", "scenario_playbook.lua")
HOSTILE = ["2147483647", "2147483648", "math.maxinteger", "math.mininteger", "-1", "0", "1e308", "-1e308",
           "1/0", "-1/0", "0/0", "0.5", '""', '"x"', '"9999-12-31T23:59:59Z"', '"0001-01-01T00:00:00Z"',
           '"-5m"', '"99999999h"', '"1e400s"', "true", "{}", "{ {} }", "function() end",
           "function() error('boom') end", "function() return 1/0 end",
           '("x"):rep(100000)', "setmetatable({}, { __index = function() error('meta') end })",
           "{ [1] = 1, [3] = 3 }", "{ x = { y = { z = { w = {} } } } }", "nil"]
FIELDS = ["seed", "start", "world", "traffic.rps", "traffic.listeners[443]", "traffic.listeners",
          'images["api:v2"].start', 'images["api:v2"].error_rate', 'images["api:v2"].latency_ms.p50',
          'images["api:v2"].latency_ms.p99', 'images["api:v2"].crash', 'images["api:v2"].after',
          'images["~:slow$"]', 'alarms["api-5xx-high"].state', 'alarms["api-5xx-high"]["then"].at',
          "faults[1].times", "faults[1].delay", "faults[1].status", "faults[1].at", "faults[1].service",
          "faults[1].operation", "faults[1]", "keys", "images", "alarms", "faults",
          "setup.desiredCount", "setup.weight", "setup.count", "setup.period", "setup.seconds"]
TYPOS = ["seeds", "strat", "wrold", "trafic", "image", "alarm", "fault", "setpu", "keyz", "rps"]


def render(over):
    """The scenario's Lua text; `over` maps FIELDS entries to Lua expressions (None: removed)."""
    def f(name, default):
        if name in over:
            return over[name]
        return default

    def entry(key, name, default):
        v = f(name, default)
        return "" if v is None or v == "nil" else "  %s = %s,\n" % (key, v)

    lat = "{ p50 = %s, p99 = %s }" % (f('images["api:v2"].latency_ms.p50', "40"),
                                       f('images["api:v2"].latency_ms.p99', "150"))
    v2 = f('images["api:v2"]', None) if 'images["api:v2"]' in over else (
        "{ start = %s, error_rate = %s, latency_ms = %s, crash = %s, after = %s }" % (
            f('images["api:v2"].start', '"30s"'), f('images["api:v2"].error_rate', "0.001"), lat,
            f('images["api:v2"].crash', '"after"'), f('images["api:v2"].after', '"3m"')))
    images = f("images", '{\n    ["api:v2"] = %s,\n    ["~:slow$"] = %s,\n  }' % (
        v2, f('images["~:slow$"]', "{ latency_ms = { p50 = 300, p99 = 900 } }")))
    then = "{ at = %s, state = \"ALARM\" }" % f('alarms["api-5xx-high"]["then"].at', '"12m"')
    alarms = f("alarms", '{ ["api-5xx-high"] = { state = %s, ["then"] = %s } }' % (
        f('alarms["api-5xx-high"].state', '"OK"'), then))
    fault1 = f("faults[1]", "{ service = %s, operation = %s, status = %s, times = %s, at = %s, delay = %s }" % (
        f("faults[1].service", '"ecs"'), f("faults[1].operation", '"ListServices"'),
        f("faults[1].status", "503"), f("faults[1].times", "1"), f("faults[1].at", '"2m"'),
        f("faults[1].delay", '"1s"')))
    faults = f("faults", "{ %s, { service = \"elbv2\", operation = \"*\", error = \"Throttling\", times = 2 } }" % fault1)
    traffic = f("traffic", "{ rps = %s, listeners = %s }" % (
        f("traffic.rps", "200"), f("traffic.listeners", "{ [443] = %s }" % f("traffic.listeners[443]", "150"))))
    setup = """function(aws)
    aws.ecs.UpdateService { cluster = "production", service = "api-canary", desiredCount = %s }
    aws.cloudwatch.PutMetricAlarm { AlarmName = "fuzz", Namespace = "AWS/ApplicationELB", MetricName = "RequestCount",
      Statistic = "Sum", Period = %s, EvaluationPeriods = 1, Threshold = %s, ComparisonOperator = "GreaterThanThreshold" }
    local rules = aws.elbv2.DescribeRules { ListenerArn = aws.elbv2.DescribeListeners {
      LoadBalancerArn = aws.elbv2.DescribeLoadBalancers { Names = { "web" } }.LoadBalancers[1].LoadBalancerArn }.Listeners[1].ListenerArn }.Rules
    for _, r in ipairs(rules) do
      if r.Priority == "10" then
        local tgs = r.Actions[1].ForwardConfig.TargetGroups
        tgs[1].Weight, tgs[2].Weight = %s, 100
        aws.elbv2.ModifyRule { RuleArn = r.RuleArn, Actions = { { Type = "forward", ForwardConfig = { TargetGroups = tgs } } } }
      end
    end
  end""" % (f("setup.desiredCount", "2"), f("setup.period", "60"), f("setup.count", "100"), f("setup.weight", "100"))
    body = "".join([
        entry("seed", "seed", "42"), entry("start", "start", '"2026-11-26T10:00:00Z"'),
        entry("world", "world", '"default"'), entry("traffic", "traffic", traffic),
        entry("images", "images", images), entry("alarms", "alarms", alarms),
        entry("faults", "faults", faults), entry("keys", "keys", None), entry("setup", "setup", setup),
    ])
    extra = over.get("__extra", "")
    return "-- fuzzed scenario\nreturn {\n%s%s}\n" % (body, extra)


COUNT_FIELDS = ["setup.desiredCount", "traffic.rps", "traffic.listeners[443]", "faults[1].times"]
COUNT_VALUES = ["2147483647", "1e9", "math.maxinteger", "100000"]


def build(r):
    over = {}
    if r.random() < 0.02:                       # a huge count: the world must refuse or cope
        over[r.choice(COUNT_FIELDS)] = r.choice(COUNT_VALUES)
    for _ in range(r.randint(1, 3)):
        k = r.randrange(10)
        if k < 7:
            over[r.choice(FIELDS)] = r.choice(HOSTILE)
        elif k == 7:
            over["__extra"] = "  %s = %s,\n" % (r.choice(TYPOS), r.choice(HOSTILE))
        elif k == 8:
            over[r.choice(FIELDS)] = None
        else:
            over["keys"] = r.choice(['{ AKIDX = "s" }', "{ [1] = 'x' }", '{ AK = 5 }', "{}", '{ [""] = "s" }'])
    text = render(over)
    t = r.random()
    if t < 0.08:
        text = text[:r.randrange(len(text))]
    elif t < 0.14:
        b = list(text)
        i = r.randrange(len(b))
        b[i] = r.choice(["{", "}", "=", ",", '"', "\\", "\n", "]", "--[[", "\x00"])
        text = "".join(b)
    return text, over


class Fuzzer:
    name = NAME

    def __init__(self, tmp):
        self.tmp = tmp

    def close(self):
        pass

    def case(self, seed, n, keep=False):
        r = fuzzlib.rng(NAME, seed, n)
        text, over = build(r)
        path = os.path.join(self.tmp, "scenario-%d.lua" % n)
        with open(path, "w") as f:
            f.write(text)
        p = fuzzlib.run(["--simulate=" + path, PLAYBOOK], env=fuzzlib.base_env({"AWS_MAX_ATTEMPTS": "3"}),
                        timeout=TIMEOUT)
        fields = "+".join(sorted(k for k in over if k != "__extra")) or "text"
        problems = [(sig + ":" + fields if sig == "hang" else sig, ev)
                    for sig, ev in fuzzlib.crash_evidence(p, "ecsplay --simulate")]
        last = fuzzlib.last_error_line(p.text)
        if not problems:
            if p.rc == 2:
                if path not in p.text:
                    problems.append(("refusal-without-file", "exit 2 without naming the scenario file: %s" % last[:300]))
            elif p.rc == 1:
                if not re.search(r"\b[A-Z][A-Za-z]+(Exception|Error|Fault|Failed|Timeout|NotFound)?\b", last):
                    problems.append(("error-without-code", "exit 1 without an error code: %s" % last[:300]))
            elif p.rc != 0:
                problems.append(("exit", "exit %s (want 0, 1 or 2): %s" % (p.rc, last[:300])))
        note = "exit %s in %.1fs; %s; %s" % (p.rc, p.secs, ", ".join("%s=%s" % (k, (v or "nil")[:30])
                                                                   for k, v in sorted(over.items()))[:200], last[:200])
        if not keep:
            os.unlink(path)
        out = fuzzlib.Outcome("%s#%d" % (NAME, n), problems, note=note)
        out.files = {"scenario.lua": text.encode()}
        return out
