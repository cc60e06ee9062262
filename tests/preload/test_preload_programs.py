"""test_preload_programs.py: real libuv programs run under libasynctop-preload.so and watched
through the socket with the independent client (tests/e2e/atclient.py): a C program with two
loops on two threads and requests in flight, Python on uvloop, Lua on luv, nvim --headless,
and kresd (knot-resolver, on loopback only) ending on SIGTERM as it does without the shim.

Run by meson (suite e2e) with ASYNCTOP_PRELOAD_SO and PRELOAD_TARGET set; under
/usr/bin/python3 with python3-pytest, python3-cbor2, python3-uvloop.
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
import atclient  # noqa: E402
import tui_harness  # noqa: E402

SHIM = os.environ.get("ASYNCTOP_PRELOAD_SO", "")
TARGET = os.environ.get("PRELOAD_TARGET", "")
PY = "/usr/bin/python3"
HERE = os.path.dirname(os.path.abspath(__file__))


def have_uvloop():
    return subprocess.run([PY, "-c", "import uvloop"], capture_output=True).returncode == 0


def lua_with_luv():
    for lua in ("lua5.1", "lua5.3", "lua5.4", "lua"):
        exe = shutil.which(lua)
        if exe and subprocess.run([exe, "-e", "require('luv')"], capture_output=True).returncode == 0:
            return exe
    return None


@pytest.fixture
def tmp():
    d = tempfile.mkdtemp(prefix="at-preload-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def shim_env(sock, **extra):
    env = dict(os.environ)
    env["LD_PRELOAD"] = SHIM
    env["ASYNCTOP_SOCKET"] = sock
    env.update(extra)
    return env


def wait_socket(path, proc, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path):
            return
        if proc.poll() is not None:
            raise AssertionError("program exited (%s) before its socket appeared" % proc.returncode)
        time.sleep(0.02)
    raise AssertionError("no socket at %s" % path)


def collect(c, until, timeout=15.0):
    """Reads updates until until(acc) is true; acc has slow events, task rows and stats."""
    acc = {"slow": [], "tasks": {}, "updates": 0}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        u = c.recv_type("update", timeout=max(0.1, deadline - time.monotonic()))
        acc["updates"] += 1
        for ev in u.get("slow", []):
            acc["slow"].append(ev)
        acc["tasks"] = dict(c.tasks)
        if until(acc):
            return acc
    raise AssertionError("condition not met; got %r" % acc)


def handles_by_type(c, timeout=15.0):
    """The loop's handles by type ({type: count}) from the first update that has them (the
    exporter takes the inventory once a second)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        u = c.recv_type("update", timeout=max(0.1, deadline - time.monotonic()))
        h = u.get("stats", {}).get("handles")
        if h:
            return dict(h)
    raise AssertionError("no handles by type within %.0f s" % timeout)


def site_name(c, ev):
    s = c.sites.get(ev.get("site", 0), {})
    return ev.get("name") or s.get("func") or ""


# ---- a C program: two loops on two threads, requests in flight ---------------------------------

@pytest.mark.skipif(not TARGET, reason="PRELOAD_TARGET not set")
def test_two_loops_and_inflight_requests(tmp):
    sock = os.path.join(tmp, "s")
    p = subprocess.Popen([TARGET], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         env=shim_env(sock))
    try:
        wait_socket(sock, p)
        c = atclient.Client(sock)
        h = c.hello()
        # loop B may be watched a moment after loop A: ask again until both are there
        deadline = time.monotonic() + 10
        while len(h["loops"]) < 2 and time.monotonic() < deadline:
            c.close()
            time.sleep(0.05)
            c = atclient.Client(sock)
            h = c.hello()
        assert len(h["loops"]) == 2, h["loops"]
        tids = {l[2] for l in h["loops"]}
        assert len(tids) == 2 and p.pid in tids  # one on the main thread, one on another
        main_id = next(l[0] for l in h["loops"] if l[2] == p.pid)
        other_id = next(l[0] for l in h["loops"] if l[2] != p.pid)
        # loops are named after their thread (loop B's thread calls itself net-0002), "main"
        # only on the main thread, whichever of them the wire numbers 0
        names = {l[0]: l[1] for l in h["loops"]}
        assert names == {main_id: "main", other_id: "net-0002"}, h["loops"]
        with open("/proc/%d/task/%d/comm" % (p.pid, next(l[2] for l in h["loops"]
                                                          if l[0] == other_id))) as f:
            assert f.read().strip() == "net-0002"

        # the main loop: the stdin read and the two work items (all issued before the loop's
        # first uv_run) show as pending rows
        c.subscribe(100, loop=main_id)
        assert c.recv_type("update").get("loop", 0) == main_id  # updates say which loop
        # handles by type: what the program opened on this loop (its 50 ms timer), nothing of
        # the shim's (the exporter's async is internal)
        assert handles_by_type(c) == {"timer": 1}

        def entries(a):
            return sorted(c.sites[r[11]]["func"] for r in a["tasks"].values() if r[11] in c.sites)

        acc = collect(c, lambda a: len(entries(a)) >= 3)
        names = sorted(r[1] for r in acc["tasks"].values())
        assert names == ["fs.read", "work", "work"], names
        for r in acc["tasks"].values():
            assert r[2] == 2 and r[3] == 13  # waiting, on the thread pool
            assert r[5] > 0  # wait_since
        assert entries(acc) == ["on_stdin", "sleepy_work", "waiting_work"], entries(acc)
        # the sleeping work item completes after 3 s: its row goes, though it was issued before
        # the shim watched the loop (its "added" row came from the resync)
        acc = collect(c, lambda a: "sleepy_work" not in entries(a))
        assert entries(acc) == ["on_stdin", "waiting_work"], entries(acc)
        time.sleep(0.7)  # loop B's slow timer fires meanwhile: never on the main loop
        acc = collect(c, lambda a: a["updates"] >= 3)
        assert acc["slow"] == [], acc["slow"]
        c.close()

        # the other loop: its 150 ms timer callback, and nothing of the main loop's
        c = atclient.Client(sock)
        c.hello()
        c.subscribe(100, loop=other_id)
        assert c.recv_type("update").get("loop", 0) == other_id
        # the slow timer and the stop async: a program's async stays the program's
        assert handles_by_type(c) == {"timer": 1, "async": 1}
        acc = collect(c, lambda a: len(a["slow"]) >= 1)
        ev = acc["slow"][0]
        assert site_name(c, ev) == "slow_on_b", ev
        assert 140e6 <= ev["dur_ns"] < 1e9, ev
        assert c.tasks == {}  # the main loop's requests are not this loop's
        c.close()
        out, _ = p.communicate(b"bye\n", timeout=15)
        assert p.returncode == 0
        assert out == b"closed 0 0\n"  # uv_loop_close succeeded on both loops
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


# ---- Python on uvloop ------------------------------------------------------------------------------

UVLOOP_APP = r"""
import asyncio, sys, time, uvloop

async def main():
    loop = asyncio.get_running_loop()
    print("started", flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)   # the test is attached
    loop.call_soon(time.sleep, 0.12)
    loop.call_later(0.05, time.sleep, 0.2)
    await asyncio.sleep(0.5)
    await loop.run_in_executor(None, sys.stdin.readline)   # the test has what it needs
    print("done", sum(range(1000)), flush=True)

uvloop.install()
asyncio.run(main(), debug=True)
"""

TOOK = re.compile(r"^Executing <(\w+) .*> took (\d+\.\d+) seconds$", re.M)


@pytest.mark.skipif(not have_uvloop(), reason="python3-uvloop not installed")
def test_uvloop_slow_callbacks_match_uvloop_debug(tmp):
    app = os.path.join(tmp, "app.py")
    with open(app, "w") as f:
        f.write(UVLOOP_APP)
    # without the shim: the reference output and uvloop's own debug-mode durations
    ref = subprocess.run([PY, app], input=b"go\nbye\n", capture_output=True, timeout=30)
    assert ref.returncode == 0, ref.stderr
    sock = os.path.join(tmp, "s")
    p = subprocess.Popen([PY, app], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=shim_env(sock))
    try:
        assert p.stdout.readline() == b"started\n"
        wait_socket(sock, p)
        c = atclient.Client(sock)
        c.hello()
        c.subscribe(100, what=["slow"])
        c.recv_type("update")
        p.stdin.write(b"go\n")
        p.stdin.flush()
        acc = collect(c, lambda a: len(a["slow"]) >= 2)
        c.close()
        rest, err = p.communicate(b"bye\n", timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0
    assert b"started\n" + rest == ref.stdout  # the program's output is unchanged
    theirs = {kind: float(s) for kind, s in TOOK.findall(err.decode())}
    assert set(theirs) == {"Handle", "TimerHandle"}, err
    ours = sorted(ev["dur_ns"] / 1e9 for ev in acc["slow"][:2])
    # call_soon's 0.12 s ran inside uvloop's idle callback, call_later's 0.2 s in a timer's
    # Within 5% (typically 0.5%). Ours is the whole libuv callback: besides the handle uvloop
    # times it includes taking the GIL and uvloop's own logging of the slow handle, which on a
    # loaded 2-core machine can add some ms: allow 20 ms more above, never less than theirs.
    for mine, their in zip(ours, (theirs["Handle"], theirs["TimerHandle"])):
        assert their * 0.95 <= mine <= their * 1.05 + 0.02, (ours, theirs)
    # uvloop's stderr is the same apart from its own timings (no asynctop lines by default)
    assert b"asynctop" not in err


# ---- Lua on luv ------------------------------------------------------------------------------------

LUA_APP = r"""
local uv = require('luv')
local function say(s) io.write(s, "\n"); io.flush() end
local function spin(ms) local t0 = uv.hrtime(); while uv.hrtime() - t0 < ms * 1e6 do end end
local function go()
  local t = uv.new_timer()
  t:start(10, 0, function() say("timer"); t:close() end)
  uv.fs_open("/etc/hostname", "r", 438, function(err, fd)
    uv.fs_close(fd, function() say("fs") end)
  end)
  local w = uv.new_work(function(n) return n * 2 end, function(r) say("work " .. r) end)
  w:queue(21)
  local h
  h = uv.spawn("/bin/true", {args = {}, env = {"PATH=/usr/bin:/bin"}},
               function(code) say("spawn " .. code); h:close() end)
  uv.getaddrinfo("localhost", nil, {}, function(err) say("getaddrinfo " .. tostring(err == nil)) end)
  local busy = uv.new_timer()
  busy:start(100, 0, function() spin(150); say("busy"); busy:close() end)
end
local stdin = uv.new_pipe(false)
stdin:open(0)
say("started")
local started = false
stdin:read_start(function(err, data)  -- "go" starts, end of input ends
  if data and not started then started = true; go() end
  if not data then stdin:close() end
end)
uv.run()
say("end")
"""


@pytest.mark.skipif(lua_with_luv() is None, reason="lua-luv with a Lua interpreter not installed")
def test_luv_program_flows_and_busy_callback_is_slow(tmp):
    lua = lua_with_luv()
    app = os.path.join(tmp, "app.lua")
    with open(app, "w") as f:
        f.write(LUA_APP)
    ref = subprocess.run([lua, app], input=b"go\n", capture_output=True, timeout=30)
    assert ref.returncode == 0, ref.stderr
    sock = os.path.join(tmp, "s")
    p = subprocess.Popen([lua, app], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=shim_env(sock))
    try:
        assert p.stdout.readline() == b"started\n"
        wait_socket(sock, p)
        c = atclient.Client(sock)
        c.hello()
        c.subscribe(100)
        c.recv_type("update")
        p.stdin.write(b"go\n")
        p.stdin.flush()
        acc = collect(c, lambda a: len(a["slow"]) >= 1)
        c.close()
        p.stdin.close()
        rest, err = p.stdout.read(), p.stderr.read()
        p.wait(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, err
    # timers, fs, work, spawn and getaddrinfo all reached the program (completion order varies)
    assert sorted((b"started\n" + rest).splitlines()) == sorted(ref.stdout.splitlines())
    assert len(ref.stdout.splitlines()) == 8
    ev = acc["slow"][0]
    assert ev["kind"] == 1 and 140e6 <= ev["dur_ns"] < 2e9, ev  # the busy timer callback
    assert err == b""


# ---- nvim --headless ---------------------------------------------------------------------------------

@pytest.mark.skipif(shutil.which("nvim") is None, reason="neovim not installed")
def test_nvim_luv_timer_spinning_200ms_is_slow(tmp):
    sock = os.path.join(tmp, "s")
    spin = ("lua local t = vim.loop.new_timer(); t:start(300, 0, function() "
            "local t0 = vim.loop.hrtime(); while vim.loop.hrtime() - t0 < 200e6 do end; "
            "t:close() end)")
    quit = "lua vim.defer_fn(function() vim.cmd('qa!') end, 3000)"
    env = shim_env(sock, HOME=tmp, XDG_STATE_HOME=tmp, XDG_DATA_HOME=tmp, XDG_CONFIG_HOME=tmp)
    p = subprocess.Popen(["nvim", "--headless", "-u", "NONE", "-i", "NONE", "-n",
                          "-c", spin, "-c", quit],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=env)
    try:
        wait_socket(sock, p)
        c = atclient.Client(sock)
        h = c.hello()
        assert h["pid"] == p.pid
        c.subscribe(100, what=["slow"])
        acc = collect(c, lambda a: any(e["dur_ns"] >= 190e6 for e in a["slow"]))
        c.close()
        p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0
    ev = next(e for e in acc["slow"] if e["dur_ns"] >= 190e6)
    assert ev["kind"] == 1 and ev["dur_ns"] < 2e9, ev  # a timer, about 200 ms


def hist_lower(i):
    """Lower bound of wire histogram bucket i (docs/protocol.md "Histogram")."""
    return i if i < 4 else (4 + i % 4) << (i // 4 - 1)


def hist_rank_bucket(counts, q):
    """Index of the bucket holding the sample of rank ceil(q*n)."""
    n = sum(counts)
    rank, seen = max(1, -(-int(q * n * 1000) // 1000)), 0
    for i, c in enumerate(counts):
        seen += c
        if c and seen >= rank:
            return i
    return len(counts) - 1


@pytest.mark.skipif(shutil.which("nvim") is None or not os.environ.get("ASYNCTOP"),
                    reason="neovim or ASYNCTOP not available")
def test_nvim_blocked_200ms_every_second_has_lag_p99_near_200ms(tmp):
    """Issue 14: a luv timer spinning 200 ms every second read "lag p50/99 163us/163us": only
    timers' punctuality was counted. Lag is now poll to poll: everything that became ready
    while the loop spun waited up to 200 ms. Checked in the histogram on the wire and in what
    `asynctop dump --json` shows, against the clock (the spin's own length)."""
    spin = ("lua local t = vim.loop.new_timer(); t:start(100, 1000, function() "
            "local t0 = vim.loop.hrtime(); while vim.loop.hrtime() - t0 < 200e6 do end end)")
    quit = "lua vim.defer_fn(function() vim.cmd('qa!') end, 20000)"
    env = dict(os.environ, LD_PRELOAD=SHIM, XDG_RUNTIME_DIR=tmp, HOME=tmp, XDG_STATE_HOME=tmp,
               XDG_DATA_HOME=tmp, XDG_CONFIG_HOME=tmp)
    env.pop("ASYNCTOP_SOCKET", None)
    p = subprocess.Popen(["nvim", "--headless", "-u", "NONE", "-i", "NONE", "-n",
                          "-c", spin, "-c", quit],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=env)
    try:
        sock = os.path.join(tmp, "asynctop", "%d.sock" % p.pid)
        wait_socket(sock, p)
        c = atclient.Client(sock)
        c.hello()
        c.subscribe(200, what=["loop"])
        lag = []
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            u = c.recv_type("update", timeout=5)
            if "stats" in u:
                lag = u["stats"]["lag"]
                if sum(n for i, n in enumerate(lag) if hist_lower(i) >= 150e6) >= 3:
                    break
        c.close()
        # the process's own histogram: p99 in the 200 ms spins' bucket, not microseconds
        assert sum(lag) >= 3, lag
        b = hist_rank_bucket(lag, 0.99)
        assert 150e6 <= hist_lower(b + 1) and hist_lower(b) <= 250e6, (b, lag)
        # what asynctop shows for it
        r = subprocess.run([os.environ["ASYNCTOP"], "dump", str(p.pid), "--json"],
                           env=dict(os.environ, XDG_RUNTIME_DIR=tmp), capture_output=True,
                           timeout=30)
        assert r.returncode == 0, r.stderr
        loop = json.loads(r.stdout)["loop"]
        print("# nvim lag: %d samples, p99 bucket %d, dump p50 %d ns p99 %d ns"
              % (sum(lag), b, loop["lag_p50_ns"], loop["lag_p99_ns"]))
        assert 150e6 <= loop["lag_p99_ns"] <= 300e6, loop
    finally:
        p.kill()
        p.wait()


# ---- asynctop run -- CMD: the TUI shows a uvloop program's slow callbacks live -----------------

LOOPY_APP = r"""
import asyncio, sys, time, uvloop

async def main():
    loop = asyncio.get_running_loop()
    while True:
        loop.call_soon(time.sleep, 0.15)
        await asyncio.sleep(0.3)

uvloop.install()
asyncio.run(main())
"""


def pids_running(marker):
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [l for l in out.splitlines() if marker in l and "tmux" not in l and "ps -eo" not in l]


# ---- asynctop run: attaches, then says how CMD ended and exits with CMD's status ------------------
# Under tmux through tests/e2e/tui_harness.py (a tmux server of the test's own, never the
# default one other tests and the user share).

RUN_TARGET = os.environ.get("RUN_TARGET", "")
NEEDS_TUI = not os.environ.get("ASYNCTOP") or shutil.which("tmux") is None


@pytest.fixture
def tenv():
    e = tui_harness.Env()
    yield e
    e.close()


def run_tui(tenv, *argv):
    """`asynctop run -- argv` in tmux, 200 columns wide (the final messages name paths)."""
    return tui_harness.Tui(tenv, ["run", "--"] + list(argv), 200, 40)


@pytest.mark.skipif(not have_uvloop() or NEEDS_TUI, reason="needs python3-uvloop, tmux and ASYNCTOP")
def test_asynctop_run_shows_slow_callbacks_and_stops_cmd(tenv):
    app = os.path.join(tenv.dir, "loopy_%d.py" % os.getpid())
    with open(app, "w") as f:
        f.write(LOOPY_APP)
    tui = run_tui(tenv, PY, app)
    try:
        tui.wait(r"python3\[\d+\].* live ", 20)
        assert pids_running(app)
        tui.keys("4")  # the slow-callbacks screen
        screen = tui.wait(r"15[01]ms", 20)
        assert "loop.cpython" in screen  # uvloop's callback, named library+offset
        tui.keys("q")
        # python dies of the SIGTERM sent on quitting: the end asked for, status 0
        screen = tui.wait(r"\[asynctop exited \d+\]", 20)
        assert "[asynctop exited 0]" in screen, screen
        assert re.search(r"stopped \S+python3 with SIGTERM: it was killed by signal SIGTERM; its "
                         r"output is in \S+/output\.log", screen), screen
        assert pids_running(app) == []  # CMD was stopped
    finally:
        tui.close()


def run_until_cmd_ends(tenv, how, n):
    """asynctop run of run_target `how n`, ended through its trigger file while the TUI is
    attached; returns the screen once asynctop has exited (q pressed)."""
    trigger = os.path.join(tenv.dir, "end-now")
    tui = run_tui(tenv, RUN_TARGET, trigger, how, str(n))
    try:
        tui.wait(r"run_target\[\d+\]\s+live", 20)
        open(trigger, "w").close()
        # the header's state once the TUI saw the end: EXITED, or DISCONNECTED when the
        # connection ended with an error rather than EOF (CMD is a zombie until run reaps it)
        tui.wait(r"run_target\[\d+\]\s+(EXITED|DISCONNECTED)", 20)
        tui.keys("q")
        return tui.wait(r"\[asynctop exited \d+\]", 20)
    finally:
        tui.close()


@pytest.mark.skipif(not RUN_TARGET or NEEDS_TUI, reason="needs RUN_TARGET, tmux and ASYNCTOP")
def test_asynctop_run_reports_cmd_exit_status(tenv):
    screen = run_until_cmd_ends(tenv, "exit", 3)
    assert re.search(r"run_target exited with status 3; its output is in \S+/output\.log",
                     screen), screen
    assert "[asynctop exited 3]" in screen, screen  # CMD's status, mirrored
    assert "stopped" not in screen


@pytest.mark.skipif(not RUN_TARGET or NEEDS_TUI, reason="needs RUN_TARGET, tmux and ASYNCTOP")
def test_asynctop_run_reports_the_signal_that_killed_cmd(tenv):
    screen = run_until_cmd_ends(tenv, "signal", int(signal.SIGUSR1))
    assert "run_target was killed by signal SIGUSR1; its output is in" in screen, screen
    assert "[asynctop exited %d]" % (128 + signal.SIGUSR1) in screen, screen


@pytest.mark.skipif(not RUN_TARGET or NEEDS_TUI, reason="needs RUN_TARGET, tmux and ASYNCTOP")
def test_asynctop_run_reports_how_cmd_answered_its_sigterm(tenv):
    """On quit CMD gets SIGTERM; one that exits with a status of its own (as kresd does) has
    that status reported and mirrored."""
    tui = run_tui(tenv, RUN_TARGET, "-", "term", "7")
    try:
        tui.wait(r"run_target\[\d+\]\s+live", 20)
        tui.keys("q")
        screen = tui.wait(r"\[asynctop exited \d+\]", 20)
    finally:
        tui.close()
    assert "stopped %s with SIGTERM: it exited with status 7" % RUN_TARGET in screen, screen
    assert "[asynctop exited 7]" in screen, screen


# ---- the shim never changes how a program ends: kresd on SIGTERM -------------------------------

KRESD = shutil.which("kresd") or ("/usr/sbin/kresd" if os.path.exists("/usr/sbin/kresd") else None)

# Loopback only, and nothing that would query the Internet (priming, trust-anchor refresh,
# time-skew checks): the resolver just listens until SIGTERM.
KRESD_CONFIG = """
net.listen('127.0.0.1', %d)
modules.unload('ta_update')
modules.unload('priming')
modules.unload('detect_time_skew')
modules.unload('detect_time_jump')
trust_anchors.remove('.')
cache.size = 10*MB
"""


def free_loopback_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kresd_exit_on_sigterm(rundir, env, sock=None):
    """Runs kresd in rundir until it answers on its port (and, given sock, until the shim's
    socket is there: its loop is watched), sends SIGTERM, returns its exit status (negative:
    the signal that killed it) and its output."""
    os.makedirs(rundir)
    port = free_loopback_port()
    with open(os.path.join(rundir, "config"), "w") as f:
        f.write(KRESD_CONFIG % port)
    p = subprocess.Popen([KRESD, "-n", "-c", "config", "."], cwd=rundir, env=env,
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60  # a hang guard only
        while True:
            assert p.poll() is None, "kresd exited early: %s" % p.stdout.read()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "kresd never listened on port %d" % port
                time.sleep(0.05)
        if sock is not None:
            wait_socket(sock, p)
        p.send_signal(signal.SIGTERM)
        out, _ = p.communicate(timeout=30)
        return p.returncode, out.decode(errors="replace")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


@pytest.mark.skipif(KRESD is None, reason="kresd not installed (Debian package knot-resolver)")
def test_kresd_ends_on_sigterm_as_without_the_shim(tmp):
    """kresd closes its loop with handles still queued whose memory it freed; the real
    uv_loop_close returns UV_EBUSY at the first one, the shim must not touch the rest."""
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    plain, plain_out = kresd_exit_on_sigterm(os.path.join(tmp, "plain"), env)
    assert plain == 0, plain_out
    sock = os.path.join(tmp, "s")
    shimmed, out = kresd_exit_on_sigterm(os.path.join(tmp, "shim"), shim_env(sock), sock)
    assert shimmed == plain, "under the shim kresd ended with %d, without it %d:\n%s" % (
        shimmed, plain, out)


# ---- statically linked libuv cannot be interposed: the shim says so -------------------------------

@pytest.mark.skipif(not os.environ.get("STATIC_UV_TARGET"), reason="STATIC_UV_TARGET not set")
def test_static_libuv_is_detected_and_reported(tmp):
    exe = os.environ["STATIC_UV_TARGET"]
    r = subprocess.run([exe], env=shim_env(os.path.join(tmp, "s")), capture_output=True,
                       timeout=30)
    assert r.returncode == 0 and r.stdout == b"ran 0\n"  # the program is not disturbed
    err = r.stderr.decode()
    assert "libuv is linked statically into %s" % exe in err, err
    assert "cannot be interposed" in err
    assert not os.path.exists(os.path.join(tmp, "s"))  # and the shim stays out of the way


@pytest.mark.skipif(not os.environ.get("STATIC_UV_TARGET") or not os.environ.get("ASYNCTOP"),
                    reason="STATIC_UV_TARGET or ASYNCTOP not set")
def test_asynctop_run_fails_at_once_on_static_libuv(tmp):
    """The shim has said that libuv is linked statically: asynctop run says so and stops,
    instead of waiting 10 s for a socket that cannot come (no terminal needed: the TUI is
    never reached)."""
    exe = os.environ["STATIC_UV_TARGET"]
    r = subprocess.run([os.environ["ASYNCTOP"], "run", "--", exe, "forever"],
                       env=dict(os.environ, XDG_RUNTIME_DIR=tmp), capture_output=True,
                       text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == 4, r  # no loop can be watched
    assert "asynctop-preload: libuv is linked statically into %s" % exe in r.stderr, r.stderr
    assert "asynctop run: %s has libuv linked statically" % exe in r.stderr, r.stderr
    assert "within 10 s" not in r.stderr, r.stderr
    assert "stopped %s with SIGTERM: it was killed by signal SIGTERM" % exe in r.stderr, r.stderr


# ---- stacks under the shim: the program's frames, never the shim's trampolines -------------------

SHIM_FILES = ("interpose.c", "preload.c", "table.c")


@pytest.mark.skipif(not RUN_TARGET, reason="RUN_TARGET not set")
def test_stacks_under_the_shim_hide_its_trampolines(tmp):
    """Issue 14: `tr_timer interpose.c:NNN` showed between libuv and the program's callback.
    The stacks sampled while the loop is stuck (the live blocked state, and a loop_stack
    answer) have the program's frames in order and none of the shim's."""
    sock = os.path.join(tmp, "s")
    trigger = os.path.join(tmp, "go")
    p = subprocess.Popen([RUN_TARGET, trigger, "stuck", "0"], stdout=subprocess.DEVNULL,
                         env=shim_env(sock))
    try:
        wait_socket(sock, p)
        c = atclient.Client(sock)
        c.hello()
        c.subscribe(100)
        run = None
        deadline = time.monotonic() + 30
        while run is None and time.monotonic() < deadline:
            r = c.recv_type("update").get("running")
            if r and r.get("stack"):
                run = r
        assert run is not None, "no blocked state with a stack"
        blocked = [(c.sites[s]["func"], c.sites[s].get("file") or "")
                   for s in c.stacks[run["stack"]]]
        r = c.response(c.request("loop_stack"))
        assert r["status"] == 0, r
        answered = [(f[1], f[2] or "") for f in r["stack"]]
        for frames in (blocked, answered):
            assert not [f for f in frames if f[0].startswith("tr_") or
                        f[1].endswith(SHIM_FILES)], frames
            assert "on_tick" in [f[0] for f in frames], frames  # the program's callback
        c.close()
        open(trigger, "w").close()
        assert p.wait(timeout=30) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


# ---- debug mode: where an in-flight request was issued ---------------------------------------------

@pytest.mark.skipif(not TARGET, reason="PRELOAD_TARGET not set")
def test_inflight_request_detail_has_creation_stack_in_debug_mode(tmp):
    sock = os.path.join(tmp, "s")
    p = subprocess.Popen([TARGET], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         env=shim_env(sock, ASYNCTOP_DEBUG="1"))
    try:
        wait_socket(sock, p)
        c = atclient.Client(sock)
        h = c.hello()
        main_id = next(l[0] for l in h["loops"] if l[2] == p.pid)
        c.subscribe(100, loop=main_id)
        acc = collect(c, lambda a: len(a["tasks"]) >= 2)
        row = next(r for r in acc["tasks"].values() if r[1] == "fs.read")
        assert c.sites[row[10]]["func"] == "main"  # create_site: the program's call
        r = c.response(c.request("task_detail", task=row[0], loop=main_id))
        assert r["status"] == 0, r
        d = r["detail"]
        assert d["task"][0] == row[0]
        assert d["wait_desc"].startswith("fs.read (in flight ")
        assert "main" in [f[1] for f in d["create"]], d["create"]
        c.close()
        out, _ = p.communicate(b"bye\n", timeout=15)
        assert p.returncode == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


@pytest.mark.skipif(not os.environ.get("ASYNCTOP"), reason="ASYNCTOP not set")
def test_asynctop_run_without_a_loop_says_why(tmp):
    env = dict(os.environ, XDG_RUNTIME_DIR=tmp)
    at = os.environ["ASYNCTOP"]
    r = subprocess.run([at, "run", "--", "/bin/true"], env=env, capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 4  # no runtime to attach to
    assert "/bin/true exited with status 0 before a libuv loop ran" in r.stderr
    r = subprocess.run([at, "run", "--", os.path.join(tmp, "missing")], env=env,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 4 and "cannot run" in r.stderr
    assert "exited with status 127 before a libuv loop ran" in r.stderr
    r = subprocess.run([at, "run"], env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "usage" in r.stderr
    r = subprocess.run([at, "run", "--", "/bin/true"], capture_output=True, text=True, timeout=30,
                       env=dict(env, ASYNCTOP_PRELOAD_SO=os.path.join(tmp, "nope.so")))
    assert r.returncode == 1 and "is missing" in r.stderr


# ---- fork: children of a watched program run loops of their own ---------------------------------

@pytest.mark.skipif(not os.environ.get("FORK_UV_TARGET"), reason="FORK_UV_TARGET not set")
def test_fork_storm_children_run_loops_and_never_hang(tmp):
    """1,000 children forked from a busy loop's callback (pool work in flight) while the shim's
    exporter serves a client; each runs a loop, which the shim watches and exports on the
    child's own socket. No child may hang on a lock a parent thread held at the fork."""
    env = shim_env("", XDG_RUNTIME_DIR=tmp)
    del env["ASYNCTOP_SOCKET"]  # each process on <pid>.sock in tmp/asynctop
    p = subprocess.Popen([os.environ["FORK_UV_TARGET"]], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, env=env)
    try:
        pid = int(p.stdout.readline().split()[1])
        sock = os.path.join(tmp, "asynctop", "%d.sock" % pid)
        wait_socket(sock, p)
        c = atclient.Client(sock)
        c.hello()
        c.subscribe(100)
        assert c.recv_type("update")["full"]
        p.stdin.write(b"forks 1000 30\n")  # 30 s: a hang guard, never reached by a live child
        p.stdin.flush()
        line = p.stdout.readline().decode()
        assert line.startswith("FORKS n=1000 ok=1000 hung=0 failed=0 "), line
        # the parent's exporter served on throughout and still does
        s0 = c.recv_type("update")["seq"]
        assert c.recv_type("update")["seq"] == s0 + 1
        c.close()
        p.stdin.close()
        assert p.wait(timeout=30) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
