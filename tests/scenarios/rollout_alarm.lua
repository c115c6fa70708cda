-- Rollout tests: the default world, with api-5xx-high going off 3 minutes in whatever the
-- metrics say (an alarm as an outside signal).
return {
  seed = 7,
  start = "2026-11-26T10:00:00Z",
  world = "default",
  alarms = { ["api-5xx-high"] = { state = "OK", ["then"] = { at = "3m", state = "ALARM" } } },
}
