-- lint fixture: ecsplay.params declarations and ecsplay.sleep durations
local a = ecsplay.params {
  bake = { type = "duration", default = "5x" },
  image = { type = "strin" },
  count = { type = "integer", default = 2, required = true },
  ok = { type = "string", default = "fine", help = "no problem here" },
}
ecsplay.sleep("10 mins")
ecsplay.sleep(a.bake)
ecsplay.sleep("90s")
