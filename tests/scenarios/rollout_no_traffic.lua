-- Rollout tests: the default world with no requests at all, so every ALB metric gate is
-- inconclusive and a rollout must roll back rather than promote on no data.
return {
  seed = 7,
  start = "2026-11-26T10:00:00Z",
  world = "default",
  traffic = { rps = 0 },
}
