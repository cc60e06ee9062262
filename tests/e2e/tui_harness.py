"""tui_harness.py: what the inspector's end-to-end tests share: a target process to
attach to and a tmux session to drive asynctop in, with polling (never fixed sleeps).

Two kinds of target: RealTarget runs tui_target (tests/e2e/tui_target.c: a real program
on at_loop + tasks + the exporter, driven by commands on stdin; $TUI_TARGET names it), and
is what test-tui-real.py uses; Target runs the Python fake (fake_target.py, or
ASYNCTOP_E2E_TARGET), kept for what a real program cannot produce on demand (a protocol
version we do not speak, parent cycles, every exception kind, dropped-event counters).

ASYNCTOP_E2E_WRAPPER (e.g. "valgrind --error-exitcode=99 ...") runs every asynctop the
tests start under that command; the tests then see its exit status."""
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PYTHON = "/usr/bin/python3"
# The one line to change to test against a real target:
TARGET_CMD = os.environ.get("ASYNCTOP_E2E_TARGET", "%s %s" % (PYTHON, os.path.join(HERE, "fake_target.py"))).split()
ASYNCTOP = os.environ.get("ASYNCTOP", os.path.join(HERE, "../../build/inspector/asynctop"))
TMUX = shutil.which("tmux") or "/usr/bin/tmux"
TUI_TARGET = os.environ.get("TUI_TARGET", os.path.join(HERE, "../../build/tests/e2e/tui_target"))
WRAPPER = os.environ.get("ASYNCTOP_E2E_WRAPPER", "").split()
# Under a wrapper such as valgrind everything the inspector does is ~20x slower.
SLOW = 4.0 if WRAPPER else 1.0


def wait_until(what, fn, timeout=10.0, interval=0.05):
    """Polls fn() until it returns a true value (returned) or raises after timeout
    (stretched by SLOW under a wrapper)."""
    deadline = time.monotonic() + timeout * SLOW
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError("timed out after %.1fs waiting for %s; last: %r" % (timeout, what, last))


class Env:
    """A private socket directory (XDG_RUNTIME_DIR) so tests never see each other."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="asynctop-e2e-")
        os.chmod(self.dir, 0o700)
        self.env = dict(os.environ)
        self.env["XDG_RUNTIME_DIR"] = self.dir
        self.env.pop("ASYNCTOP_SOCKET", None)
        self.env.pop("NO_COLOR", None)
        self.env["LANG"] = self.env["LC_ALL"] = "C.UTF-8"
        self.targets = []

    def sock_dir(self):
        return os.path.join(self.dir, "asynctop")

    def target(self, *args, program="fake-server", log=True):
        t = Target(self, list(args), program, log)
        self.targets.append(t)
        return t

    def real_target(self):
        t = RealTarget(self)
        self.targets.append(t)
        return t

    def run(self, *args, timeout=30, env=None):
        """Runs asynctop without a terminal; returns CompletedProcess (text)."""
        e = dict(self.env)
        if env:
            e.update(env)
        return subprocess.run(WRAPPER + [ASYNCTOP] + [str(a) for a in args], env=e,
                              capture_output=True, text=True, timeout=timeout * SLOW,
                              stdin=subprocess.DEVNULL)

    def close(self):
        errors = []
        for t in self.targets:
            try:
                t.stop()
            except AssertionError as e:
                errors.append(str(e))
        shutil.rmtree(self.dir, ignore_errors=True)
        if errors:
            raise AssertionError("\n".join(errors))


class Target:
    def __init__(self, env, args, program, log):
        self.env = env
        self.log = os.path.join(env.dir, "requests-%d.log" % len(env.targets)) if log else None
        cmd = TARGET_CMD + ["--program", program] + args + (["--log", self.log] if log else [])
        self.proc = subprocess.Popen(cmd, env=env.env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self.pid = self.proc.pid
        self.path = os.path.join(env.sock_dir(), "%d.sock" % self.pid)
        wait_until("target socket %s" % self.path, lambda: os.path.exists(self.path))

    def requests(self):
        """Requests the target received, as dicts (op, task, config)."""
        if not self.log or not os.path.exists(self.log):
            return []
        with open(self.log) as f:
            return [json.loads(line) for line in f if line.strip()]

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()


class RealTarget:
    """tui_target: a real program; send() a command line, status() reads what the runtime
    itself holds (slow threshold, debug mode, tasks)."""

    def __init__(self, env):
        self.env = env
        # Its log (the close's reports, and LeakSanitizer's in sanitized builds) goes to a file
        # that stop() shows if the program did not exit cleanly.
        self.errpath = os.path.join(env.dir, "tui_target-%d.err" % len(env.targets))
        with open(self.errpath, "w") as err:
            self.proc = subprocess.Popen([TUI_TARGET], env=env.env, stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=err,
                                         text=True, bufsize=1)
        line = self.proc.stdout.readline()
        assert line.startswith("READY "), line
        self.pid = int(line.split()[1])
        self.path = os.path.join(env.sock_dir(), "%d.sock" % self.pid)
        wait_until("target socket %s" % self.path, lambda: os.path.exists(self.path))

    def send(self, cmd):
        """Sends one command and waits for its "OK cmd" line; returns the lines before."""
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        out = []
        while True:
            line = self.proc.stdout.readline()
            assert line, "target exited while running %r" % cmd
            if line.startswith("OK "):
                return out
            out.append(line.rstrip("\n"))

    def status(self):
        """What the runtime holds now: {"slow_ms": int, "debug": int, "tasks": int}."""
        line = [l for l in self.send("status") if l.startswith("STATUS ")][0]
        return {k: int(v) for k, v in (kv.split("=") for kv in line.split()[1:])}

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        killed = False
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()  # EOF: the loop stops and closes cleanly
                self.proc.wait(5 * SLOW)
            except (subprocess.TimeoutExpired, BrokenPipeError):
                self.proc.kill()
                self.proc.wait()
                killed = True
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except (BrokenPipeError, OSError):
                pass
        # A clean close exits 0; under ASan a leak at loop close (LeakSanitizer) does not.
        if not killed and self.proc.returncode != 0:
            with open(self.errpath, errors="replace") as f:
                log = f.read()
            raise AssertionError("tui_target exited %d:\n%s" % (self.proc.returncode, log[-4000:]))


# Numbers the tmux servers of this process: a server's socket is never reused (see Tui).
_tui_serial = itertools.count()


class Tui:
    """asynctop running in a detached tmux session on a private tmux server.

    The server's socket is a path in the test's private directory, numbered: never the name of
    a server that existed before. (It was "-L asynctop-e2e-PID-id(self)": the next Tui often
    has the address of the last one closed, and `kill-server` returns before that server has
    gone, so new-session could reach the dying server and fail with "server exited
    unexpectedly".)"""

    def __init__(self, env, args, width=120, height=40, extra_env=None):
        self.sock = os.path.join(env.dir, "tmux-%d" % next(_tui_serial))
        self.env = env
        envs = ["XDG_RUNTIME_DIR=%s" % env.dir, "LANG=C.UTF-8", "LC_ALL=C.UTF-8"]
        for k, v in (extra_env or {}).items():
            envs.append("%s=%s" % (k, v))
        argv = " ".join("'%s'" % a for a in WRAPPER + [ASYNCTOP] + [str(a) for a in args])
        # after asynctop exits, the shell reports its status and keeps the pane
        cmd = "env -u NO_COLOR %s %s; echo \"[asynctop exited $?]\"; sleep 600" % (" ".join(envs), argv)
        subprocess.run([TMUX, "-S", self.sock, "-f", "/dev/null", "new-session", "-d", "-x",
                        str(width), "-y", str(height), cmd], check=True, env=self._tmux_env())

    def _tmux_env(self):
        e = dict(os.environ)
        e.pop("TMUX", None)
        e["TERM"] = "xterm-256color"
        return e

    def tmux(self, *args, check=True):
        return subprocess.run([TMUX, "-S", self.sock] + list(args), capture_output=True,
                              text=True, check=check, env=self._tmux_env())

    def screen(self, escapes=False):
        """The pane as one whole frame. tmux may be captured while the inspector is still
        writing a frame (the top of the new screen drawn, the rest still the old one), so the
        pane is read until two reads in a row agree; a pane that never settles for 2 s (times
        SLOW) gives its last read."""
        args = ["capture-pane", "-p"] + (["-e"] if escapes else [])
        prev = self.tmux(*args).stdout
        deadline = time.monotonic() + 2.0 * SLOW
        while time.monotonic() < deadline:
            time.sleep(0.02)
            cur = self.tmux(*args).stdout
            if cur == prev:
                return cur
            prev = cur
        return prev

    def lines(self):
        return self.screen().split("\n")

    def keys(self, *keys):
        for k in keys:
            self.tmux("send-keys", k)

    def text(self, s):
        self.tmux("send-keys", "-l", "--", s)

    def wait(self, pattern, timeout=10.0):
        """Waits until the screen matches regex pattern; returns the screen."""
        rx = re.compile(pattern, re.M)
        last = [""]

        def check():
            last[0] = self.screen()  # a whole frame (see screen())
            return last[0] if rx.search(last[0]) else None
        try:
            return wait_until("screen to match %r" % pattern, check, timeout)
        except AssertionError as e:
            raise AssertionError("%s\n--- screen ---\n%s" % (e, last[0])) from None

    def wait_not(self, pattern, timeout=10.0):
        rx = re.compile(pattern, re.M)
        last = [""]

        def check():
            last[0] = self.screen()
            return last[0] if not rx.search(last[0]) else None
        try:
            return wait_until("screen not to match %r" % pattern, check, timeout)
        except AssertionError as e:
            raise AssertionError("%s\n--- screen ---\n%s" % (e, last[0])) from None

    def resize(self, width, height):
        self.tmux("resize-window", "-x", str(width), "-y", str(height))

    def alternate_on(self):
        return self.tmux("display-message", "-p", "#{alternate_on}").stdout.strip() == "1"

    def close(self):
        self.tmux("kill-server", check=False)


def header(screen):
    return "\n".join(screen.split("\n")[:3])
