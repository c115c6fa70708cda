--[[
ecsplay.report: a run's report, rebuilt from its run journal, in the format
its file name asks for (docs/cli.md, "Run reports"):

  report.format_of(path)        → "html" | "json" | "xml", or nil and a message
  report.build(journal, live)   → the report (report/model.lua); journal nil:
                                  a run that wrote none (no rollout started)
  report.render(report, format) → text
  report.write(path, report)    → true, or nil and a message (the file is
                                  replaced whole: written aside, then renamed)
  report.check_target(path)     → true, or nil and a message: a name that
                                  chooses a format, in a folder it can write in

  report/model.lua  journal lines → the report (also the .json file as is)
  report/html.lua   the self-contained page;  report/svg.lua  its pictures
  report/junit.lua  JUnit XML for CI test tabs
]]
local json = require "ecsplay.json"
local model = require "ecsplay.report.model"
local html = require "ecsplay.report.html"
local junit = require "ecsplay.report.junit"

local M = {}

local RENDER = {
  html = html.render,
  xml = junit.render,
  json = function(report) return assert(json.encode(report)) .. "\n" end,
}

M.EXTENSIONS = { ".html", ".json", ".xml" }

function M.format_of(path)
  local ext = type(path) == "string" and path:match("%.(%w+)$")
  ext = ext and ext:lower()
  if ext == "htm" then ext = "html" end
  if ext and RENDER[ext] then return ext end
  return nil, string.format("--report %s: the file name must end in .html, .json or .xml (JUnit), "
    .. "which chooses the format", tostring(path))
end

function M.build(journal, live)
  if not journal then return model.empty(live) end
  return model.from_journal(journal, live)
end

function M.render(report, format)
  return RENDER[format or "html"](report)
end

-- io.open's "PATH.tmp: No such file or directory" said of the report's own name.
local function open_error(path, err)
  local why = tostring(err):gsub("^" .. path:gsub("%p", "%%%0") .. "%.tmp: ", "")
  return "cannot write the report " .. path .. ": " .. why
end

function M.check_target(path)
  local format, why = M.format_of(path)
  if not format then return nil, why end
  local tmp = path .. ".tmp"
  local f, err = io.open(tmp, "wb")
  if not f then return nil, open_error(path, err) end
  f:close()
  os.remove(tmp)
  return true
end

function M.write(path, report)
  local format, why = M.format_of(path)
  if not format then return nil, why end
  local text = M.render(report, format)
  local tmp = path .. ".tmp"
  local f, err = io.open(tmp, "wb")
  if not f then return nil, open_error(path, err) end
  local ok, werr = f:write(text)
  f:close()
  if ok then ok, werr = os.rename(tmp, path) end
  if not ok then
    os.remove(tmp)
    return nil, "cannot write the report " .. path .. ": " .. tostring(werr)
  end
  return true
end

return M
