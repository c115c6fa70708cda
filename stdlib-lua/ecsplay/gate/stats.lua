--[[
Statistics the gates need, kept apart from the gates themselves: the
Mann-Whitney U test that gate.baseline uses to compare the canary's
per-minute samples with the stable version's.
]]
local M = {}

-- Exact when the pooled sample is at most this big (the counting below is
-- O(n · n1 · rank sums)); the normal approximation beyond.
local EXACT_MAX = 40

-- Upper tail of the standard normal (Abramowitz-Stegun 7.1.26 via erfc, |error| < 1.5e-7).
local function normal_upper(z)
  local x = z / math.sqrt(2)
  local t = 1 / (1 + 0.3275911 * math.abs(x))
  local erfc = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027
    + t * 1.061405429)))) * math.exp(-x * x)
  if x < 0 then erfc = 2 - erfc end
  return erfc / 2
end

--[[ P(rank sum of n1 values drawn from `ranks2` (doubled mid-ranks, so
     integers) >= r2), counting every split of the pooled values: the exact
     permutation distribution, ties included. ]]
local function exact_upper(ranks2, n1, r2)
  local ways = { [0] = { [0] = 1 } }
  for k = 1, n1 do ways[k] = {} end
  for i, r in ipairs(ranks2) do
    for k = math.min(i, n1), 1, -1 do
      local dst = ways[k]
      for s, c in pairs(ways[k - 1]) do dst[s + r] = (dst[s + r] or 0) + c end
    end
  end
  local total, hits = 0, 0
  for s, c in pairs(ways[n1]) do
    total = total + c
    if s >= r2 then hits = hits + c end
  end
  return hits / total
end

--[[ stats.mann_whitney(a, b) -> p, U: the one-sided p-value that `a` tends to
     be larger than `b` (P(U >= U observed) when they come from the same
     distribution), and U of `a`. Exact (permutation, mid-ranks for ties) for
     up to 40 values together; normal approximation with tie and continuity
     correction beyond. No data, or all values tied: p = 1 (no evidence). ]]
function M.mann_whitney(a, b)
  local all = {}
  for _, v in ipairs(a) do all[#all + 1] = { v = v, g = 1 } end
  for _, v in ipairs(b) do all[#all + 1] = { v = v, g = 2 } end
  table.sort(all, function(x, y) return x.v < y.v end)
  local n1, n2, n = #a, #b, #all
  if n1 == 0 or n2 == 0 then return 1, 0 end
  local ranks2, rank2_a, tie_term = {}, 0, 0
  local i = 1
  while i <= n do
    local j = i
    while j < n and all[j + 1].v == all[i].v do j = j + 1 end
    local t = j - i + 1
    if t > 1 then tie_term = tie_term + (t ^ 3 - t) end
    for k = i, j do
      ranks2[k] = i + j -- twice the mid-rank
      if all[k].g == 1 then rank2_a = rank2_a + i + j end
    end
    i = j + 1
  end
  local u = rank2_a / 2 - n1 * (n1 + 1) / 2
  if n <= EXACT_MAX then return exact_upper(ranks2, n1, rank2_a), u end
  local var = n1 * n2 / 12 * ((n + 1) - tie_term / (n * (n - 1)))
  if var <= 0 then return 1, u end
  return normal_upper((u - n1 * n2 / 2 - 0.5) / math.sqrt(var)), u -- continuity correction
end

return M
