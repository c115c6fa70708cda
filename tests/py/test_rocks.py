"""Team libraries as LuaRocks packages (docs/libraries.md), end to end with Debian's luarocks:

- `ecsplay new library teamlib` writes the template; `luarocks make --pack-binary-rock`
  builds and packs the rock from it, with no network;
- the packed .rock installs from the local file into a tree (`--tree`, `--deps-mode=none`);
- a playbook that requires the library runs under --simulate and finds it in the project's
  lua_modules/ (searched upward from the playbook's folder) and, elsewhere, in the tree named
  by ECSPLAY_ROCKS_TREE, with LUA_PATH / LUA_PATH_5_4 / ECSPLAY_PATH unset; without either,
  the require fails (exit 2, ModuleNotFound);
- a library that asks for a newer ecsplay (ecsplay.require_version) stops the playbook
  before anything changes: exit 2 and a message naming both versions;
- the template's own spec passes under `ecsplay test` (its options and two rehearsals);
- `ecsplay new` refuses a bad name, an unknown kind and an existing folder (exit 2).

Run: /usr/bin/python3 tests/py/test_rocks.py   (from the project root, after make)
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import simserve  # noqa: E402
from simserve import ROOT, ECSPLAY  # noqa: E402

LUAROCKS = shutil.which("luarocks")
PLAYBOOK = """\
local teamlib = require "teamlib"
local report = teamlib.canary { service = "api", image = ecsplay.args.image or "api:v2" }
print("deployed " .. report.status .. " from " .. package.searchpath("teamlib", package.path))
"""


def clean_env(home, **extra):
    """An environment with no Lua path variables and no AWS credentials: only what is given."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home, "LANG": "C.UTF-8"}
    env.update(extra)
    return env


def run(cmd, cwd, env, timeout=120):
    return subprocess.run(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=timeout)


@unittest.skipUnless(LUAROCKS, "luarocks is not installed (Debian: apt-get install luarocks)")
class RockRoundTrip(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="ecsplay-rocks-")
        cls.home = os.path.join(cls.tmp, "home")
        os.makedirs(cls.home)
        cls.env = clean_env(cls.home)
        cls.lib = os.path.join(cls.tmp, "teamlib")
        r = run([ECSPLAY, "new", "library", "teamlib"], cls.tmp, cls.env)
        assert r.returncode == 0, "ecsplay new failed: %s%s" % (r.stdout, r.stderr)
        cls.rock = cls.pack(cls.lib, "0.1.0-1")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def pack(cls, folder, version):
        """luarocks make --pack-binary-rock in folder → the path of the .all.rock it packed."""
        r = run([LUAROCKS, "--lua-version=5.4", "make", "--pack-binary-rock", "--deps-mode=none",
                 "teamlib-%s.rockspec" % version], folder, cls.env)
        assert r.returncode == 0, "luarocks make failed: %s%s" % (r.stdout, r.stderr)
        rock = os.path.join(folder, "teamlib-%s.all.rock" % version)
        assert os.path.isfile(rock), "no rock packed: %s" % os.listdir(folder)
        return rock

    def install(self, rock, tree):
        r = run([LUAROCKS, "--lua-version=5.4", "install", "--tree", tree, "--deps-mode=none", rock],
                self.tmp, self.env)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        installed = os.path.join(tree, "share", "lua", "5.4", "teamlib", "init.lua")
        self.assertTrue(os.path.isfile(installed), "the rock did not install the module")
        return installed

    def project(self, name):
        """A project folder with the playbook one level down (deploy/deploy.lua)."""
        root = os.path.join(self.tmp, name)
        os.makedirs(os.path.join(root, "deploy"))
        with open(os.path.join(root, "deploy", "deploy.lua"), "w") as f:
            f.write(PLAYBOOK)
        return root

    def test_template_files(self):
        for rel in ("teamlib-0.1.0-1.rockspec", "teamlib/init.lua", "teamlib_spec.lua", "README.md"):
            self.assertTrue(os.path.isfile(os.path.join(self.lib, rel)), rel)
        with open(os.path.join(self.lib, "teamlib_spec.lua")) as f:
            spec = f.read()
        self.assertIn('describe("teamlib.canary"', spec)
        self.assertIn("assert.equals(", spec)
        # the template lints clean (syntax, globals, its own literal options)
        r = run([ECSPLAY, "lint", "teamlib/init.lua", "teamlib_spec.lua"], self.lib, self.env)
        self.assertEqual((r.returncode, r.stdout), (0, ""), r.stderr)

    def test_template_spec_passes(self):
        if run([ECSPLAY, "help", "test"], self.tmp, self.env).returncode != 0:
            self.skipTest("this ecsplay has no `ecsplay test` command")
        r = run([ECSPLAY, "test", "teamlib_spec.lua"], self.lib, self.env, timeout=240)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("5 passed, 0 failed", r.stdout + r.stderr)

    def test_project_lua_modules(self):
        root = self.project("proj")
        installed = self.install(self.rock, os.path.join(root, "lua_modules"))
        # run from elsewhere, with a relative path: lua_modules/ is found above deploy/
        r = run([ECSPLAY, "--simulate", os.path.relpath(os.path.join(root, "deploy", "deploy.lua"), self.tmp)],
                self.tmp, self.env)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("deployed succeeded from " + os.path.relpath(installed, self.tmp) + "\n", r.stdout)
        # from inside the playbook's folder, with PWD as a shell sets it: the absolute path
        deploy = os.path.join(root, "deploy")
        r = run([ECSPLAY, "--simulate", "deploy.lua"], deploy, clean_env(self.home, PWD=deploy))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("deployed succeeded from " + installed + "\n", r.stdout)
        # a failing canary rolls back through the library
        r = run([ECSPLAY, "--simulate", "deploy.lua", "image=api:flaky"], os.path.join(root, "deploy"), self.env)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("rolled back", r.stderr)

    def test_rocks_tree_variable(self):
        tree = os.path.join(self.tmp, "shared-tree")
        installed = self.install(self.rock, tree)
        root = self.project("plain")  # no lua_modules anywhere above it
        playbook = os.path.join(root, "deploy", "deploy.lua")
        r = run([ECSPLAY, "--simulate", playbook], self.tmp, clean_env(self.home, ECSPLAY_ROCKS_TREE=tree))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("deployed succeeded from " + installed, r.stdout)
        # without the variable the module is not found: bad input, nothing changed
        r = run([ECSPLAY, "--simulate", playbook], self.tmp, self.env)
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("module 'teamlib' not found", r.stderr)
        self.assertIn("[ModuleNotFound]", r.stderr)

    def test_version_mismatch(self):
        # the same library, version 0.2.0, asking for an ecsplay far in the future
        newer = os.path.join(self.tmp, "teamlib-newer")
        shutil.copytree(self.lib, newer, ignore=shutil.ignore_patterns("*.rock"))
        module = os.path.join(newer, "teamlib", "init.lua")
        with open(module) as f:
            text = f.read()
        text, n = re.subn(r'ecsplay\.require_version\("[^"]*"', 'ecsplay.require_version(">= 99.0"', text)
        self.assertEqual(n, 1, "the template has no ecsplay.require_version line")
        with open(module, "w") as f:
            f.write(text)
        with open(os.path.join(newer, "teamlib-0.1.0-1.rockspec")) as f:
            spec = f.read().replace('version = "0.1.0-1"', 'version = "0.2.0-1"')
        with open(os.path.join(newer, "teamlib-0.2.0-1.rockspec"), "w") as f:
            f.write(spec)
        rock = self.pack(newer, "0.2.0-1")
        tree = os.path.join(self.tmp, "newer-tree")
        self.install(rock, tree)
        root = self.project("newer-proj")
        version = run([ECSPLAY, "--version"], self.tmp, self.env).stdout.split()[1]
        r = run([ECSPLAY, "--simulate", os.path.join(root, "deploy", "deploy.lua")], self.tmp,
                clean_env(self.home, ECSPLAY_ROCKS_TREE=tree, ECSPLAY_RUNS_DIR=os.path.join(self.tmp, "runs")))
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("teamlib needs ecsplay >= 99.0; this is ecsplay %s" % version, r.stderr)
        self.assertIn("[EcsplayVersion]", r.stderr)
        self.assertNotIn("deployed", r.stdout)
        self.assertNotIn("Traceback", r.stderr)

    def test_new_refuses(self):
        cases = [
            (["new", "library", "Team-Lib"], "expected a lowercase Lua module name"),
            (["new", "libary", "x"], 'did you mean "library"'),
            (["new", "library", "teamlib"], "already exists"),
            (["new"], "usage: ecsplay new library NAME"),
        ]
        for argv, want in cases:
            r = run([ECSPLAY] + argv, self.tmp, self.env)
            self.assertEqual(r.returncode, 2, "%s: %s" % (argv, r.stderr))
            self.assertIn(want, r.stderr, argv)
        # nothing was written over the existing library
        self.assertTrue(os.path.isfile(os.path.join(self.lib, "teamlib-0.1.0-1.rockspec")))


if __name__ == "__main__":
    os.chdir(ROOT)
    simserve.run_tests()
