-- ecsplay.params (issue 11, item 6): a playbook's declared arguments, checked and converted in
-- process; the command line's exit codes and --help are in test_help_text.lua.
local T = require "harness"
local errors = require "ecsplay.errors"
local context = require "ecsplay.context"
local ecsplay = require "ecsplay"

local SPEC = {
  image = { type = "string", required = true, help = "the image to roll out" },
  bake = { type = "duration", default = "5m", help = "how long each step bakes" },
  replicas = { type = "integer", default = 2 },
  ratio = { type = "number" },
  metrics = { type = "boolean", default = false },
  mode = { type = "string", default = "canary", one_of = { "canary", "linear" } },
}

-- ecsplay.params(SPEC) with `args` as the key=value arguments → values | raises
local function params(args, spec)
  local saved = ecsplay.args
  ecsplay.args = args
  local ok, res = pcall(ecsplay.params, spec or SPEC)
  ecsplay.args = saved
  if not ok then error(res, 0) end
  return res
end

-- the bad input params raises for args, as text (it must be bad input, field set)
local function refused(args, field)
  local ok, err = pcall(params, args)
  T.ok(not ok, "expected a refusal")
  T.ok(errors.is(err, "bad_input"), "bad input: " .. errors.describe(err))
  T.eq(err.field, field, "the error names the argument")
  return errors.describe(err)
end

T.test("values are converted and defaults filled in", function()
  local a = params { image = "api:v3", ratio = "0.5", metrics = "on", replicas = "7", bake = "1h30m" }
  T.eq({ a.image, a.bake, a.replicas, a.ratio, a.metrics, a.mode }, { "api:v3", 5400, 7, 0.5, true, "canary" })
  T.eq(math.type(a.replicas), "integer")
  a = params { image = "x" }
  T.eq({ a.bake, a.replicas, a.metrics, a.ratio }, { 300, 2, false, nil })
  for text, want in pairs { ["true"] = true, yes = true, ON = true, ["1"] = true,
    ["false"] = false, no = false, off = false, ["0"] = false } do
    T.eq(params({ image = "x", metrics = text }).metrics, want, text)
  end
end)

T.test("values already of the type pass (a Lua caller's table)", function()
  local a = params { image = "x", bake = 90, replicas = 3, metrics = true }
  T.eq({ a.bake, a.replicas, a.metrics }, { 90, 3, true })
end)

T.test("an unknown argument is refused with a did-you-mean, or the list", function()
  T.eq(refused({ image = "x", imgae = "y" }, "imgae"), 'unknown argument "imgae"; did you mean "image"? '
    .. "(--help after the playbook lists its parameters)")
  T.ok(refused({ image = "x", zzzzzzzz = "1" }, "zzzzzzzz"):find(
    "; expected one of bake, image, metrics, mode, ratio, replicas", 1, true))
end)

T.test("a missing required argument is named, with its help", function()
  T.eq(refused({}, "image"), "missing required argument image= (the image to roll out)")
end)

T.test("a bad value says what was expected and shows the value", function()
  T.eq(refused({ image = "x", replicas = "4.5" }, "replicas"),
    'argument replicas: expected an integer, got string "4.5"')
  T.eq(refused({ image = "x", ratio = "lots" }, "ratio"), 'argument ratio: expected a number, got string "lots"')
  T.eq(refused({ image = "x", metrics = "4" }, "metrics"),
    'argument metrics: expected a boolean (true/false, yes/no, on/off, 1/0), got string "4"')
  T.eq(refused({ image = "x", bake = "soon" }, "bake"),
    'argument bake: expected a duration like "90s", "5m" or "1h30m", got string "soon"')
  T.eq(refused({ image = "x", mode = "canari" }, "mode"),
    'argument mode: expected one of "canary", "linear", got string "canari"; did you mean "canary"?')
end)

T.test("an empty declaration takes no arguments", function()
  T.eq(next(params({}, {})), nil)
  local ok, err = pcall(params, { anything = "goes" }, {})
  T.ok(not ok and errors.is(err, "bad_input"))
  T.eq(errors.describe(err), 'unknown argument "anything"; this playbook takes no arguments')
end)

T.test("reading an undeclared name from the values is the playbook's typo", function()
  local a = params { image = "x" }
  T.raises(function() return a.imgae end, 'ecsplay.params: "imgae" is not a declared parameter; did you mean "image"%?')
  T.eq(a.ratio, nil, "declared, not given, no default")
end)

T.test("mistakes in the declaration are Lua errors that say what is wrong", function()
  T.raises(function() params({}, { x = { type = "strng" } }) end, 'unknown type string "strng"; did you mean "string"%?')
  T.raises(function() params({}, { x = { type = "string", hepl = "?" } }) end, 'unknown field "hepl"; did you mean "help"%?')
  T.raises(function() params({}, { x = { type = "integer", default = "two" } }) end,
    'parameter x: bad default: argument x: expected an integer, got string "two"')
  T.raises(function() params({}, { x = { type = "string", required = true, default = "a" } }) end,
    "a required parameter has no default")
  T.raises(function() params({}, { x = "string" }) end, "parameter x: expected a table")
  T.raises(function() params({}, "image") end, "expected a table of parameters")
end)

T.test("under --help the declaration is recorded and raised as the help signal", function()
  local signal = {}
  context.params_help = signal
  local ok, err = pcall(params, { imgae = "not checked" })
  context.params_help = nil
  T.ok(not ok and err == signal, "raised the signal")
  T.eq(signal.declared, SPEC)
end)

T.test("the --help text lists name, type, default and help", function()
  local run = require "ecsplay.cli.run"
  local text = run.help_text("playbooks/canary.lua", {
    image = { type = "string", required = true, help = "the image" },
    bake = { type = "duration", default = 300, help = "each step's bake" },
    mode = { type = "string", default = "canary", one_of = { "canary", "linear" } },
  })
  T.ok(text:find("^Canary rollout of api"), text)
  T.ok(text:find("usage: ecsplay [options] playbooks/canary.lua [key=value ...]", 1, true), text)
  T.ok(text:find("\n  name   type      default     help\n"
    .. "  bake   duration  5m          each step's bake\n"
    .. "  image  string    (required)  the image\n"
    .. "  mode   string    canary      (one of: canary, linear)\n", 1, true), text)
  T.ok(run.help_text("playbooks/canary.lua", nil):find("declares no parameters", 1, true))
end)
