"""test-tui-loops.py: the loop picker, asynctop under tmux against a real program with two
event loops on two threads (loops_target, a plain libuv program run under the preload shim):
the header names the loop shown and how many there are, ] [ and the Loops list (L, Enter)
switch, every screen then shows that loop's rows only (its requests, its slow callbacks),
--loop N picks the first loop, the subcommands take --loop, and a loop that closes while it
is shown is said to have closed and the main loop is shown instead, and one that appears
while attached is counted, listed and reachable."""
import json
import os
import re
import subprocess

import pytest

from tui_harness import Env, Tui, header, wait_until

TARGET = os.environ.get("LOOPS_TARGET", "")
SHIM = os.environ.get("ASYNCTOP_PRELOAD_SO", "")

pytestmark = pytest.mark.skipif(not TARGET or not SHIM,
                                reason="LOOPS_TARGET / ASYNCTOP_PRELOAD_SO not set")


class LoopsTarget:
    """loops_target under the shim, with the harness's private socket directory."""

    def __init__(self, env):
        e = dict(env.env)
        e["LD_PRELOAD"] = SHIM
        self.proc = subprocess.Popen([TARGET], env=e, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True, bufsize=1)
        line = self.proc.stdout.readline()
        assert line.startswith("READY "), line
        self.pid = int(line.split()[1])
        path = os.path.join(env.sock_dir(), "%d.sock" % self.pid)
        wait_until("target socket %s" % path, lambda: os.path.exists(path))

    def send(self, cmd):
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        while True:
            line = self.proc.stdout.readline()
            assert line, "target exited while running %r" % cmd
            if line.startswith("OK "):
                return

    def stop(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()  # EOF: both loops close, the program exits 0
                assert self.proc.wait(10) == 0
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise
        self.proc.stdout.close()


@pytest.fixture
def env():
    e = Env()
    yield e
    e.close()


@pytest.fixture
def target(env):
    t = LoopsTarget(env)
    yield t
    t.stop()


def loops_of(env, pid):
    """The process's loops as `asynctop dump --json` lists them: {thread name: loop}."""
    r = env.run("dump", pid, "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    return {l["thread"]: l for l in doc["loops"]}, doc


def rows(screen):
    """Request rows of the Tasks screen: (name, created-at function)."""
    out = []
    for l in screen.split("\n"):
        m = re.match(r"^\s*\d+ (\S+)\s+waiting\s.*\s(\w+) loops_target\.c:\d+\s*$", l)
        if m:
            out.append((m.group(1), m.group(2)))
    return sorted(out)


ALPHA_ROWS = [("fs.read", "read_command"), ("work", "start_alpha_work")]
BETA_ROWS = [("work", "start_beta_work"), ("work", "start_beta_work")]
# the NOW column of the Loops list: a loop caught in one of its slow callbacks reads BLOCKED
BLOCKED = r"(?:\s+BLOCKED [\d.]+ s)?"


def test_subcommands_take_loop(env, target):
    loops, doc = wait_until("both loops listed",
                            lambda: (lambda r: r if len(r[0]) == 2 else None)(
                                loops_of(env, target.pid)))
    main, beta = loops["loops_target"], loops["beta-worker"]
    assert main["id"] == 0 and main["name"] == "main" and main["tid"] == target.pid
    assert beta["id"] != 0 and beta["tid"] not in (0, target.pid)
    assert main["kind"] == beta["kind"] == "uv" and main["addr"] and beta["addr"] != main["addr"]
    assert doc["loop"]["id"] == 0
    # each loop's pending requests are its own
    assert main["pending"] == 2 and beta["pending"] == 2
    r = env.run("ps", target.pid, "--loop", beta["id"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("start_beta_work") == 2 and "start_alpha_work" not in r.stdout
    r = env.run("--loop", beta["id"], "dump", target.pid, "--json")
    assert json.loads(r.stdout)["loop"]["id"] == beta["id"]
    r = env.run("ps", target.pid)
    assert "start_alpha_work" in r.stdout and "start_beta_work" not in r.stdout
    # an id the process does not have: refused, with the list of the ones it has
    r = env.run("ps", target.pid, "--loop", 999)
    assert r.returncode == 2
    assert "has no loop 999" in r.stderr and "'beta-worker'" in r.stderr


def test_picker_switch_and_close(env, target):
    loops = wait_until("both loops listed",
                       lambda: (lambda r: r if len(r) == 2 else None)(
                           loops_of(env, target.pid)[0]))
    beta_id = loops["beta-worker"]["id"]
    tui = Tui(env, [target.pid], 150, 40)
    try:
        # the main loop first: the header says which of how many, and whose rows these are
        s = tui.wait(r"^loop 1/2 \(thread %d 'loops_target', uv loop 0x[0-9a-f]+\)" % target.pid)
        s = tui.wait(r"start_alpha_work")
        assert rows(s) == ALPHA_ROWS, s
        # a libuv loop's pending rows are requests, and the header and the screen say so
        assert re.search(r"^requests 2 in flight  slow", s, re.M), s
        assert re.search(r"^2 requests in flight", s, re.M), s
        assert "tasks" not in s.split("\n")[1], s
        # its slow callbacks only
        tui.keys("4")
        s = tui.wait(r"alpha_slow")
        assert "beta_slow" not in s

        # ]: the next loop, on every screen
        tui.keys("]")
        s = tui.wait(r"^loop 2/2 \(thread \d+ 'beta-worker', uv loop 0x[0-9a-f]+\)\s+id %d"
                     % beta_id)
        s = tui.wait(r"beta_slow")
        assert "alpha_slow" not in s
        tui.keys("1")
        s = tui.wait(r"start_beta_work")
        assert rows(s) == BETA_ROWS, s
        tui.keys("6")  # the Loop screen: this loop's figures, and both loops at a glance
        s = tui.wait(r"Loops of the process")
        assert re.search(r"^\*\s+%d  util\s+\d+%%  \S+ cb/s  slow \d+  pending 2  thread \d+ "
                         r"'beta-worker'" % beta_id, s, re.M), s
        assert re.search(r"^\s+0  util\s+\d+%%  \S+ cb/s  slow \d+  pending 2  thread %d "
                         r"'loops_target'" % target.pid, s, re.M), s

        # [ goes back; the list (L) shows both loops with their load, Enter picks one
        tui.keys("[")
        tui.wait(r"^loop 1/2 \(thread %d " % target.pid)
        tui.keys("L")
        s = tui.wait(r"LOOP\s+UTIL\s+CB/S\s+SLOW\s+PENDING\s+NOW\s+KIND\s+THREAD")
        s = tui.wait(r"^\s+%d\s+\d+%%\s+\S+\s+\d+\s+2%s\s+uv\s+\d+ 'beta-worker'"
                     % (beta_id, BLOCKED))
        m = re.search(r"^\*\s+0\s+(\d+)%%\s+\S+\s+\d+\s+2%s\s+uv\s+%d 'loops_target'"
                      % (BLOCKED, target.pid), s, re.M)
        assert m, s
        # the main loop runs ~13% of the time (a 120 ms callback a second, a 50 ms tick): its
        # idle time is the shim's measured polls (it read 100% when the row took libuv's
        # idle-time metric, which is off under the shim)
        assert int(m.group(1)) < 60, s
        tui.keys("Down", "Enter")
        tui.wait(r"^loop 2/2 \(thread \d+ 'beta-worker'")
        tui.keys("1")
        s = tui.wait(r"start_beta_work")
        assert rows(s) == BETA_ROWS, s

        # another loop stuck in one callback: the header says so whichever loop is shown
        tui.keys("[")
        tui.wait(r"^loop 1/2 \(thread %d " % target.pid)
        target.send("spin-b 4000")
        s = tui.wait(r"^loop 1/2 \(thread %d .*  loop %d BLOCKED \d+\.\d s"
                     % (target.pid, beta_id))
        tui.keys("L")
        tui.wait(r"^\s+%d\s+100%%\s+\S+\s+\d+\s+2\s+BLOCKED \d+\.\d s\s+uv" % beta_id)
        tui.keys("Down", "Enter")
        tui.wait(r"^loop 2/2 \(thread \d+ 'beta-worker'")

        # a loop that appears while attached: counted, listed, reachable
        target.send("start-c")
        tui.wait(r"^loop 2/3 \(thread \d+ 'beta-worker'")
        tui.keys("L")
        s = tui.wait(r"^\s+\d+\s+\d+%%\s+\S+\s+\d+\s+1%s\s+uv\s+\d+ 'gamma-worker'" % BLOCKED)
        tui.keys("Escape")

        # the loop shown closes: said so, and the main loop is shown instead
        target.send("close-b")
        s = tui.wait(r"loop %d \(thread \d+ 'beta-worker'.*\) closed; now showing loop 0"
                     % beta_id)
        s = tui.wait(r"^loop 1/2 \(thread %d 'loops_target'" % target.pid)
        tui.keys("1")
        s = tui.wait(r"start_alpha_work")
        assert rows(s) == ALPHA_ROWS, s
        # the list keeps it, closed
        tui.keys("L")
        tui.wait(r"'beta-worker'.*\(closed\)")
        tui.keys("Escape")
        # ] skips the closed loop: the new one, then around to the main loop
        tui.keys("]")
        tui.wait(r"^loop 2/2 \(thread \d+ 'gamma-worker'")
        s = tui.wait(r"start_gamma_work")
        assert rows(s) == [("work", "start_gamma_work")], s
        tui.keys("]")
        tui.wait(r"^loop 1/2 \(thread %d 'loops_target'" % target.pid)
        tui.keys("q")
        tui.wait(r"\[asynctop exited 0\]", 20)
    finally:
        tui.close()


def test_loop_option(env, target):
    loops = wait_until("both loops listed",
                       lambda: (lambda r: r if len(r) == 2 else None)(
                           loops_of(env, target.pid)[0]))
    beta_id = loops["beta-worker"]["id"]
    tui = Tui(env, ["--loop", beta_id, target.pid], 150, 40)
    try:
        tui.wait(r"^loop 2/2 \(thread \d+ 'beta-worker'")
        s = tui.wait(r"start_beta_work")
        assert rows(s) == BETA_ROWS, s
        # a request (task detail) goes to the loop shown: the task is found there
        tui.keys("Enter")
        s = tui.wait(r"created at start_beta_work loops_target\.c:\d+")
        assert "waits on   executor" in s, s
        tui.keys("Escape")
        tui.keys("q")
        tui.wait(r"\[asynctop exited 0\]", 20)
    finally:
        tui.close()
    # an unknown loop: a message before the TUI starts, usage exit code
    tui = Tui(env, ["--loop", 999, target.pid], 150, 40)
    try:
        s = tui.wait(r"\[asynctop exited 2\]", 20)
        assert "has no loop 999" in s, s
    finally:
        tui.close()
