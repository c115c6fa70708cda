-- The default world with its clock years behind any machine's (tests/lua/test_ratelimit.lua):
-- a client of `sim serve` starts on the machine's clock and, from its first answer, follows
-- this one, so its clock jumps back by years in the middle of its first calls.
return {
  start = "2020-01-01T00:00:00Z",
}
