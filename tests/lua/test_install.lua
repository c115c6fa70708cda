-- The host finds its Lua library wherever it is: in the build tree, through a symlink, in an
-- installed tree (`make install PREFIX=...`) run from another folder, and inside a program
-- that embeds the installed libecsplay.so found through pkg-config.
local T = require "harness"
local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."

local function trim(s) return (s:gsub("%s+$", "")) end
local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local ROOT = trim(T.sh("cd " .. q(here .. "/../..") .. " && pwd -P"))
-- the binary under test: ECSPLAY_BIN (the sanitizer build sets it), else the build tree's
local BIN = os.getenv("ECSPLAY_BIN") or (ROOT .. "/ecsplay")
if BIN:sub(1, 1) ~= "/" then BIN = ROOT .. "/" .. BIN end
-- the folder as the host sees it (/proc/self/exe: no symlinks, no "./")
local BIN_DIR = trim(T.sh("cd " .. q(BIN:match("^(.*)/[^/]*$")) .. " && pwd -P"))
BIN = BIN_DIR .. "/" .. BIN:match("[^/]*$")
local TMP = T.tmpdir()
local PREFIX = TMP .. "/prefix"
local ELSEWHERE = TMP .. "/elsewhere"
os.execute("mkdir -p " .. q(ELSEWHERE))
local VERSION = io.open(ROOT .. "/include/ecsplay.h"):read("a"):match('#define ECSPLAY_VERSION "([^"]+)"')

-- Runs a shell command from ELSEWHERE with a small clean environment; → output, rc.
local function sh(cmd, env)
  local parts = { "cd", q(ELSEWHERE), "&&", "env", "-i", q("PATH=" .. os.getenv("PATH")),
    q("HOME=" .. TMP), "AWS_EC2_METADATA_DISABLED=true" }
  for k, v in pairs(env or {}) do parts[#parts + 1] = q(k .. "=" .. v) end
  return T.sh(table.concat(parts, " ") .. " " .. cmd)
end

local CHUNK = "print(package.searchpath('ecsplay.cli.runner', package.path)) "
  .. "print(ecsplay.simulated, #require('ecsplay.ecs').list_clusters{}.clusterArns > 0)"

T.test("build tree: ./ecsplay finds stdlib-lua beside itself from any folder and through a symlink", function()
  local out, rc = sh(q(BIN) .. " --simulate -e " .. q(CHUNK))
  T.eq(rc, 0, out)
  T.eq(out, BIN_DIR .. "/stdlib-lua/ecsplay/cli/runner.lua\ntrue\ttrue\n")
  os.execute("mkdir -p " .. q(TMP .. "/links") .. " && ln -sf " .. q(BIN) .. " " .. q(TMP .. "/links/ecsplay"))
  out, rc = sh(q(TMP .. "/links/ecsplay") .. " --simulate -e " .. q(CHUNK))
  T.eq(rc, 0, out)
  T.eq(out, BIN_DIR .. "/stdlib-lua/ecsplay/cli/runner.lua\ntrue\ttrue\n", "the symlink's target folder counts")
  -- ECSPLAY_STDLIB overrides; a wrong one is a clear error, exit 2
  out, rc = sh(q(BIN) .. " -e " .. q("print(1)"), { ECSPLAY_STDLIB = TMP .. "/nowhere" })
  T.eq(rc, 2, out)
  T.ok(out:find("cannot find the Lua standard library (looked in " .. TMP .. "/nowhere)", 1, true), out)
  T.ok(out:find("ECSPLAY_STDLIB", 1, true), out)
end)

-- The sanitizer run (ECSPLAY_BIN set) tests its own binary; `make install` would build and
-- install the normal one, so the installed-tree tests belong to the plain `make check`.
if BIN ~= ROOT .. "/ecsplay" then
  print("note: ECSPLAY_BIN is set; `make install` tests run in the plain make check only")
else

T.test("make install PREFIX=...: bin, lib, header, pkg-config file, the whole stdlib", function()
  local log = TMP .. "/install.log"
  local out, rc = T.sh("cd " .. q(ROOT) .. " && (env -u MAKEFLAGS -u MAKELEVEL -u MFLAGS make --no-print-directory"
    .. " install PREFIX=" .. q(PREFIX) .. " >" .. q(log) .. " 2>&1; rc=$?; tail -n 20 " .. q(log) .. "; exit $rc)")
  T.eq(rc, 0, out)
  for _, f in ipairs { "/bin/ecsplay", "/lib/libecsplay.so", "/lib/libecsplay.a", "/include/ecsplay.h",
    "/lib/pkgconfig/ecsplay.pc", "/share/ecsplay/lua/ecsplay/init.lua", "/share/ecsplay/lua/ecsplay/cli/runner.lua" } do
    T.ok(io.open(PREFIX .. f, "r"), "installed " .. f)
  end
  -- every Lua file of the stdlib, and nothing else, went to share/ecsplay/lua
  local src = T.sh("cd " .. q(ROOT .. "/stdlib-lua") .. " && find . -name '*.lua' | sort")
  local dst = T.sh("cd " .. q(PREFIX .. "/share/ecsplay/lua") .. " && find . -type f | sort")
  T.eq(dst, src, "installed stdlib files")
  T.ok(select(2, src:gsub("\n", "")) > 20, "stdlib listing: " .. src)
end)

T.test("the installed ecsplay runs from another folder, stdlib from PREFIX/share", function()
  local bin = q(PREFIX .. "/bin/ecsplay")
  local out, rc = sh(bin .. " --version")
  T.eq(rc, 0, out)
  T.ok(out:find("^ecsplay " .. VERSION:gsub("%p", "%%%0") .. " %(Lua 5%.4"), out)
  out, rc = sh(bin .. " --simulate -e " .. q(CHUNK))
  T.eq(rc, 0, out)
  T.eq(out, PREFIX .. "/bin/../share/ecsplay/lua/ecsplay/cli/runner.lua\ntrue\ttrue\n")
  -- a playbook file with a team module beside it, and arguments, through the installed binary
  os.execute("mkdir -p " .. q(TMP .. "/pb"))
  local f = assert(io.open(TMP .. "/pb/team.lua", "w"))
  f:write("return { greet = function(who) return 'hello ' .. who end }\n")
  f:close()
  f = assert(io.open(TMP .. "/pb/play.lua", "w"))
  f:write("print(require('team').greet(ecsplay.args.who))\n")
  f:close()
  out, rc = sh(bin .. " --simulate " .. q(TMP .. "/pb/play.lua") .. " who=installed")
  T.eq(rc, 0, out)
  T.eq(out, "hello installed\n")
  -- bad input still exits 2 from the installed tree
  out, rc = sh(bin .. " -e " .. q("local = 1"))
  T.eq(rc, 2, out)
end)

local EMBED_C = [[
#include <stdio.h>
#include <string.h>
#include <ecsplay.h>

static int lines;
static void sink(void *ud, const char *level, const char *line) {
  (void)ud;
  lines++;
  printf("log %s %s\n", level, strstr(line, "] ") ? strstr(line, "] ") + 2 : line);
}

int main(void) {
  ecsplay_runtime *rt = ecsplay_new();
  int code;
  if (!rt) return 99;
  ecsplay_set(rt, "simulate", "");
  ecsplay_set_log(rt, sink, NULL);
  ecsplay_set_arg(rt, "who", "embedder");
  code = ecsplay_run_string(rt,
    "local ecs = require 'ecsplay.ecs'\n"
    "ecsplay.log.info('hello ' .. ecsplay.args.who .. ', clusters: '\n"
    "  .. #ecs.list_clusters{}.clusterArns)\n"
    "print(package.searchpath('ecsplay.cli.runner', package.path))", "=embed");
  printf("first: %d [%s]\n", code, ecsplay_error(rt));
  code = ecsplay_run_string(rt, "local x = 1\nerror('embedded failure')", "=embed");
  printf("second: %d %s\n", code, strstr(ecsplay_error(rt), "embed:2: embedded failure") ? "named" : ecsplay_error(rt));
  printf("lines: %d\n", lines);
  ecsplay_free(rt);
  return 0;
}
]]

T.test("a program embedding the installed library builds with pkg-config and finds the stdlib", function()
  local dir = TMP .. "/embedder"
  os.execute("mkdir -p " .. q(dir))
  local f = assert(io.open(dir .. "/embed.c", "w"))
  f:write(EMBED_C)
  f:close()
  local pc = { PKG_CONFIG_PATH = PREFIX .. "/lib/pkgconfig" }
  local out, rc = sh("pkg-config --modversion ecsplay", pc)
  T.eq(rc, 0, out)
  T.eq(trim(out), VERSION)
  out, rc = sh("pkg-config --cflags --libs ecsplay", pc)
  T.eq(rc, 0, out)
  T.ok(out:find("-I" .. PREFIX .. "/include", 1, true) and out:find("-lecsplay", 1, true), out)
  -- cc -o embed embed.c $(pkg-config --cflags --libs ecsplay), with an rpath to the prefix
  out, rc = sh("sh -c " .. q("cc -std=c11 -Wall -Wextra -Werror -o " .. q(dir .. "/embed") .. " " .. q(dir .. "/embed.c")
    .. " $(pkg-config --cflags --libs ecsplay) -Wl,-rpath," .. q(PREFIX .. "/lib")), pc)
  T.eq(rc, 0, "compile: " .. out)
  T.ok(T.sh("ldd " .. q(dir .. "/embed")):find(PREFIX .. "/lib/libecsplay.so", 1, true), "linked to the installed .so")
  -- run from yet another folder, no ECSPLAY_STDLIB: the library finds PREFIX/share beside itself
  out, rc = sh(q(dir .. "/embed"))
  T.eq(rc, 0, out)
  T.eq(out, table.concat({
    "log info hello embedder, clusters: 1",
    PREFIX .. "/lib/../share/ecsplay/lua/ecsplay/cli/runner.lua",
    "first: 0 []",
    "second: 1 named",
    "lines: 1", "" }, "\n"))
end)

T.test("make uninstall PREFIX=... removes what install put there", function()
  local out, rc = T.sh("cd " .. q(ROOT) .. " && env -u MAKEFLAGS -u MAKELEVEL -u MFLAGS make --no-print-directory uninstall PREFIX="
    .. q(PREFIX))
  T.eq(rc, 0, out)
  T.eq(T.sh("find " .. q(PREFIX) .. " -type f"), "", "no files left")
end)

end

T.test("cleanup", function()
  os.execute("rm -rf " .. q(TMP))
end)
