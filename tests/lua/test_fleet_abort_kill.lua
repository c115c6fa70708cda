-- A fleet killed (SIGKILL) while its abort puts back a promoted member (playbooks/fleet.lua, run
-- by a real client against `ecsplay sim serve --lockstep` serving playbooks/scenarios/fleet.lua,
-- killed the moment svc2's journal has its "revert" line on disk: tests/scenarios/kill_at_line.lua).
-- The records must tell the truth: svc2's journal no longer reads as a plain success (`ecsplay
-- status` shows it being put back, `ecsplay rollback` of it finishes the put-back); `ecsplay
-- status` and `ecsplay rollback` of the failed member's journal name every member the run left
-- promoted, with the command that puts it back; and `ecsplay resume` ends with a summary true to
-- the journals (the member that failed is the one blamed; those put back are rolled_back) and
-- with the playbook's file:line in its last line. (Before: svc2's journal ended "succeeded",
-- status said succeeded, rollback said "nothing to roll back" naming no one, and the resumed
-- summary blamed svc1.)
local T = require "harness"
local J = dofile "tests/scenarios/journal_lib.lua"
local L = J.L
local json = require "ecsplay.json"
local journal_file = require "ecsplay.rollout.journal_file"

local SCENARIO = "playbooks/scenarios/fleet.lua"
local PLAYBOOK = { "tests/scenarios/kill_at_line.lua", "playbook=playbooks/fleet.lua", "n=3", "bad=3", "limit=2",
  "bake=1m" }
local KILL = { ECSPLAY_TEST_KILL_AT = "svc2|revert" }

-- The journals by rollout name: { svc1 = { path =, state = journal_file.read(path) }, ... }.
local function journals(dir)
  local out = {}
  for _, path in ipairs(J.journals(dir)) do
    local state = journal_file.read(path)
    out[state.start.name] = { path = path, state = state }
  end
  return out
end

-- The task definition service `name` runs, as the server reads it.
local function td(srv, name)
  for _, svc in ipairs(L.world(srv).services) do
    if svc.name == name then return svc.task_definition:match("task%-definition/(.+)$") end
  end
end

-- Each line of `ecsplay status` (with its hint lines) by the rollout it is about (up to the
-- blank line before the blocks of the runs killed before their end).
local function status_lines(dir)
  local rc, out = J.ecsplay(dir, "status", nil, { "status" })
  T.eq(rc, 0, out)
  local by, current = {}, nil
  for line in (out:match("^(.-)\n\n") or out):gmatch("[^\n]+") do
    local name = line:match("^%S+%s+(svc%d)%s")
    if name then current = name by[name] = line
    elseif current then by[current] = by[current] .. "\n" .. line end
  end
  return by, out
end

T.test("killed while putting back svc2: the journals, status, rollback and resume tell the truth", function()
  J.with_server(function(dir, srv)
    local rc, out = J.ecsplay(dir, "run", srv, PLAYBOOK, KILL)
    T.eq(rc, 137, "killed by SIGKILL:\n" .. out)
    J.forget_clients(srv)
    local js = journals(dir)
    local svc1, svc2, svc3 = js.svc1, js.svc2, js.svc3
    T.ok(svc1 and svc2 and svc3, "a journal per member: " .. json.encode(js))
    -- svc2's journal: succeeded, then the intent to put it back (no end since)
    T.ok(svc2.state.succeeded and svc2.state.reverting, "svc2's journal records the put-back's intent")
    T.eq(svc2.state.ended, nil, "svc2's journal does not read as ended")
    T.eq(svc3.state.ended, "rolled_back", "svc3 failed and rolled back")
    -- svc1: still promoted at the kill (svc2, ended last, was put back first), or being put back
    local svc1_promoted = svc1.state.ended == "succeeded"
    T.eq(td(srv, "svc1"), svc1_promoted and "api:2" or td(srv, "svc1"))

    -- `ecsplay status`: svc2 is being put back, with the command that finishes it; the failed
    -- member's line points at its run, which names every member left promoted
    local by, sout = status_lines(dir)
    T.ok(by.svc2 and by.svc2:find("putting-back", 1, true), sout)
    T.ok(by.svc2:find("ecsplay rollback " .. svc2.path, 1, true), sout)
    if svc1_promoted then
      local group = svc1.state.start.group
      T.ok(by.svc1:find("its run did not finish: it still runs its new version", 1, true), sout)
      T.ok(by.svc3:find("its run did not finish: 1 of its rollouts left promoted: see `run " .. group .. "` below",
        1, true), sout)
      T.ok(sout:find("\n\nrun " .. group .. " did not finish, so its abort handlers (on_abort, a fleet's undo=) "
        .. "did not run: 1 of its rollouts succeeded (promoted) and still runs its new version:\n  svc1: `ecsplay "
        .. "rollback " .. svc1.path .. "` puts it back\n", 1, true), sout)
    end

    -- `ecsplay rollback` of the failed member's journal: nothing of its own, but it names svc2
    -- (unfinished) and svc1 (promoted), with the commands
    rc, out = J.ecsplay(dir, "rollback3", nil, { "rollback", svc3.path })
    T.eq(rc, 0, out)
    T.ok(out:find("ecsplay rollback " .. svc2.path, 1, true), out)
    if svc1_promoted then
      T.ok(out:find("the run did not finish, so its abort handlers (on_abort, a fleet's undo=) did not run: "
        .. "svc1 of the same run succeeded (promoted)", 1, true), out)
      T.ok(out:find("`ecsplay rollback " .. svc1.path .. "` puts it back", 1, true), out)
    end
    T.eq(td(srv, "svc1"), svc1_promoted and "api:2" or td(srv, "svc1"), "svc1 not reverted unasked")

    -- `ecsplay rollback` of svc2's journal finishes its put-back
    rc, out = J.ecsplay(dir, "rollback2", nil, { "rollback", svc2.path })
    T.eq(rc, 0, out)
    T.ok(out:find("was being put back when it was stopped", 1, true), out)
    T.eq(journal_file.read(svc2.path).ended, "rolled_back")
    T.eq(td(srv, "svc2"), "api:1", "svc2 back on the version it ran before")

    -- `ecsplay resume`: the fleet fails again on svc3, puts back svc1; the summary blames svc3
    rc, out = J.ecsplay(dir, "resume", nil, { "resume", svc3.path })
    T.eq(rc, 1, out)
    T.ok(out:find("fleet: svc1     rolled_back", 1, true), out)
    T.ok(out:find("fleet: svc2     rolled_back", 1, true), out)
    T.ok(out:find("fleet: svc3     failed", 1, true), out)
    T.ok(not out:find("svc1 had already failed", 1, true), out)
    T.ok(out:find("ecsplay: playbooks/fleet.lua:%d+: fleet failed"), "the last line names file:line:\n" .. out)
    for i = 1, 3 do
      T.eq(td(srv, "svc" .. i), "api:1", "svc" .. i .. " runs the version it ran before")
      T.ok(journal_file.read(js["svc" .. i].path).ended == "rolled_back", "svc" .. i .. "'s journal ended")
    end
  end, SCENARIO)
end)

T.test("killed while putting back svc2, then `ecsplay resume`: the put-back is finished, every member "
  .. "back, every journal ended", function()
  J.with_server(function(dir, srv)
    local rc, out = J.ecsplay(dir, "run", srv, PLAYBOOK, KILL)
    T.eq(rc, 137, "killed by SIGKILL:\n" .. out)
    J.forget_clients(srv)
    local js = journals(dir)
    rc, out = J.ecsplay(dir, "resume", nil, { "resume", js.svc2.path })
    T.eq(rc, 1, out)
    T.ok(out:find("svc2: already succeeded in the run being resumed, and was being put back", 1, true), out)
    T.ok(out:find("fleet: svc3     failed", 1, true), out)
    for i = 1, 3 do
      local name = "svc" .. i
      T.eq(td(srv, name), "api:1", name .. " runs the version it ran before")
      T.eq(journal_file.read(js[name].path).ended, "rolled_back", name .. "'s journal ended")
    end
    local by, sout = status_lines(dir)
    for i = 1, 3 do T.ok(by["svc" .. i]:find("rolled-back", 1, true), sout) end
    T.ok(not sout:find("did not finish", 1, true), "the resumed run ended:\n" .. sout)
  end, SCENARIO)
end)

-- svc2 fails; the fleet stops svc1, which rolls itself back; killed once svc1's end line is on
-- disk (before the playbook's end). The resumed fleet blames svc2, the member whose rollout
-- failed, and counts svc1 rolled back (its end line says the fleet stopped it). (Before: "svc1
-- had already failed and rolled back", 2 failed.)
T.test("killed after the fleet stopped svc1, then `ecsplay resume`: svc1 rolled_back, svc2 failed", function()
  J.with_server(function(dir, srv)
    local rc, out = J.ecsplay(dir, "run", srv, { "tests/scenarios/kill_at_line.lua", "playbook=playbooks/fleet.lua",
      "n=2", "bad=2", "limit=2", "bake=1m" }, { ECSPLAY_TEST_KILL_AT = "svc1|end" })
    T.eq(rc, 137, "killed by SIGKILL:\n" .. out)
    J.forget_clients(srv)
    local js = journals(dir)
    T.eq({ js.svc1.state.ended, js.svc2.state.ended }, { "rolled_back", "rolled_back" })
    rc, out = J.ecsplay(dir, "resume", nil, { "resume", js.svc1.path })
    T.eq(rc, 1, out)
    T.ok(out:find("fleet: svc1     rolled_back", 1, true), out)
    T.ok(out:find("fleet: svc2     failed", 1, true), out)
    T.ok(out:find("1 failed, 1 rolled back", 1, true), out)
    T.ok(out:find("ecsplay: playbooks/fleet.lua:%d+: fleet failed"), out)
    for i = 1, 2 do T.eq(td(srv, "svc" .. i), "api:1") end
    T.ok(tostring(js.svc1.state.stopped):find("stopped by the fleet: svc2 failed", 1, true),
      "svc1's end line says why: " .. tostring(js.svc1.state.stopped))
    T.eq(js.svc2.state.stopped, nil, "svc2 failed on its own")
  end, SCENARIO)
end)

-- An undo= of the playbook's own (not revert.succeeded): the member's journal records the intent
-- before it, and ends rolled_back once it completed. (Before, it kept reading "succeeded".)
local OWN_UNDO = [[
local rollout, actions = require "ecsplay.rollout", require "ecsplay.rollout.actions"
rollout.fleet { { 1, 2 }, limit = 1, name = function(i) return "svc" .. i end,
  run = function(i)
    return rollout.canary { name = "svc" .. i, cluster = "production", image = i == 2 and "api:bad" or "api:v2",
      container = "api", canary_count = 1, steps = { 100 }, bake = "1m", interval = "1m",
      stable = { service = "svc" .. i, target_group = "svc" .. i .. "-stable" },
      canary = { service = "svc" .. i .. "-canary", target_group = "svc" .. i .. "-canary" } }
  end,
  undo = function(i, report)
    actions.run { op = "update_service", cluster = "production", service = "svc" .. i,
      taskDefinition = report.previous_task_definition, wait = { timeout = 900 } }
  end }
]]

T.test("an undo= of the playbook's own: the member's journal says it is put back, then ends rolled_back", function()
  local dir = T.tmpdir()
  L.write(dir .. "/own_undo.lua", OWN_UNDO)
  local out, rc = T.sh("ECSPLAY_RUNS_DIR=" .. L.q(dir .. "/runs") .. " " .. T.bin .. " --simulate=" .. SCENARIO
    .. " " .. L.q(dir .. "/own_undo.lua"))
  T.eq(rc, 1, out)
  local js = journals(dir)
  os.execute("rm -rf " .. L.q(dir))
  local svc1 = js.svc1 and js.svc1.state or {}
  T.ok(svc1.succeeded and svc1.reverting, "svc1's journal: succeeded, then the put-back's intent:\n" .. out)
  T.eq(svc1.reverting and svc1.reverting.reason, "the fleet failed: putting back svc1")
  T.eq(svc1.ended, "rolled_back", "svc1's journal ends rolled_back once its undo= completed")
end)

-- A fleet of 6, one member at a time, killed the moment svc6's start line is on disk: svc1..svc5
-- promoted, their undo= never ran. `ecsplay status` lists the six journals, each line short
-- (its own state and a pointer to its run), and names the run's promoted members once, each
-- with the command that puts it back. (Before: each of the 6 lines named every other promoted
-- member with its command, N² lines for a fleet of N.) `ecsplay rollback` of one journal and a
-- steering command refused for an ended member still name them all.
T.test("a killed fleet of 6: `ecsplay status` names each promoted member's rollback once", function()
  J.with_server(function(dir, srv)
    local rc, out = J.ecsplay(dir, "run", srv, { "tests/scenarios/kill_at_line.lua", "playbook=playbooks/fleet.lua",
      "n=6", "limit=1", "bake=1m" }, { ECSPLAY_TEST_KILL_AT = "svc6|start" })
    T.eq(rc, 137, "killed by SIGKILL:\n" .. out)
    J.forget_clients(srv)
    local js = journals(dir)
    for i = 1, 5 do T.eq(js["svc" .. i].state.ended, "succeeded", "svc" .. i .. " promoted before the kill") end
    T.eq(js.svc6.state.ended, nil, "svc6 stopped at its start")
    local group = js.svc1.state.start.group

    local by, sout = status_lines(dir)
    local _, nlines = sout:gsub("\n", "")
    T.ok(nlines <= 6 * 3 + 5 + 3, "about one line (and its hints) per journal, one per promoted member:\n" .. sout)
    for i = 1, 5 do
      local cmd = "`ecsplay rollback " .. js["svc" .. i].path .. "` puts it back"
      local _, times = sout:gsub(cmd:gsub("%p", "%%%0"), "")
      T.eq(times, 1, "svc" .. i .. "'s rollback named once:\n" .. sout)
      T.ok(sout:find("svc" .. i .. ": " .. cmd, 1, true), sout)
    end
    T.ok(sout:find("run " .. group .. " did not finish, so its abort handlers (on_abort, a fleet's undo=) did "
      .. "not run: 5 of its rollouts succeeded (promoted) and still run their new version:", 1, true), sout)
    T.ok(sout:find("or `ecsplay resume " .. js.svc1.path .. "` carries the run on", 1, true), sout)
    for i = 1, 6 do
      local line = by["svc" .. i]
      -- its own line: no sibling's journal, a pointer to the run
      T.ok(line:find("its run did not finish", 1, true) and line:find("see `run " .. group .. "` below", 1, true),
        sout)
      for k = 1, 6 do
        if k ~= i then
          T.ok(not line:match("^[^\n]*\n.-" .. js["svc" .. k].path:gsub("%p", "%%%0")), "svc" .. i .. "'s lines "
            .. "name no sibling:\n" .. line)
        end
      end
    end
    T.ok(by.svc3:find("it still runs its new version (one of 5 rollouts left promoted)", 1, true), sout)
    T.ok(by.svc6:find("5 of its rollouts left promoted", 1, true), sout)

    -- JSON: one object per journal, then one for the run
    rc, out = J.ecsplay(dir, "status-json", nil, { "status", "--log-format", "json" })
    T.eq(rc, 0, out)
    local objs = {}
    for l in out:gmatch("[^\n]+") do objs[#objs + 1] = json.decode(l) end
    T.eq(#objs, 7, out)
    T.eq(objs[7].unfinished_run, group, out)
    T.eq(#objs[7].promoted, 5, out)
    for i = 1, 6 do T.eq(objs[i].unfinished_run, group, out) end

    -- `ecsplay rollback` of svc6's journal still names every promoted member with its command
    rc, out = J.ecsplay(dir, "rollback6", nil, { "rollback", js.svc6.path })
    T.eq(rc, 0, out)
    for i = 1, 5 do
      T.ok(out:find("svc" .. i .. " of the same run succeeded (promoted) and still runs its new version; "
        .. "`ecsplay rollback " .. js["svc" .. i].path .. "` puts it back", 1, true), out)
    end
    -- a steering command refused for a promoted member: its hint and the run's promoted members
    rc, out = J.ecsplay(dir, "pause2", nil, { "pause", js.svc2.path })
    T.eq(rc, 2, out)
    T.ok(out:find("see `run " .. group .. "` below", 1, true), out)
    for i = 1, 5 do T.ok(out:find("`ecsplay rollback " .. js["svc" .. i].path .. "` puts it back", 1, true), out) end
    for i = 1, 5 do T.eq(td(srv, "svc" .. i), "api:2", "svc" .. i .. " not reverted unasked") end
  end, SCENARIO)
end)
