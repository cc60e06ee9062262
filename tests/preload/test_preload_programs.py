"""test_preload_programs.py: real libuv programs run under libasynctop-preload.so and watched
through the socket with the independent client (tests/e2e/atclient.py): a C program with two
loops on two threads and requests in flight, Python on uvloop, Lua on luv, nvim --headless.

Run by meson (suite e2e) with ASYNCTOP_PRELOAD_SO and PRELOAD_TARGET set; under
/usr/bin/python3 with python3-pytest, python3-cbor2, python3-uvloop.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
import atclient  # noqa: E402

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

        # the main loop: the stdin read and the waiting work item show as pending rows
        c.subscribe(100, loop=main_id)
        acc = collect(c, lambda a: len(a["tasks"]) >= 2)
        names = sorted(r[1] for r in acc["tasks"].values())
        assert names == ["fs.read", "work"], names
        for r in acc["tasks"].values():
            assert r[2] == 2 and r[3] == 13  # waiting, on the thread pool
            assert r[5] > 0  # wait_since
        entries = {c.sites[r[11]]["func"] for r in acc["tasks"].values() if r[11] in c.sites}
        assert {"on_stdin", "waiting_work"} <= entries, entries
        time.sleep(0.7)  # loop B's slow timer fires meanwhile: never on the main loop
        acc = collect(c, lambda a: a["updates"] >= 3)
        assert acc["slow"] == [], acc["slow"]
        c.close()

        # the other loop: its 150 ms timer callback, and nothing of the main loop's
        c = atclient.Client(sock)
        c.hello()
        c.subscribe(100, loop=other_id)
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
    ref = subprocess.run([PY, app], input=b"go\n", capture_output=True, timeout=30)
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
        rest, err = p.communicate(timeout=30)
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
    for mine, their in zip(ours, (theirs["Handle"], theirs["TimerHandle"])):
        assert abs(mine - their) <= 0.05 * their, (ours, theirs)
    # uvloop's stderr is the same apart from its own timings (no asynctop lines by default)
    assert b"asynctop" not in err
