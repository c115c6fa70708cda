--[[
ecsplay.util.files: reading files whole, the one way (io only; no C).

  files.read(path)        → the whole file's bytes, or nil, message when it
                            cannot be opened or read
  files.exists(path)      → true when path can be opened for reading (on Linux
                            a folder can: enough to tell that something is there)
  files.size(path)        → the file's size in bytes, or nil
  files.first_line(path)  → the first line (without its newline), or nil

Writing stays with its owners: the journal (fsync, fallbacks) and the live
state file (temporary file + rename) each need their own rules.
]]
local M = {}

function M.read(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local text, rerr = f:read("a")
  f:close()
  if text == nil then return nil, rerr or ("cannot read " .. tostring(path)) end
  return text
end

function M.exists(path)
  local f = io.open(path, "r")
  if f then
    f:close()
    return true
  end
  return false
end

function M.size(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local size = f:seek("end")
  f:close()
  return size
end

function M.first_line(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local line = f:read("l")
  f:close()
  return line
end

return M
