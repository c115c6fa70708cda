--[[
LuaRocks trees on `require`'s path, without LUA_PATH (docs/libraries.md):

  1. the project's tree: the nearest `lua_modules/` folder (what `luarocks
     init` makes) in the playbook's folder or any folder above it;
  2. the trees named in ECSPLAY_ROCKS_TREE (a `--tree` of luarocks; several
     separated by `:`).

A tree T gives T/share/lua/5.4/?.lua, T/share/lua/5.4/?/init.lua (Lua
modules) and T/lib/lua/5.4/?.so (C modules).

  rocks.trees(playbook_dir) → { tree, ... }   in search order
  rocks.paths(playbook_dir) → { "T/share/lua/5.4/?.lua", ... }  for package.path;
      also puts the trees' C module folders in front of package.cpath (as it
      was before the first call)
]]
local files = require "ecsplay.util.files"

local M = {}

local LUA = _VERSION:match("%d+%.%d+")
local base_cpath

-- "/a/./b/../c/" → "/a/c"
local function normalize(path)
  local out = {}
  for part in path:gmatch("[^/]+") do
    if part == ".." then
      if #out > 0 then out[#out] = nil end
    elseif part ~= "." then
      out[#out + 1] = part
    end
  end
  return "/" .. table.concat(out, "/")
end

-- The playbook's folder as an absolute path, when it can be told (PWD can be
-- stale: it is used only when the folder is really there); else nil.
local function absolute(dir)
  if dir:sub(1, 1) == "/" then return normalize(dir) end
  local cwd = os.getenv("PWD")
  if cwd and cwd:sub(1, 1) == "/" and files.exists(cwd .. "/" .. dir) then return normalize(cwd .. "/" .. dir) end
end

-- The nearest lua_modules/ at or above dir, or nil.
local function project_tree(dir)
  local abs = absolute(dir or ".")
  if abs then
    while true do
      local tree = (abs == "/" and "" or abs) .. "/lua_modules"
      if files.exists(tree) then return tree end
      if abs == "/" then return nil end
      abs = abs:match("^(.*)/[^/]*$")
      if abs == "" then abs = "/" end
    end
  end
  -- no absolute path: climb the relative one ("a/b" → "a" → "." → ".." → "../.."),
  -- as far as a path can usefully go
  local rel = dir or "."
  for _ = 1, 40 do
    if files.exists(rel .. "/lua_modules") then return rel .. "/lua_modules" end
    if rel == "." or rel:match("^%.%.[/.]*$") then
      rel = rel == "." and ".." or (rel .. "/..")
    else
      rel = rel:match("^(.*)/[^/]*$") or "."
    end
  end
end

function M.trees(playbook_dir)
  local out = {}
  local project = project_tree(playbook_dir)
  if project then out[#out + 1] = project end
  local named = os.getenv("ECSPLAY_ROCKS_TREE")
  for tree in (named or ""):gmatch("[^:]+") do out[#out + 1] = (tree:gsub("/+$", "")) end
  return out
end

function M.paths(playbook_dir)
  local lua, c = {}, {}
  for _, tree in ipairs(M.trees(playbook_dir)) do
    lua[#lua + 1] = tree .. "/share/lua/" .. LUA .. "/?.lua"
    lua[#lua + 1] = tree .. "/share/lua/" .. LUA .. "/?/init.lua"
    c[#c + 1] = tree .. "/lib/lua/" .. LUA .. "/?.so"
  end
  base_cpath = base_cpath or package.cpath
  c[#c + 1] = base_cpath
  package.cpath = table.concat(c, ";")
  return lua
end

return M
