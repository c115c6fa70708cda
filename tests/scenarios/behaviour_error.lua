-- A scenario whose behaviour function fails once the canary gets traffic
-- (tests/lua/test_gate_windows.lua): the run must fail naming this file and the
-- line below, never pass a 5xx gate on the error counts the failure left at zero.
return {
  metrics = { delay = "0s" },
  images = {
    ["api:v2"] = {
      error_rate = function(ctx)
        if (ctx.weight or 0) > 0 then return ctx.no_such_field.rate end -- fails here (line 9)
        return 0.001
      end,
    },
  },
}
