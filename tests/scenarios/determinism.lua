-- Story 8 (tests/py/test_boto3_stories.py): the same scenario and seed must give the same
-- world in process (--simulate) and over HTTP (sim serve + --endpoint-url).
return {
  seed = 1234,
  start = "2026-11-26T10:00:00Z",
  world = "default",
  traffic = { rps = 200 },
}
