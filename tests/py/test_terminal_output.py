"""Output for people on a terminal (issue 11, item 3): ecsplay run under a real pseudo-terminal
(Python's pty) and inside tmux. Checks the live progress line (rewritten in place with \\r and
erased before every other line, with the bake's countdown), the coloured verdicts (none with
NO_COLOR), the summary table, the progress line's own clock on a real-time run, and the screen a
person is left with (tmux): the table, the last line, no progress line left behind.
Piped output (no escape codes at all) is tests/lua/test_output_text.lua.

Run: /usr/bin/python3 tests/py/test_terminal_output.py   (from the project root, after make)
"""
import os
import pty
import re
import select
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import simserve  # noqa: E402

CLEAR = b"\r\x1b[K"
PROGRESS = re.compile(rb"\r\x1b\[K(?:\x1b\[2m)?\xe2\x96\xb8 ([^\r\n\x1b]*)")  # "▸ canary api · ..."
ANSI = re.compile(rb"\x1b\[[0-9;]*[A-Za-z]")


def on_pty(args, env=None, timeout=120):
    """Runs ecsplay ARGS with stdout and stderr on one pseudo-terminal → (exit code, bytes written)."""
    e = simserve.clean_env()
    e.update({"TERM": "xterm-256color", "COLUMNS": "160"})
    e.pop("NO_COLOR", None)
    e.update(env or {})
    pid, fd = pty.fork()
    if pid == 0:  # the child: the terminal is its stdin, stdout and stderr
        os.chdir(simserve.ROOT)
        os.execve(simserve.ECSPLAY_RUN, [simserve.ECSPLAY_RUN] + list(args), e)
    out, deadline = b"", time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 1)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    else:
        os.kill(pid, 9)
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), out


def screen_lines(raw):
    """The lines a person reads: each \\r\\n-terminated line as the terminal leaves it (text after the
    last \\r, escape codes removed)."""
    lines = []
    for line in raw.split(b"\r\n"):
        lines.append(ANSI.sub(b"", line.split(b"\r")[-1]).decode())
    return lines


class Terminal(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.rc, cls.raw = on_pty(["--simulate", "playbooks/canary.lua", "image=api:flaky"])

    def test_exit_code(self):
        self.assertEqual(self.rc, 1, self.raw[-2000:])

    def test_progress_line_counts_the_bake_down(self):
        shown = [m.decode() for m in PROGRESS.findall(self.raw)]
        self.assertTrue(shown, self.raw[-2000:])
        left = []
        for text in shown:
            m = re.match(r"canary api · step (\d)/4 (\d+)% · bake (\w+) left of 5m · next measurement in (\w+)$", text)
            if m:
                left.append((int(m.group(1)), int(m.group(2)), m.group(3)))
        self.assertIn((1, 10, "4m"), left, shown)
        self.assertIn((1, 10, "1m"), left, shown)
        self.assertIn((2, 25, "3m"), left, shown)
        # past the bake, the verdict waits for CloudWatch's last periods
        self.assertTrue(any(re.search(r"step 1/4 10% · baked; verdict in \w+ \(CloudWatch's last periods\)", t)
                            for t in shown), shown)

    def test_progress_line_is_erased_before_each_line_and_at_the_end(self):
        # every progress text is followed by an erase (\r ESC[K) before anything else is written
        for m in re.finditer(rb"\xe2\x96\xb8 [^\r\n]*", self.raw):
            after = self.raw[m.end():m.end() + 4]
            self.assertTrue(after.startswith(b"\x1b[0m\r") or after.startswith(b"\r"), self.raw[m.start():m.end() + 40])
        last_progress = self.raw.rfind("▸".encode())
        self.assertLess(last_progress, self.raw.find(b"summary: canary api"), "no progress line after the run")
        self.assertFalse(re.search(rb"\xe2\x96\xb8[^\r\n]*\r\n", self.raw), "a progress line is never ended by a newline")

    def test_round_lines_and_colours(self):
        self.assertIn(b"p99 ", self.raw)
        self.assertIn(b"\x1b[32m\xe2\x9c\x93\x1b[0m", self.raw, "a green check mark")
        self.assertIn(b"\x1b[31m\xe2\x9c\x97\x1b[0m", self.raw, "a red cross")
        lines = screen_lines(self.raw)
        rounds = [l for l in lines if re.match(r"\[\d\d:\d\d:\d\d\] (warning: )?step \d/4 \d+% \[", l)]
        self.assertTrue(any(re.search(r" 5xx \d+\.\d\d% < 1% ✓  p99 \d+ ms < 300 ms ✓  alarm 0 ✓", l)
                            for l in rounds), rounds)
        self.assertIn("[10:12:00] warning: step 2/4 25% [3m/5m]  alarm 1 ✗ (in ALARM: api-5xx-high)", rounds)

    def test_summary_table(self):
        lines = screen_lines(self.raw)
        # 12m to the abort, then the rollback waits 15 s for the canary's scale-in; the failed
        # step's row closes at the abort, so its 3m leave those 15 s out
        at = lines.index("summary: canary api rolled back in 12m15s (api:1 → api:2)")
        self.assertRegex(lines[at + 1], r"^  step +weight +held +5xx \(%\) min/max/last +p99 \(ms\) min/max/last +alarm min/max/last$")
        self.assertRegex(lines[at + 2], r"^  1/4 +10% +8m +\d\.\d\d/\d\.\d\d/\d\.\d\d +\d+/\d+/\d+ +0/0/0$")
        self.assertRegex(lines[at + 3], r"^  2/4 +25% +3m +- +- +0/1/1$")
        self.assertTrue(lines[at + 4].startswith("ecsplay: playbooks/canary.lua:"), lines[at + 4])

    def test_no_color(self):
        rc, raw = on_pty(["--simulate", "playbooks/canary.lua", "image=api:flaky"], env={"NO_COLOR": "1"})
        self.assertEqual(rc, 1)
        self.assertNotRegex(raw, rb"\x1b\[3\dm", "no colour")
        self.assertTrue(PROGRESS.search(raw), "the progress line stays")

    def test_real_clock_ticks_the_progress_line(self):
        # no --simulate: the machine's clock; nothing is logged while the playbook sleeps, so
        # each countdown value after the first is the progress line's own one-second redraw
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
            f.write('local log = require "ecsplay.log"\n'
                    'log.set_context { run_id = "r1", strategy = "canary", rollout = "demo" }\n'
                    'log.event("info", "step", "step 1/2: demo", { step = 1, step_count = 2, weight = 50 })\n'
                    'log.event("debug", "baking", "baking", { bake = 30, interval = 60, verdict_in = 30,\n'
                    '  step = 1, weight = 50 })\n'
                    'ecsplay.sleep(3.5)\nprint("done")\n')
        self.addCleanup(os.remove, f.name)
        rc, raw = on_pty([f.name])
        self.assertEqual(rc, 0, raw)
        counts = {m.group(1) for m in re.finditer(rb"step 1/2 50% \xc2\xb7 bake (\d+)s left of 30s", raw)}
        self.assertGreaterEqual(len(counts), 2, raw)
        # print() goes above the progress line, never onto it
        self.assertIn(CLEAR + b"done\r\n", raw)

    @unittest.skipUnless(shutil.which("tmux"), "tmux is not installed")
    def test_tmux_screen(self):
        tmp = tempfile.TemporaryDirectory(prefix="ecsplay-tmux-")
        self.addCleanup(tmp.cleanup)
        sock = os.path.join(tmp.name, "sock")
        tmux = ["tmux", "-S", sock, "-f", "/dev/null"]
        cmd = ("cd %s && %s --simulate playbooks/canary.lua image=api:flaky; echo EXIT=$?; tmux -S %s wait-for -S done; "
               "sleep 60" % (simserve.ROOT, simserve.ECSPLAY_RUN, sock))
        env = simserve.clean_env()
        env["TERM"] = "xterm"
        env.pop("TMUX", None)
        subprocess.run(tmux + ["new-session", "-d", "-x", "170", "-y", "50", "-s", "t", cmd], check=True, env=env)
        self.addCleanup(subprocess.run, tmux + ["kill-server"], capture_output=True)
        subprocess.run(tmux + ["wait-for", "done"], timeout=120, check=True)
        screen = subprocess.run(tmux + ["capture-pane", "-p", "-J", "-t", "t", "-S", "-100"], capture_output=True,
                                text=True, check=True).stdout
        lines = [l.rstrip() for l in screen.splitlines() if l.strip()]
        self.assertEqual(lines[-1], "EXIT=1", screen)
        self.assertTrue(lines[-2].startswith("ecsplay: playbooks/canary.lua:"), screen)
        self.assertRegex(lines[-3], r"^  2/4 +25% +3m +- +- +0/1/1$", screen)
        self.assertIn("summary: canary api rolled back in 12m15s (api:1 → api:2)", lines)
        self.assertNotIn("▸", screen, "the progress line was erased")


if __name__ == "__main__":
    simserve.run_tests()
