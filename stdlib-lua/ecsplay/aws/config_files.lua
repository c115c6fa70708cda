-- The AWS shared `config` and `credentials` files (INI, as botocore reads them):
--   [default] / [profile NAME] in config, [NAME] in credentials; `key = value` (or `key: value`);
--   keys are case-insensitive (lower-cased); full-line comments start with # or ;;
--   an indented line after `key =` (empty value) is a nested sub-key (e.g. `s3 =`), after a
--   key with a value it continues that value.
-- Errors name the file and line. Values are never echoed in errors (they may be secrets).
-- Where each key was read is kept beside the parsed tables (M.where), so that the settings
-- a profile gets wrong later (a loop, an unsupported key, a bad value) can name their line.
local M = {}

-- section table → { file = path, header = line, keys = { [key] = line } }; weak, so the
-- parsed tables stay plain tables of strings.
local LINES = setmetatable({}, { __mode = "k" })

local function trim(s) return (s:gsub("^%s+", ""):gsub("%s+$", "")) end

-- parse(text, filename) → sections { [section name] = { key = value | {sub = value} } }
-- or nil, "FILE line N: problem".
function M.parse(text, filename)
  filename = filename or "(config)"
  local sections, order = {}, {}
  local cur, last_key, nested = nil, nil, nil
  local n = 0
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    line = line:gsub("\r$", "")
    if n == 1 then line = line:gsub("^\239\187\191", "") end  -- UTF-8 byte order mark
    local indented = line:match("^[ \t]") ~= nil
    local body = trim(line)
    if body == "" or body:match("^[#;]") then
      -- blank or comment
    elseif not indented and body:sub(1, 1) == "[" then
      local name = body:match("^%[(.*)%]$")
      if not name then
        return nil, string.format("%s line %d: malformed section header: expected [name]", filename, n)
      end
      name = trim(name):gsub("%s+", " ")
      if name == "" then
        return nil, string.format("%s line %d: empty section name []", filename, n)
      end
      cur = sections[name]
      if not cur then
        cur = {}
        sections[name] = cur
        order[#order + 1] = name
        LINES[cur] = { file = filename, header = n, keys = {} }
      end
      last_key, nested = nil, nil
    elseif indented and last_key then
      local k, v = body:match("^([^=:]-)%s*[=:]%s*(.*)$")
      if nested and k and k ~= "" then
        nested[trim(k):lower()] = v
      elseif type(cur[last_key]) == "string" then
        cur[last_key] = cur[last_key] .. "\n" .. body
      else
        return nil, string.format("%s line %d: expected `key = value` under `%s`", filename, n,
          last_key)
      end
    else
      local k, v = body:match("^([^=:]-)%s*[=:]%s*(.*)$")
      if not k or trim(k) == "" then
        return nil, string.format("%s line %d: expected `key = value` or `[section]`", filename, n)
      end
      if not cur then
        return nil, string.format("%s line %d: `%s` appears before any [section]", filename, n,
          trim(k))
      end
      k = trim(k):lower()
      LINES[cur].keys[k] = n
      if v == "" then
        nested = {}
        cur[k] = nested
      else
        nested = nil
        cur[k] = v
      end
      last_key = k
    end
  end
  return sections, nil, order
end

-- read(path) → sections, or nil, message, why ("missing" | "unreadable" | "malformed").
function M.read(path)
  local f, err, errno = io.open(path, "rb")
  if not f then
    if errno == 2 then return nil, string.format("%s: not found", path), "missing" end
    return nil, string.format("cannot read %s: %s", path, tostring(err)), "unreadable"
  end
  local text, rerr = f:read("a")
  f:close()
  if not text then
    return nil, string.format("cannot read %s: %s", path, tostring(rerr)), "unreadable"
  end
  local sections, perr = M.parse(text, path)
  if not sections then return nil, perr, "malformed" end
  return sections
end

-- Where key `key` of a parsed section was read: { file = path, line = n } (the section's
-- header line when the key is not there), or nil for a table parse() did not make.
function M.where(section, key)
  local l = LINES[section]
  if not l then return nil end
  return { file = l.file, line = key and l.keys[key] or l.header }
end

-- Expand a leading ~ with HOME.
function M.expand(path, home)
  if path and path:sub(1, 1) == "~" and home then return home .. path:sub(2) end
  return path
end

-- The settings of one profile: config file section ([default] or [profile NAME]) merged
-- with the credentials file's [NAME] (the credentials file wins, as in botocore).
-- → table, found (boolean), origin ({ [key] = { file =, line = } }, and origin[1] for the
-- profile's own section header).
function M.profile(config, creds, name)
  local out, found, origin = {}, false, {}
  local sec = config and (config["profile " .. name] or (name == "default" and config.default))
  local csec = creds and creds[name]
  for _, s in ipairs { sec or false, csec or false } do
    if s then
      found = true
      origin[1] = origin[1] or M.where(s)
      for k, v in pairs(s) do
        out[k] = v
        origin[k] = M.where(s, k)
      end
    end
  end
  return out, found, origin
end

-- Names of every profile in the two files (sorted), for "did you mean" and error messages.
function M.profile_names(config, creds)
  local seen, names = {}, {}
  local function add(n)
    if n and not seen[n] then seen[n] = true names[#names + 1] = n end
  end
  for k in pairs(config or {}) do
    if k == "default" then add(k) else add(k:match("^profile%s+(.+)$")) end
  end
  for k in pairs(creds or {}) do add(k) end
  table.sort(names)
  return names
end

return M
