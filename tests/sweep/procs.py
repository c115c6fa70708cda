"""Client processes for the sweep: ecsplay runs against `sim serve --speed S`, and the run
journal watched line by line.

Clock: an ecsplay client takes its time from the simulator's answers and waits on the server
(docs/simulator.md, "The clock"), so against `--speed 300` a 5-minute bake lasts a wall
second and gate windows line up with the world's minutes. ECSPLAY_SIM_CLOCK=follow makes sure
of it (a FAKETIME left in the environment would otherwise keep the process on its own clock).

    c = Client(bin, argv, env, out_path)       started at once
    c.signal(sig) / c.wait(timeout) -> rc (negative: killed by a signal; None: timed out, killed)
    w = JournalWatch(runs_dir); w.wait_for(label_or_pred, client, timeout) -> the line or None
"""
import ctypes
import ctypes.util
import glob
import json
import os
import re
import select
import signal
import subprocess
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def client_env(runs_dir, extra=None):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("AWS_") and k not in ("LD_PRELOAD", "FAKETIME")}
    env.update({
        "AWS_ACCESS_KEY_ID": "AKIDSIMULATOR", "AWS_SECRET_ACCESS_KEY": "simulator-secret-key",
        "AWS_CONFIG_FILE": "/nonexistent/ecsplay-sweep-config",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/ecsplay-sweep-credentials",
        "AWS_EC2_METADATA_DISABLED": "true", "ECSPLAY_RUNS_DIR": runs_dir, "ECSPLAY_SIM_CLOCK": "follow",
    })
    env.update(extra or {})
    return env


class Client:
    """One ecsplay process (a playbook run, `rollback` or `resume`), output to out_path."""

    def __init__(self, binary, argv, env, out_path):
        self.out_path = out_path
        self.argv = argv
        self._out = open(out_path, "wb")
        self.proc = subprocess.Popen([binary] + argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                                     stdout=self._out, stderr=subprocess.STDOUT, start_new_session=True)
        self.rc = None

    def alive(self):
        return self.proc.poll() is None

    def signal(self, sig):
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, sig)
            except ProcessLookupError:
                pass

    def wait(self, timeout):
        """Exit status (negative = killed by that signal); None when it had to be killed."""
        try:
            self.rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            self.rc = None
        self._out.close()
        return self.rc

    def kill(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass

    def output(self):
        try:
            with open(self.out_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""


# --- the journal, line by line ------------------------------------------------------------------
IN_MODIFY, IN_CLOSE_WRITE, IN_MOVED_TO, IN_CREATE = 0x2, 0x8, 0x80, 0x100
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
HEX = re.compile(r":?[0-9a-f]{12,}")


def norm_key(key):
    """A journal key without run-specific hex ids (ecs_native's `continue:<hash>`)."""
    return HEX.sub("", key or "")


class JournalWatch:
    """Reads every *.jsonl under runs_dir as it grows; each complete line becomes
    {"file", "obj", "label", "seq"}; the label (e.g. `done:weight:2`, `undone#1`) names the line
    the same way in every run, with `<strategy>.` in front when `prefix` is set (playbooks
    with several rollouts, each journaling to its own file), or `<name>.` (the rollout's
    name, see rollout_label) when prefix is "name": rollouts of one strategy (multi_region's
    canary per Region, a fleet's members)."""

    def __init__(self, runs_dir, prefix=False):
        os.makedirs(runs_dir, exist_ok=True)
        self.dir, self.prefix = runs_dir, prefix
        self.files = {}       # path -> {"off", "buf", "strategy", "seen"}
        self.lines = []
        self.fd = _libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd >= 0:
            _libc.inotify_add_watch(self.fd, runs_dir.encode(), IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE)

    def close(self):
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def _label(self, st, obj):
        t = obj.get("t", "?")
        if t in ("do", "done"):
            base = "%s:%s" % (t, norm_key(obj.get("key")))
        else:
            base = t
        st["seen"][base] = st["seen"].get(base, 0) + 1
        n = st["seen"][base]
        label = base if n == 1 and t not in ("undone",) else "%s#%d" % (base, n)
        if self.prefix == "name":
            label = "%s.%s" % (st.get("name") or "?", label)
        elif self.prefix:
            label = "%s.%s" % (st["strategy"] or "?", label)
        return label

    def scan(self):
        """Reads what was appended; returns the new lines (ordered by their journal time)."""
        new = []
        for path in sorted(glob.glob(os.path.join(self.dir, "*.jsonl"))):
            st = self.files.setdefault(path, {"off": 0, "buf": b"", "strategy": None, "seen": {}})
            try:
                with open(path, "rb") as f:
                    f.seek(st["off"])
                    data = f.read()
            except OSError:
                continue
            st["off"] += len(data)
            st["buf"] += data
            while b"\n" in st["buf"]:
                raw, st["buf"] = st["buf"].split(b"\n", 1)
                try:
                    obj = json.loads(raw)
                except ValueError:
                    obj = {"t": "torn", "raw": raw[:200].decode("utf-8", "replace")}
                if obj.get("t") == "start":
                    st["strategy"] = obj.get("strategy")
                    st["name"] = rollout_label(obj.get("name"))
                if obj.get("t") in ("step", "gate"):
                    continue  # the run report's lines (measurements, not changes): not a fault point
                new.append({"file": path, "obj": obj, "st": st})
        new.sort(key=lambda x: (x["obj"].get("time") or 0))
        for x in new:
            x["label"] = self._label(x.pop("st"), x["obj"])
            x["seq"] = len(self.lines) + 1
            self.lines.append(x)
        return new

    def _sleep(self, timeout):
        if self.fd >= 0:
            r, _, _ = select.select([self.fd], [], [], timeout)
            if r:
                try:
                    os.read(self.fd, 65536)
                except BlockingIOError:
                    pass
        else:
            time.sleep(min(timeout, 0.005))

    def wait_for(self, want, client, timeout, on_line=None):
        """Waits until a line with label `want` (or for which want(line) is true) is journaled;
        returns it, or None when the client exits or `timeout` passes first. on_line(line) is
        called for every line read on the way."""
        match = want if callable(want) else (lambda x: x["label"] == want)
        deadline = time.monotonic() + timeout
        while True:
            exited = not client.alive()
            for x in self.scan():
                if on_line:
                    on_line(x)
                if match(x):
                    return x
            if exited or time.monotonic() > deadline:
                return None
            self._sleep(0.02)

    def files_in_order(self):
        """Journal files, oldest first (the names start with the UTC start time)."""
        return sorted(glob.glob(os.path.join(self.dir, "*.jsonl")))


def rollout_label(name):
    """A rollout's name as a label prefix: `api in eu-west-1` -> `api_in_eu-west-1`
    (tests/sweep/delete_journal_at.lua does the same)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name) if name else None


def journal_lines(path):
    out = []
    try:
        with open(path, "rb") as f:
            for raw in f.read().split(b"\n"):
                try:
                    out.append(json.loads(raw))
                except ValueError:
                    pass
    except OSError:
        pass
    return out


def journal_end(path):
    """The status of a journal's last end line, or None while it has not ended."""
    end = None
    for obj in journal_lines(path):
        if obj.get("t") == "end":
            end = obj.get("status")
        elif obj.get("t") == "start" and end:
            end = None
    return end
