--[[
How `ecsplay test` shows its results (docs/testing.md#output-and-exit-codes):
  output.plain(write)  one line per test, failures with file:line and what was
                       expected, then "N passed, M failed[, K skipped]"
  output.tap(write)    TAP version 13, the plan last
  output.json(write)   one JSON object per test ({"event":"test", name, file, line,
                       status, message}), then {"event":"summary", passed, failed, skipped}
  output.junit(results) → the JUnit XML document (one testsuite per spec file)
plain and tap return a reporter { result = function(r), finish = function(counts) }
fed by testing/suite.lua as each result ends.
]]
local xmlwrite = require "ecsplay.aws.protocol.xmlwrite"
local json = require "ecsplay.json"

local M = {}

-- passed, failed, skipped of a list of results (load errors count as failed).
function M.counts(results)
  local c = { passed = 0, failed = 0, skipped = 0 }
  for _, r in ipairs(results) do
    if r.status == "success" then
      c.passed = c.passed + 1
    elseif r.status == "pending" then
      c.skipped = c.skipped + 1
    else
      c.failed = c.failed + 1
    end
  end
  return c
end

function M.closing_line(c)
  return string.format("%d passed, %d failed", c.passed, c.failed)
    .. (c.skipped > 0 and string.format(", %d skipped", c.skipped) or "")
end

local function indent(text, pad)
  return pad .. tostring(text):gsub("\n", "\n" .. pad)
end

function M.plain(write)
  return {
    result = function(r)
      if r.status == "success" then
        write("ok   " .. r.name .. "\n")
      elseif r.status == "pending" then
        write("PEND " .. r.name .. (r.message and (" (" .. r.message .. ")") or "") .. "\n")
      else
        write((r.load_error and "LOAD " or "FAIL ") .. r.name .. "\n" .. indent(r.message or r.status, "     ") .. "\n")
      end
    end,
    finish = function(c) write(M.closing_line(c) .. "\n") end,
  }
end

function M.json(write)
  return {
    result = function(r)
      write(json.encode({ event = "test", name = r.name, file = r.file, line = r.line, status = r.status,
        message = r.message, load_error = r.load_error }) .. "\n")
    end,
    finish = function(c)
      write(json.encode({ event = "summary", passed = c.passed, failed = c.failed, skipped = c.skipped,
        message = M.closing_line(c) }) .. "\n")
    end,
  }
end

function M.tap(write)
  local n = 0
  write("TAP version 13\n")
  return {
    result = function(r)
      n = n + 1
      local name = r.name:gsub("#", "\\#")
      if r.status == "success" then
        write(string.format("ok %d - %s\n", n, name))
      elseif r.status == "pending" then
        write(string.format("ok %d - %s # SKIP %s\n", n, name, (r.message or "pending"):gsub("\n", " ")))
      else
        write(string.format("not ok %d - %s\n", n, name))
        write("  ---\n  message: |\n" .. indent(r.message or r.status, "    ") .. "\n")
        write(string.format("  severity: %s\n", r.load_error and "load_error" or r.status))
        if r.file then write("  file: " .. r.file .. "\n") end
        if r.line then write("  line: " .. r.line .. "\n") end
        write("  ...\n")
      end
    end,
    finish = function(c)
      write(string.format("1..%d\n# %s\n", n, M.closing_line(c)))
    end,
  }
end

-- XML 1.0 allows no control characters but tab, newline and carriage return.
local function escape(v)
  return xmlwrite.escape((tostring(v):gsub("[%z\1-\8\11\12\14-\31]", "?")))
end

-- Attributes in a fixed order (name first), values escaped; nil values left out.
local ORDER = { "name", "classname", "file", "line", "tests", "failures", "errors", "skipped", "message", "type" }
local function attrs(a)
  local out = {}
  for _, k in ipairs(ORDER) do
    if a[k] ~= nil then out[#out + 1] = string.format(' %s="%s"', k, escape(a[k])) end
  end
  return table.concat(out)
end

local function totals(list)
  local t = { tests = #list, failures = 0, errors = 0, skipped = 0 }
  for _, r in ipairs(list) do
    if r.status == "failure" then
      t.failures = t.failures + 1
    elseif r.status == "pending" then
      t.skipped = t.skipped + 1
    elseif r.status ~= "success" then
      t.errors = t.errors + 1
    end
  end
  return t
end

local function testcase(out, r)
  local open = "    <testcase" .. attrs { name = r.name, classname = r.file or "?", file = r.file,
    line = r.line } .. ">"
  if r.status == "success" then
    out[#out + 1] = open:sub(1, -2) .. "/>"
  elseif r.status == "pending" then
    out[#out + 1] = open .. "<skipped" .. attrs { message = r.message } .. "/></testcase>"
  else
    local tag = r.status == "failure" and "failure" or "error"
    local text = r.message or r.status
    out[#out + 1] = open .. "<" .. tag .. attrs { message = text:match("^[^\n]*"),
      type = r.load_error and "load_error" or (tag == "failure" and "assertion" or "error") } .. ">"
      .. escape(text) .. "</" .. tag .. "></testcase>"
  end
end

-- The JUnit XML document: one <testsuite> per spec file, in the order they ran.
function M.junit(results)
  local files, by_file = {}, {}
  for _, r in ipairs(results) do
    local f = r.file or "?"
    if not by_file[f] then by_file[f], files[#files + 1] = {}, f end
    table.insert(by_file[f], r)
  end
  local all = totals(results)
  local out = { '<?xml version="1.0" encoding="UTF-8"?>', "<testsuites" .. attrs { name = "ecsplay test",
    tests = all.tests, failures = all.failures, errors = all.errors, skipped = all.skipped } .. ">" }
  for _, f in ipairs(files) do
    local t = totals(by_file[f])
    out[#out + 1] = "  <testsuite" .. attrs { name = f, tests = t.tests, failures = t.failures,
      errors = t.errors, skipped = t.skipped } .. ">"
    for _, r in ipairs(by_file[f]) do testcase(out, r) end
    out[#out + 1] = "  </testsuite>"
  end
  out[#out + 1] = "</testsuites>"
  return table.concat(out, "\n") .. "\n"
end

return M
