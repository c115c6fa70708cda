-- The built-in default world with a fixed seed and start, for the wire-format stories (tests/py).
return {
  seed = 42,
  start = "2026-11-26T10:00:00Z",
  world = "default",
}
