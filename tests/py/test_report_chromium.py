"""The HTML run report in a real browser: Debian's headless Chromium opens the page that
`ecsplay --simulate --report FILE.html playbooks/canary.lua` wrote, takes a screenshot (a real
PNG of the page's size, not blank) and dumps the DOM it built; from that DOM the timeline has
one segment per step and there is one series per gate. What to expect is read from the run's
own JSON log (`--log-format json`: its `step` events and the gate names of its `gate` events),
not from the report. A healthy canary (4 steps) and api:flaky (a gate fails, rolled back) are
both checked. Chromium loads the page with every network request blocked by the page's own
Content-Security-Policy; the DOM has no script.

Skips (reported as skipped) only when /usr/bin/chromium is not installed.

Run: /usr/bin/python3 tests/py/test_report_chromium.py   (from the project root, after make)
"""
import html.parser
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import unittest
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ECSPLAY = os.environ.get("ECSPLAY_RUN_BIN") or os.path.join(ROOT, "ecsplay")
CHROMIUM = "/usr/bin/chromium"
WIDTH, HEIGHT = 1200, 2600


class Dom(html.parser.HTMLParser):
    """The elements of a dumped DOM: (tag, attrs dict, path of enclosing tags' attrs)."""

    VOID = {"meta", "br", "img", "input", "link", "hr", "col", "source", "wbr"}

    def __init__(self):
        super().__init__()
        self.elements = []
        self.stack = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.elements.append((tag, a, list(self.stack)))
        if tag not in self.VOID:
            self.stack.append((tag, a))

    def handle_startendtag(self, tag, attrs):
        self.elements.append((tag, dict(attrs), list(self.stack)))

    def handle_endtag(self, tag):
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                del self.stack[i:]
                break


def png_info(path):
    """(width, height, distinct byte values of the decompressed pixel rows) of a PNG file."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise AssertionError("not a PNG: %r" % data[:8])
    pos, width, height, idat = 8, 0, 0, b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    return width, height, len(set(zlib.decompress(idat)))


def chromium(args, timeout=120):
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                           "--no-first-run", "--hide-scrollbars"] + args,
                          capture_output=True, text=True, timeout=timeout)


@unittest.skipUnless(os.access(CHROMIUM, os.X_OK), "chromium is not installed (%s)" % CHROMIUM)
class ReportInChromium(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="ecsplay-report-")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def rehearse(self, name, *args):
        """Runs the canary with --report; → (exit code, report path, the JSON log's events)."""
        page = os.path.join(self.tmp, name + ".html")
        env = dict(os.environ, ECSPLAY_RUNS_DIR=os.path.join(self.tmp, name + "-runs"))
        p = subprocess.run([ECSPLAY, "--simulate", "--log-format", "json", "--report", page,
                            "playbooks/canary.lua"] + list(args), cwd=ROOT, env=env, capture_output=True,
                           text=True, timeout=120)
        events = []
        for line in p.stdout.splitlines():
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict):
                events.append(obj)
        self.assertTrue(os.path.exists(page), "no report written: " + p.stdout[-2000:] + p.stderr[-2000:])
        return p.returncode, page, events

    def browse(self, name, page):
        """Screenshot and DOM of the page in headless Chromium → (png path, Dom)."""
        shot = os.path.join(self.tmp, name + ".png")
        profile = os.path.join(self.tmp, name + "-profile")
        url = "file://" + page
        r = chromium(["--user-data-dir=" + profile, "--window-size=%d,%d" % (WIDTH, HEIGHT),
                      "--screenshot=" + shot, url])
        self.assertTrue(os.path.exists(shot), "no screenshot: " + r.stderr[-2000:])
        r = chromium(["--user-data-dir=" + profile, "--dump-dom", url])
        self.assertEqual(r.returncode, 0, r.stderr[-2000:])
        self.assertIn("</html>", r.stdout)
        dom = Dom()
        dom.feed(r.stdout)
        return shot, dom

    def check(self, name, *args, want_rc):
        rc, page, events = self.rehearse(name, *args)
        self.assertEqual(rc, want_rc)
        steps = sorted({e["step"] for e in events if e.get("event") == "step"})
        gates = sorted({e["gate"] for e in events if e.get("event") == "gate" and "gate" in e})
        self.assertTrue(steps and gates, "the log has step and gate events")
        shot, dom = self.browse(name, page)
        width, height, distinct = png_info(shot)
        self.assertEqual((width, height), (WIDTH, HEIGHT))
        self.assertGreater(os.path.getsize(shot), 20000, "a screenshot of a page with pictures")
        self.assertGreater(distinct, 50, "the screenshot is not blank")
        # a timeline and a chart per gate; the timeline has one segment per step the log shows
        charts = [el for el in dom.elements if el[0] == "svg"]
        self.assertEqual(len(charts), 1 + len(gates))
        segments = [a for tag, a, path in dom.elements if "data-step" in a
                    and any(t == "svg" for t, _ in path)]
        self.assertEqual(sorted(int(a["data-step"]) for a in segments), steps, "one segment per step")
        for a in segments:
            self.assertIn("data-weight", a)
        series = [a["data-gate"] for tag, a, path in dom.elements if "data-gate" in a]
        self.assertEqual(sorted(series), gates, "one series per gate")
        self.assertFalse([el for el in dom.elements if el[0] in ("script", "iframe", "object", "link")])
        status = [a["data-status"] for tag, a, _ in dom.elements if "data-status" in a]
        return dom, status, steps

    def test_succeeded_canary(self):
        dom, status, steps = self.check("succeeded", want_rc=0)
        self.assertEqual(steps, [1, 2, 3, 4])
        self.assertEqual(status[0], "succeeded")
        rows = [a for tag, a, _ in dom.elements if "data-step-row" in a]
        self.assertEqual(len(rows), 4, "the steps table: a row per step")

    def test_gate_failure_rolled_back(self):
        dom, status, steps = self.check("flaky", "image=api:flaky", want_rc=1)
        self.assertLess(len(steps), 4, "stopped before the last step")
        self.assertEqual(status[0], "rolled_back")
        kinds = [a["data-event"] for tag, a, _ in dom.elements if "data-event" in a]
        self.assertIn("abort", kinds)
        self.assertIn("undo", kinds)
        undo = [a for tag, a, path in dom.elements if "data-undo" in a]
        self.assertEqual(len(undo), 1, "the rollback's drop on the timeline")


def main():
    suite = unittest.TestLoader().loadTestsFromModule(sys.modules[__name__])
    result = unittest.TextTestRunner(stream=sys.stdout, verbosity=2).run(suite)
    failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    skipped = len(result.skipped)
    for _, reason in result.skipped[:1]:
        print("skipped: " + reason)
    passed = result.testsRun - failed - skipped
    print("%d passed, %d failed%s" % (passed, failed, ", %d skipped" % skipped if skipped else ""), flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
