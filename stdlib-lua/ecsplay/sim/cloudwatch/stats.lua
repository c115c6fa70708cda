--[[
Statistics of the simulated CloudWatch: the statistic names a query may ask
for, a period's statistic over its samples, percentiles (exact over raw
values, by bisection on the lognormal mixture's CDF when latency
distributions are present), the normal distribution they need, and
CloudWatch's rules for periods. Pure: no world, no state.

A sample is a statistic set { t, n, sum, min, max, unit } plus, when known,
the raw values (vals = { {v, count}, ... }) or a latency distribution
(dists = { {mu, sigma, w}, ... }, lognormal in seconds).
]]
local M = {}

---------------------------------------------------------------- normal distribution

-- Inverse standard normal CDF (Acklam's rational approximation).
function M.probit(p)
  if p <= 0 then return -math.huge end
  if p >= 1 then return math.huge end
  local a = { -3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
    1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00 }
  local b = { -5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
    6.680131188771972e+01, -1.328068155288572e+01 }
  local c = { -7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
    -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00 }
  local d = { 7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00, 3.754408661907416e+00 }
  local lo = 0.02425
  if p < lo then
    local q = math.sqrt(-2 * math.log(p))
    return (((((c[1] * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) * q + c[6]) /
      ((((d[1] * q + d[2]) * q + d[3]) * q + d[4]) * q + 1)
  elseif p <= 1 - lo then
    local q = p - 0.5
    local r = q * q
    return (((((a[1] * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * r + a[6]) * q /
      (((((b[1] * r + b[2]) * r + b[3]) * r + b[4]) * r + b[5]) * r + 1)
  end
  local q = math.sqrt(-2 * math.log(1 - p))
  return -(((((c[1] * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) * q + c[6]) /
    ((((d[1] * q + d[2]) * q + d[3]) * q + d[4]) * q + 1)
end

---------------------------------------------------------------- statistics

-- "Sum", "p99", ... -> { kind = "Sum" } | { kind = "p", p = 99 }, or nil when not a statistic.
function M.parse_stat(stat)
  if stat == "SampleCount" or stat == "Sum" or stat == "Average" or stat == "Minimum" or stat == "Maximum" then
    return { kind = stat }
  end
  local p = type(stat) == "string" and stat:match("^p(%d+%.?%d*)$")
  p = p and tonumber(p)
  if p and p >= 0 and p <= 100 then return { kind = "p", p = p } end
  return nil
end

-- The raw values and distributions of a period's samples, their total weight and range.
local function gather(samples)
  local vals, dists, total, lo, hi = {}, {}, 0, math.huge, -math.huge
  for _, smp in ipairs(samples) do
    if smp.dists then
      for _, d in ipairs(smp.dists) do
        dists[#dists + 1] = d
        total = total + d[3]
        lo = math.min(lo, math.exp(d[1] - 8 * d[2]))
        hi = math.max(hi, math.exp(d[1] + 8 * d[2]))
      end
    elseif smp.vals then
      for _, vc in ipairs(smp.vals) do
        vals[#vals + 1] = vc
        total = total + vc[2]
        lo = math.min(lo, vc[1])
        hi = math.max(hi, vc[1])
      end
    end
  end
  return vals, dists, total, lo, hi
end

local log, exp, SQRT2 = math.log, math.exp, math.sqrt(2)

--[[ The mixture's CDF at x (the weight at or below x over `total`): each lognormal adds
     w * phi((log x - mu) / sigma), phi(z) = (1 + erf(z / sqrt 2)) / 2, erf by Abramowitz-Stegun
     7.1.26 (|error| < 1.5e-7, plenty for percentiles). Written out in one function, as the
     bisection below evaluates it some sixty times per percentile and a gate asks for one per
     period it reads (the same operations in the same order as the separate erf and phi
     functions this replaced: the same values to the last bit). ]]
local function mixture_cdf(dists, vals, total, x)
  local acc = 0
  if x > 0 then
    local lx = log(x)
    for i = 1, #dists do
      local d = dists[i]
      local e = ((lx - d[1]) / d[2]) / SQRT2
      local sign = 1
      if e < 0 then sign, e = -1, -e end
      local t = 1 / (1 + 0.3275911 * e)
      local y = 1 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t
        + 0.254829592) * t * exp(-e * e)
      acc = acc + d[3] * (0.5 * (1 + sign * y))
    end
  end
  for i = 1, #vals do
    local vc = vals[i]
    if vc[1] <= x then acc = acc + vc[2] end
  end
  return acc / total
end

--[[ The bisection below ends on the two neighbouring numbers between which the CDF reaches
     `target` (lo below it, hi at or above), wherever it starts inside a bracket that holds
     them; from the distributions' +-8 sigma that takes sixty to eighty CDF evaluations, and
     a gate asks for a percentile per period it reads. So the bracket is narrowed first,
     keeping the same invariant (CDF(lo) < target <= CDF(hi)): halved in log space while
     its ends are more than 1 % apart (a lognormal is even in log x), then by the Illinois
     variant of regula falsi, which closes in on a smooth crossing in a few steps. About
     twenty evaluations in all; the bisection then finishes on the same neighbours. ]]
local ULPS = 4 * 2 ^ -52
local sqrt = math.sqrt

local function narrow(dists, vals, total, target, lo, hi)
  local flo = mixture_cdf(dists, vals, total, lo) - target
  local fhi = mixture_cdf(dists, vals, total, hi) - target
  if not (flo < 0 and fhi >= 0) then return lo, hi end -- no crossing inside: bisection as is
  while lo > 0 and hi > lo * 1.01 do
    local mid = sqrt(lo) * sqrt(hi)
    if not (mid > lo and mid < hi) then break end
    local fm = mixture_cdf(dists, vals, total, mid) - target
    if fm < 0 then lo, flo = mid, fm else hi, fhi = mid, fm end
  end
  local side = 0 -- the end the last step moved: -1 lo, 1 hi
  for _ = 1, 40 do
    if hi - lo <= ULPS * hi or fhi == flo then break end
    local x = lo - flo * (hi - lo) / (fhi - flo)
    if fhi == 0 then -- the crossing is at hi or just below it: probe just below
      x = hi - (hi - lo) / 1024
    end
    if not (x > lo and x < hi) then x = (lo + hi) / 2 end
    if not (x > lo and x < hi) then break end -- no room left between the ends
    local fx = mixture_cdf(dists, vals, total, x) - target
    if fx < 0 then
      lo, flo = x, fx
      if side == -1 then fhi = fhi / 2 end -- Illinois: hi kept twice, its weight halved
      side = -1
    else
      hi, fhi = x, fx
      if side == 1 then flo = flo / 2 end
      side = 1
    end
  end
  return lo, hi
end

M.mixture_cdf = mixture_cdf -- for the tests

local function percentile(samples, p)
  local vals, dists, total, lo, hi = gather(samples)
  if total <= 0 then return nil end
  if #dists == 0 then
    table.sort(vals, function(a, b) return a[1] < b[1] end)
    local rank, acc = p / 100 * total, 0
    for _, vc in ipairs(vals) do
      acc = acc + vc[2]
      if acc >= rank - 1e-9 then return vc[1] end
    end
    return vals[#vals][1]
  end
  local target = p / 100
  lo, hi = narrow(dists, vals, total, target, lo, hi)
  -- 100 halvings at most; once a step leaves (lo, hi) as they were, every later one would too
  -- (it is a function of them alone), so stopping there gives the same answer sooner
  for _ = 1, 100 do
    local mid = (lo + hi) / 2
    local was_lo, was_hi = lo, hi
    if mixture_cdf(dists, vals, total, mid) < target then lo = mid else hi = mid end
    if lo == was_lo and hi == was_hi then break end
  end
  return hi
end

-- The statistic (as parse_stat returns it) of one period's samples, or nil when it has no value.
function M.compute(samples, stat)
  if #samples == 0 then return nil end
  local k = stat.kind
  if k == "p" then return percentile(samples, stat.p) end
  local n, sum, mn, mx = 0, 0, math.huge, -math.huge
  for _, smp in ipairs(samples) do
    n = n + smp.n
    sum = sum + smp.sum
    if smp.min < mn then mn = smp.min end
    if smp.max > mx then mx = smp.max end
  end
  if k == "SampleCount" then return n
  elseif k == "Sum" then return sum
  elseif k == "Average" then return n > 0 and sum / n or nil
  elseif k == "Minimum" then return mn
  else return mx end
end

---------------------------------------------------------------- periods

-- CloudWatch rounds StartTime down to the minute (to the period below a minute).
function M.align_start(start, period)
  if period < 60 then return math.floor(start / period) * period end
  return math.floor(start / 60) * 60
end

function M.valid_period(p)
  return type(p) == "number" and p == math.floor(p) and p > 0 and
    (p % 60 == 0 or p == 1 or p == 5 or p == 10 or p == 20 or p == 30)
end

return M
