-- ecsplay.gate.stats: Mann-Whitney U (gate.mann_whitney) against exact permutation p-values.
local T = require "harness"
local gate = require "ecsplay.gate"

---------------------------------------------------------------- Mann-Whitney U

-- The exact one-sided p-value P(U >= u_observed) over every split of the pooled values
-- (brute force, for tiny samples), with mid-ranks for ties.
local function exact_p(a, b)
  local pool = {}
  for _, v in ipairs(a) do pool[#pool + 1] = v end
  for _, v in ipairs(b) do pool[#pool + 1] = v end
  local n, n1 = #pool, #a
  local function u_of(idx)
    local u = 0
    local inside = {}
    for _, i in ipairs(idx) do inside[i] = true end
    for _, i in ipairs(idx) do
      for j = 1, n do
        if not inside[j] then
          if pool[i] > pool[j] then u = u + 1 elseif pool[i] == pool[j] then u = u + 0.5 end
        end
      end
    end
    return u
  end
  local obs = {}
  for i = 1, n1 do obs[i] = i end
  local u_obs = u_of(obs)
  local total, hits = 0, 0
  local pick = {}
  local function rec(start, k)
    if k > n1 then
      total = total + 1
      if u_of(pick) >= u_obs - 1e-9 then hits = hits + 1 end
      return
    end
    for i = start, n - (n1 - k) do
      pick[k] = i
      rec(i + 1, k + 1)
    end
    pick[k] = nil
  end
  rec(1, 1)
  return hits / total, u_obs
end

T.test("mann_whitney: textbook exact values for fully separated samples", function()
  T.near((gate.mann_whitney({ 4, 5, 6 }, { 1, 2, 3 })), 1 / 20, 1e-9, "3 vs 3")
  T.near((gate.mann_whitney({ 5, 6, 7, 8 }, { 1, 2, 3, 4 })), 1 / 70, 1e-9, "4 vs 4")
  T.near((gate.mann_whitney({ 6, 7, 8, 9, 10 }, { 1, 2, 3, 4, 5 })), 1 / 252, 1e-9, "5 vs 5")
  local p, u = gate.mann_whitney({ 6, 7, 8, 9, 10 }, { 1, 2, 3, 4, 5 })
  T.eq(u, 25.0)
  T.near(p, 1 / 252, 1e-9)
  -- the other direction: the canary is better, nowhere near significant
  T.near((gate.mann_whitney({ 1, 2, 3 }, { 4, 5, 6 })), 1, 1e-9)
end)

T.test("mann_whitney: matches a brute-force permutation test, with and without ties", function()
  local cases = {
    { { 1.1, 2.4, 3.9, 5.0 }, { 0.5, 2.0, 2.2 } },
    { { 3, 4, 2, 6, 2, 5 }, { 9, 7, 5, 10, 6, 8 } },
    { { 7, 3, 9, 4, 8 }, { 1, 3, 2, 5, 3, 4 } },
    { { 0.9, 1.2, 1.0, 1.5 }, { 1.0, 1.1, 0.8, 1.2, 0.7 } },
    { { 2, 2, 2, 3 }, { 1, 2, 2, 2 } },
    { { 12, 15, 11, 19, 14, 18, 16 }, { 10, 13, 9, 12, 8, 11, 14 } },
  }
  for i, c in ipairs(cases) do
    local want, u_want = exact_p(c[1], c[2])
    local got, u = gate.mann_whitney(c[1], c[2])
    T.near(u, u_want, 1e-9, "U of case " .. i)
    T.near(got, want, 1e-9, "p of case " .. i)
  end
end)

T.test("mann_whitney: large samples (normal approximation) behave", function()
  local lo, hi, same_a, same_b = {}, {}, {}, {}
  for i = 1, 40 do
    lo[i], hi[i] = i, i + 100
    same_a[i], same_b[i] = (i * 7) % 40, (i * 11) % 40 -- the same values in another order
  end
  local p = gate.mann_whitney(hi, lo)
  T.ok(p < 1e-9, "separated: " .. p)
  T.near((gate.mann_whitney(same_a, same_b)), 0.5, 0.05, "same distribution")
  -- a textbook normal-approximation value: n1 = n2 = 40, U = 1000 (z ~ 2.06) -> p ~ 0.02
  local a, b = {}, {}
  for i = 1, 40 do b[i] = i * 2 end -- 2,4,...,80
  for i = 1, 40 do a[i] = i * 2 + 25 end -- shifted by 12.5 positions
  local pa, ua = gate.mann_whitney(a, b)
  T.ok(ua > 800 and ua < 1400, "U " .. ua)
  T.ok(pa > 0 and pa < 0.05, "p " .. pa)
  -- degenerate inputs do not divide by zero
  T.eq((gate.mann_whitney({}, { 1, 2 })), 1)
  T.eq((gate.mann_whitney({ 3 }, {})), 1)
  T.near((gate.mann_whitney({ 2, 2 }, { 2, 2 })), 1, 1e-9, "all tied: no evidence")
end)
