-- The simulated CloudWatch's percentiles over latency distributions (sim/cloudwatch/stats.lua):
-- the bracket is narrowed (log-space halving, then regula falsi) before the bisection
-- finishes, and the answer must be the very number that bisection from the distributions'
-- +-8 sigma alone ends on (over the same CDF), and a true percentile (the mixture's CDF
-- reaches p at it and not at the number below it).
local T = require "harness"
local stats = require "ecsplay.sim.cloudwatch.stats"

local log, exp = math.log, math.exp

-- The mixture's CDF (stats.lua's own: what the narrowing must not change is where the
-- bisection over this function ends).
local function cdf(dists, x)
  local total = 0
  for _, d in ipairs(dists) do total = total + d[3] end
  return stats.mixture_cdf(dists, {}, total, x)
end

-- Bisection from the +-8 sigma bracket until it stops moving: the answer before narrowing.
local function bisected(dists, p)
  local lo, hi = math.huge, -math.huge
  for _, d in ipairs(dists) do
    lo = math.min(lo, exp(d[1] - 8 * d[2]))
    hi = math.max(hi, exp(d[1] + 8 * d[2]))
  end
  local target = p / 100
  for _ = 1, 100 do
    local mid = (lo + hi) / 2
    local was_lo, was_hi = lo, hi
    if cdf(dists, mid) < target then lo = mid else hi = mid end
    if lo == was_lo and hi == was_hi then break end
  end
  return hi
end

local PS = { 0, 1, 10, 50, 75, 90, 95, 99, 99.5, 99.9, 99.99, 100 }

-- Mixtures like the ALB metrics' (one to three lognormals a sample, one to three samples a
-- period), from narrow to wide, close together and far apart.
local function random_samples()
  local samples = {}
  for s = 1, math.random(1, 3) do
    local dists = {}
    for d = 1, math.random(1, 3) do
      dists[d] = { log(0.005 + math.random() * 3), 0.02 + math.random() * 1.5, math.random(1, 1000) }
    end
    samples[s] = { t = 0, n = 1, sum = 1, min = 0, max = 1, dists = dists }
  end
  return samples
end

local function all_dists(samples)
  local all = {}
  for _, smp in ipairs(samples) do
    for _, d in ipairs(smp.dists) do all[#all + 1] = d end
  end
  return all
end

T.test("a percentile is the number plain bisection ends on, for random mixtures", function()
  math.randomseed(20261207)
  local differ, checked = {}, 0
  for _ = 1, 1500 do
    local samples = random_samples()
    local all = all_dists(samples)
    local p = PS[math.random(1, #PS)]
    local got = stats.compute(samples, { kind = "p", p = p })
    local want = bisected(all, p)
    checked = checked + 1
    if got ~= want and #differ < 3 then
      differ[#differ + 1] = string.format("p%s of %d distributions: %.17g, bisection %.17g", p, #all,
        got, want)
    end
  end
  T.eq(checked, 1500, "mixtures checked")
  T.eq(differ, {}, "percentiles that differ from plain bisection")
end)

T.test("the CDF reaches p at the percentile and not just below it", function()
  math.randomseed(7)
  local wrong = {}
  for _ = 1, 300 do
    local samples = random_samples()
    local all = all_dists(samples)
    local p = PS[math.random(2, #PS - 1)] -- p0 and p100 sit at the bracket's ends
    local v = stats.compute(samples, { kind = "p", p = p })
    local below = v - v * 2 ^ -50 -- a few representable numbers below
    if not (cdf(all, v) >= p / 100 and cdf(all, below) < p / 100) and #wrong < 3 then
      wrong[#wrong + 1] = string.format("p%s = %.17g: CDF there %.17g, just below %.17g", p, v,
        cdf(all, v), cdf(all, below))
    end
  end
  T.eq(wrong, {}, "percentiles where the CDF does not cross p")
end)

T.test("one lognormal: the percentile is exp(mu + sigma * z) to the CDF's accuracy", function()
  for _, sigma in ipairs { 0.05, 0.3, 1.0 } do
    for _, p in ipairs { 50, 90, 99 } do
      local mu = log(0.2)
      local v = stats.compute({ { t = 0, n = 1, sum = 1, min = 0, max = 1, dists = { { mu, sigma, 10 } } } },
        { kind = "p", p = p })
      local want = exp(mu + sigma * stats.probit(p / 100))
      T.near(v / want, 1, 1e-5, string.format("p%s, sigma %s", p, sigma))
    end
  end
end)
