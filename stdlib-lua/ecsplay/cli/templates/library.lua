--[[
The files `ecsplay new library NAME` writes (docs/libraries.md): a team
library as a LuaRocks package. Each entry: the path (relative to the new
folder) and the text; {{name}} is the library's name, {{ecsplay}} the
running ecsplay's version (what the library asks for at least).
Kept as Lua text so `make install` (which installs the *.lua files of the
library) ships the template with the binary.
]]
local M = {}

M.files = {}

M.files[#M.files + 1] = { path = "{{name}}-0.1.0-1.rockspec", text = [=[
-- The rock: `luarocks make` builds and installs it from this folder, `luarocks
-- make --pack-binary-rock` also packs {{name}}-0.1.0-1.all.rock (docs/libraries.md).
rockspec_format = "3.0"
package = "{{name}}"
version = "0.1.0-1"
source = {
  -- where `luarocks install {{name}}` (from a rocks server) fetches the source: your
  -- repository and the tag of this version
  url = "git+https://git.example.com/your-team/{{name}}.git",
  tag = "v0.1.0",
}
description = {
  summary = "{{name}}: the team's ecsplay rollout defaults",
  detailed = [[
    A team library for ecsplay playbooks: rollout.canary with the team's steps,
    bakes and gates. The ecsplay version it needs is checked when it is required
    (ecsplay.require_version in {{name}}/init.lua).
  ]],
  license = "MIT",
}
dependencies = {
  -- ecsplay embeds Lua 5.4; ecsplay itself is not a rock, so its version is
  -- checked at require time instead (ecsplay.require_version)
  "lua >= 5.4, < 5.5",
}
build = {
  type = "builtin",
  modules = {
    ["{{name}}"] = "{{name}}/init.lua",
  },
}
test = {
  type = "command",
  command = "ecsplay test {{name}}_spec.lua",
}
]=] }

M.files[#M.files + 1] = { path = "{{name}}/init.lua", text = [=[
--[[
{{name}}: the team's rollout defaults, as a library (a LuaRocks package).

  local {{name}} = require "{{name}}"
  {{name}}.canary { service = "api", image = "api:v2" }    -- rollout.canary, the team's way
  {{name}}.options { service = "api", image = "api:v2" }   -- the options it passes (no AWS call)

Team rules: steps 10/50/100, 2-minute bakes measured every minute, the
canary's 5xx rate below 1 % and its p99 latency below 500 ms. A service S
has its canary service S-canary and the target groups S-stable and S-canary.
Any rollout.canary option given wins over the team's default.
]]
local ecsplay = require "ecsplay"
-- The ecsplay this library is written for: under an older one a playbook that
-- requires it stops before anything changes, with a clear message (exit 2).
ecsplay.require_version(">= {{ecsplay}}", "{{name}}")
local rollout, gate = require "ecsplay.rollout", require "ecsplay.gate"

local M = { VERSION = "0.1.0" }

M.defaults = { cluster = "production", steps = { 10, 50, 100 }, bake = "2m", interval = "1m" }

-- The team's gates on a canary target group.
function M.gates(target_group)
  return {
    gate.alb_5xx_rate { target_group = target_group, below = 1.0 },
    gate.alb_latency { target_group = target_group, p = 99, below_ms = 500 },
  }
end

-- o: service= (the stable service) and any rollout.canary option → the
-- options {{name}}.canary passes to rollout.canary.
function M.options(o)
  if type(o) ~= "table" or type(o.service) ~= "string" then
    error("{{name}}.options: expected { service = \"api\", image = \"...\", ... }", 2)
  end
  local opts = {}
  for k, v in pairs(M.defaults) do opts[k] = v end
  local svc = o.service
  opts.stable = { service = svc, target_group = svc .. "-stable" }
  opts.canary = { service = svc .. "-canary", target_group = svc .. "-canary" }
  opts.container = svc
  opts.gates = M.gates(opts.canary.target_group)
  for k, v in pairs(o) do
    if k ~= "service" then opts[k] = v end
  end
  return opts
end

function M.canary(o) return rollout.canary(M.options(o)) end

return M
]=] }

M.files[#M.files + 1] = { path = "{{name}}_spec.lua", text = [=[
-- Specs for {{name}}, in the busted style: `ecsplay test {{name}}_spec.lua`
-- (docs/testing.md). Each test that rolls out gets a fresh simulated world.
local testing = require "ecsplay.testing"
local lib = require "{{name}}"

describe("{{name}}.options", function()
  it("fills in the team's defaults", function()
    local o = lib.options { service = "api", image = "api:v2" }
    assert.same({ 10, 50, 100 }, o.steps)
    assert.equals("api-canary", o.canary.service)
    assert.equals("api-stable", o.stable.target_group)
    assert.equals(2, #o.gates)
  end)

  it("lets a playbook override a default", function()
    local o = lib.options { service = "api", image = "api:v2", steps = { 25, 100 } }
    assert.same({ 25, 100 }, o.steps)
  end)

  it("refuses options without a service", function()
    assert.has_error(function() lib.options { image = "api:v2" } end)
  end)
end)

describe("{{name}}.canary", function()
  it("rolls api:v2 out on the simulator", function()
    local world = testing.world()
    local r = world:rollout(function() return lib.canary { service = "api", image = "api:v2" } end)
    assert.equals(0, r.code)
    assert.equals("succeeded", r.report.status)
    assert.same({ ["api-stable"] = 100, ["api-canary"] = 0 }, world:weights())
  end)

  it("rolls a failing canary back", function()
    local world = testing.world()
    local r = world:rollout(function() return lib.canary { service = "api", image = "api:flaky" } end)
    assert.equals(1, r.code)
    assert.equals("rolled_back", r.report.status)
    assert.same({ ["api-stable"] = 100, ["api-canary"] = 0 }, world:weights())
  end)
end)
]=] }

M.files[#M.files + 1] = { path = "README.md", text = [=[
# {{name}}

The team's rollout defaults for ecsplay playbooks, as a LuaRocks
package (made by `ecsplay new library {{name}}`; see ecsplay's docs/libraries.md).

```lua
-- deploy.lua
local {{name}} = require "{{name}}"
{{name}}.canary { service = "api", image = ecsplay.args.image }
```

## Develop

```sh
ecsplay test {{name}}_spec.lua          # the specs, on the simulator
ecsplay lint {{name}}/init.lua          # syntax, globals, options
```

## Use it in a project

```sh
cd my-playbooks                          # (or a project made by `luarocks init`)
luarocks --lua-version=5.4 install --tree lua_modules {{name}}   # from your rocks server
ecsplay --simulate deploy.lua           # ecsplay finds lua_modules/ here or in a folder above
```

Or install it into any tree and name that tree in `ECSPLAY_ROCKS_TREE`.

## Release

Raise `version` in the rockspec (and rename the file to match), tag the repository, then:

```sh
luarocks --lua-version=5.4 make --pack-binary-rock {{name}}-0.1.0-1.rockspec   # {{name}}-0.1.0-1.all.rock
luarocks-admin add {{name}}-0.1.0-1.all.rock --server=...       # or copy it to your rocks server
```

This library needs ecsplay {{ecsplay}} or later (`ecsplay.require_version` in
`{{name}}/init.lua`): under an older ecsplay, a playbook that requires it stops before it
changes anything (exit 2) and says which version it needs.
]=] }

-- The files for a library called name: { { path =, text = }, ... }
function M.render(name, ecsplay_version)
  local out = {}
  for i, f in ipairs(M.files) do
    local function fill(s)
      return (s:gsub("{{(%w+)}}", function(k)
        if k == "name" then return name end
        if k == "ecsplay" then return ecsplay_version end
      end))
    end
    out[i] = { path = fill(f.path), text = fill(f.text) }
  end
  return out
end

return M
