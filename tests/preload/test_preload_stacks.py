"""test_preload_stacks.py: the stacks asynctop samples in real programs nobody here wrote, built
the usual way (-O2, no frame pointers, shipped without .symtab), under libasynctop-preload.so:
Python on Debian's python3-uvloop blocked in time.sleep, nvim --headless spinning in a luv
timer (interpreted and JIT-compiled Lua), BIND's named loading a large zone.

Every frame is checked against an independent source: the process's own /proc/PID/maps, read
while it runs, says which file each address lies in. Run by meson (suite e2e) with
ASYNCTOP_PRELOAD_SO set; under /usr/bin/python3 with python3-pytest, python3-cbor2,
python3-uvloop. What the stacks reach and why is in docs/preload.md.
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import test_preload_programs as tpp  # noqa: E402  (its helpers; its tests are not collected here)
from test_preload_programs import atclient, collect, shim_env, tmp, wait_socket  # noqa: E402,F401

PY = tpp.PY


def read_maps(pid):
    """[(lo, hi, file basename or '')] of the process's mappings."""
    out = []
    with open("/proc/%d/maps" % pid) as f:
        for line in f:
            parts = line.split(None, 5)
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            out.append((lo, hi, os.path.basename(parts[5].strip()) if len(parts) > 5 else ""))
    return out


def file_of(maps, addr):
    for lo, hi, name in maps:
        if lo <= addr < hi:
            return name
    return None


def frames(c, stack_id, maps):
    """The stack's frames, innermost first, as (name, file the address lies in). Checks each
    name against the maps: 'lib+0xoff' names the file the address is in."""
    out = []
    for s in c.stacks[stack_id]:
        site = c.sites[s]
        name, f = site.get("func") or "", file_of(maps, site["addr"])
        assert name and name != "?", site
        m = re.match(r"^(.*)\+0x[0-9a-f]+$", name)
        if m and m.group(1) != "[anon]":
            assert m.group(1) == f, (name, f, hex(site["addr"]))
        out.append((name, f))
    return out


def collapse(seq):
    """Consecutive duplicates removed."""
    return [x for i, x in enumerate(seq) if i == 0 or seq[i - 1] != x]


def show(fr):
    return "\n".join("  %-50s %s" % f for f in fr)


# ---- Python on uvloop: a handler blocked in time.sleep --------------------------------------

UVLOOP_SLEEP_APP = r"""
import asyncio, sys, time, uvloop

async def main():
    loop = asyncio.get_running_loop()
    print("started", flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)   # the test is attached
    loop.call_soon(time.sleep, 1.0)
    await asyncio.sleep(1.2)
    await loop.run_in_executor(None, sys.stdin.readline)   # the test has read the maps
    print("done", flush=True)

uvloop.install()
asyncio.run(main())
"""


@pytest.mark.skipif(not tpp.have_uvloop(), reason="python3-uvloop not installed")
def test_uvloop_sleeping_handler_stack_reaches_uv_run(tmp):
    """Issue 16: from the sleep's system call in libc, through CPython's time.sleep and
    uvloop's compiled Cython, down to libuv's uv_run and on to Python's main: none of these
    has frame pointers; the CFI unwind of the blocked thread's stack (registers from
    /proc/self/task/TID/syscall) gets through all of them."""
    app = os.path.join(tmp, "app.py")
    with open(app, "w") as f:
        f.write(UVLOOP_SLEEP_APP)
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
        acc = collect(c, lambda a: any(e.get("stack") is not None for e in a["slow"]))
        maps = read_maps(p.pid)
        ev = next(e for e in acc["slow"] if e.get("stack") is not None)
        fr = frames(c, ev["stack"], maps)
        c.close()
        out, err = p.communicate(b"bye\n", timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, err
    print("# uvloop time.sleep stack, %d frames:\n%s" % (len(fr), show(fr)))
    assert ev["dur_ns"] >= 0.9e9, ev
    names = [n for n, _ in fr]
    assert names[0].startswith("clock_nanosleep") and fr[0][1] == "libc.so.6", show(fr)
    k = names.index("uv_run")
    assert k >= 5, show(fr)  # at least 6 frames from the system call to uv_run
    files = collapse([f for _, f in fr[:k + 1]])
    assert len(files) == 4, show(fr)
    assert files[0] == "libc.so.6", show(fr)
    assert re.match(r"^python3\.\d+$", files[1]), show(fr)  # time.sleep (static: module+off)
    assert re.match(r"^loop\.cpython-.*\.so$", files[2]), show(fr)  # uvloop's Handle._run
    assert files[3].startswith("libuv.so.1"), show(fr)
    # and on, through the interpreter that called loop.run_until_complete, to Python's main
    rest = names[k + 1:]
    assert "_PyEval_EvalFrameDefault" in rest and "Py_BytesMain" in rest, show(fr)
    assert rest.index("_PyEval_EvalFrameDefault") < rest.index("Py_BytesMain"), show(fr)


# ---- Python on uvloop: an idle loop's stack on request -----------------------------------------

UVLOOP_IDLE_APP = r"""
import asyncio, sys, uvloop

async def main():
    loop = asyncio.get_running_loop()
    print("started", flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)   # idle until the test is done

uvloop.install()
asyncio.run(main())
"""


@pytest.mark.skipif(not tpp.have_uvloop(), reason="python3-uvloop not installed")
def test_uvloop_idle_loop_stack_is_its_poll_every_time(tmp):
    """Issue 16, the loop thread's stack on request: a uvloop loop idle in its poll, asked 20
    times, answers its poll every time — the shim's epoll_wait (it makes the loop's system call
    itself), the call in libuv's uv__io_poll, uv_run, uvloop, CPython, down to _start, each
    frame in the file its name says. Before: the shim's wrapper, which keeps a frame pointer,
    was unwound from a stale frame record (3 frames in python3.11, the last one garbage) or
    hidden, and one request in five caught the loop woken by the exporter's own inventory
    request."""
    app = os.path.join(tmp, "app.py")
    with open(app, "w") as f:
        f.write(UVLOOP_IDLE_APP)
    sock = os.path.join(tmp, "s")
    p = subprocess.Popen([PY, app], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=shim_env(sock))
    stacks = []
    try:
        assert p.stdout.readline() == b"started\n"
        wait_socket(sock, p)
        c = atclient.Client(sock)
        c.hello()
        c.subscribe(100, what=["slow"])
        c.recv_type("update")
        for _ in range(20):
            r = c.response(c.request("loop_stack"))
            assert r["status"] == 0, r
            stacks.append(r["stack"])
        maps = read_maps(p.pid)
        c.close()
        out, err = p.communicate(b"bye\n", timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, err
    shim = os.path.basename(tpp.SHIM)
    for st in stacks:
        fr = []
        for loc in st:  # [addr, func, file, line, build_id]
            name, f = loc[1] or "", file_of(maps, loc[0])
            assert name and name != "?", loc
            m = re.match(r"^(.*)\+0x[0-9a-f]+$", name)
            if m:
                assert m.group(1) == f, (name, f, hex(loc[0]))
            fr.append((name, f))
        names = [n for n, _ in fr]
        assert names[0] in ("epoll_wait", "epoll_pwait") and fr[0][1] == shim, show(fr)
        assert fr[1][1].startswith("libuv.so.1") and names[2] == "uv_run", show(fr)
        assert fr[2][1].startswith("libuv.so.1"), show(fr)
        files = collapse([f for _, f in fr[2:]])
        assert re.match(r"^loop\.cpython-.*\.so$", files[1]), show(fr)  # uvloop's run_forever
        assert re.match(r"^python3\.\d+$", files[2]), show(fr)
        assert "Py_BytesMain" in names and names[-1] == "_start", show(fr)
        assert st == stacks[0], "an idle loop's stack changed:\n" + show(fr)
    print("# idle uvloop loop, %d frames, 20 times:\n%s" % (len(fr), show(fr)))


UVLOOP_TICKING_APP = r"""
import asyncio, sys, uvloop

def deep(n):
    return deep(n - 1) if n else sum(range(50))

async def main():
    loop = asyncio.get_running_loop()
    def tick():
        deep(30)
        loop.call_later(0.002, tick)
    tick()
    print("started", flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)   # ticking until the test is done

uvloop.install()
asyncio.run(main())
"""


@pytest.mark.skipif(not tpp.have_uvloop(), reason="python3-uvloop not installed")
def test_uvloop_ticking_loop_stacks_are_never_garbage(tmp):
    """The same loop woken every 2 ms by a timer whose callback recurses 30 Python calls deep,
    asked 100 times: every answer is a whole stack (named frames in the files they name, uv_run,
    down to _start); one taken in the poll starts epoll_wait, libuv. Before: half of those in
    the poll went epoll_wait, uvloop, then garbage — a stale record in the shim's wrapper frame,
    left by uvloop's call to another interposed function a little below epoll_wait, was taken
    for the wrapper's (its call was judged by 'target at most 64 KiB below the pc' only)."""
    app = os.path.join(tmp, "app.py")
    with open(app, "w") as f:
        f.write(UVLOOP_TICKING_APP)
    sock = os.path.join(tmp, "s")
    p = subprocess.Popen([PY, app], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=shim_env(sock))
    stacks = []
    try:
        assert p.stdout.readline() == b"started\n"
        wait_socket(sock, p)
        c = atclient.Client(sock)
        c.hello()
        c.subscribe(1000, what=["slow"])
        c.recv_type("update")
        for _ in range(100):
            r = c.response(c.request("loop_stack"))
            assert r["status"] == 0, r
            stacks.append(r["stack"])
        maps = read_maps(p.pid)
        c.close()
        out, err = p.communicate(b"bye\n", timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, err
    in_poll = 0
    for st in stacks:
        fr = [(loc[1] or "", file_of(maps, loc[0])) for loc in st]
        for (name, f), loc in zip(fr, st):
            assert name and name != "?", show(fr)
            m = re.match(r"^(.*)\+0x[0-9a-f]+$", name)
            if m:
                assert m.group(1) == f, (show(fr), hex(loc[0]))
        names = [n for n, _ in fr]
        assert "uv_run" in names and names[-1] == "_start", show(fr)
        if names[0] in ("epoll_wait", "epoll_pwait"):
            in_poll += 1
            assert fr[1][1].startswith("libuv.so.1") and names[2] == "uv_run", show(fr)
    print("# ticking uvloop loop: %d of 100 stacks taken in the poll" % in_poll)


# ---- nvim --headless: a luv timer spinning, in interpreted and in JIT-compiled Lua -------------

# The first timer's callback runs in the interpreter (lj_vm): jit.off keeps LuaJIT from
# compiling it (else it would compile the loop into traces stitched around the hrtime calls,
# and a sample would land in a trace half of the time); the second spins in pure arithmetic,
# which LuaJIT compiles into a trace in an anonymous mapping within 2 GB of libluajit.
NVIM_SPIN = ("lua local t = vim.loop.new_timer(); local function cb() "
             "local t0 = vim.loop.hrtime(); while vim.loop.hrtime() - t0 < 300e6 do end; "
             "t:close() end; jit.off(cb, true); t:start(300, 0, cb)")
NVIM_JIT = ("lua local t = vim.loop.new_timer(); t:start(1000, 0, function() "
            "local x = 0; for i = 1, 1e8 do x = (x + i) % 1000003 end; vim.g.x = x; "
            "t:close() end)")


def nvim_slow_stacks(tmp, cmds, n):
    """Runs nvim --headless with cmds under the shim until n slow events with a stack came,
    then ends it; returns them as [(event, frames)]."""
    sock = os.path.join(tmp, "s")
    env = shim_env(sock, HOME=tmp, XDG_STATE_HOME=tmp, XDG_DATA_HOME=tmp, XDG_CONFIG_HOME=tmp)
    argv = ["nvim", "--headless", "-u", "NONE", "-i", "NONE", "-n"]
    for cmd in cmds:
        argv += ["-c", cmd]
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=env)
    try:
        wait_socket(sock, p)
        c = atclient.Client(sock)
        c.hello()
        c.subscribe(100, what=["slow"])
        acc = collect(c, lambda a: len([e for e in a["slow"] if e.get("stack") is not None])
                      >= n, timeout=60)
        maps = read_maps(p.pid)
        evs = [e for e in acc["slow"] if e.get("stack") is not None][:n]
        got = [(e, frames(c, e["stack"], maps)) for e in evs]
        c.close()
    finally:
        p.kill()
        p.communicate(timeout=60)
    return got


@pytest.mark.skipif(shutil.which("nvim") is None, reason="neovim not installed")
def test_nvim_luv_timer_stacks_interpreted_and_jit(tmp):
    got = nvim_slow_stacks(tmp, [NVIM_SPIN, NVIM_JIT], 2)
    (ev1, interp), (ev2, jit) = got
    print("# nvim interpreted Lua, %d frames:\n%s" % (len(interp), show(interp)))
    print("# nvim JIT-compiled Lua, %d frames:\n%s" % (len(jit), show(jit)))
    # Interpreted: the sample lands in lj_vm (hand-written CFI in libluajit, no symbol in
    # .dynsym: module+offset) or in the hrtime call under it (luv, libuv, libc, vdso); CFI
    # carries it through lua_pcall, nvim's luv callback, libuv's timer run, uv_run, to main.
    names = [n for n, _ in interp]
    for a, b in (("lua_pcall", "uv_run"), ("uv_run", "main")):
        assert names.index(a) < names.index(b), show(interp)
    k = names.index("lua_pcall")
    assert k >= 1 and any(f.startswith("libluajit") for _, f in interp[:k]), show(interp)
    assert interp[k + 1][1] == "nvim", show(interp)  # the callback luv calls
    assert len(interp) >= 10, show(interp)
    # JIT-compiled: the trace's machine code lies in an anonymous mapping with no unwind
    # information and no frame-pointer chain (it runs on lj_vm's C frame): one frame, named
    # by its address, never a module it is not in.
    assert jit[0][1] == "", show(jit)
    assert jit[0][0].startswith("[anon]+0x"), show(jit)
    assert len(jit) == 1, show(jit)


# ---- BIND's named loading a large zone ---------------------------------------------------------

NAMED = shutil.which("named") or ("/usr/sbin/named" if os.path.exists("/usr/sbin/named") else None)
ZONE_RECORDS = 200000  # about 2 s of loading in one callback on this machine

# Loopback only, its own port, no recursion, no control channel, nothing that reaches out.
NAMED_CONF = """options {
    directory "%(dir)s"; pid-file "named.pid"; managed-keys-directory "%(dir)s";
    listen-on port %(port)d { 127.0.0.1; }; listen-on-v6 { none; };
    recursion no; dnssec-validation no; session-keyfile none; notify no;
};
controls { };
"""
NAMED_ZONE = 'zone "big.test" { type primary; file "big.db"; };\n'


def write_zone(path, n):
    with open(path, "w") as f:
        f.write("$TTL 3600\n@ IN SOA ns.big.test. host.big.test. 1 3600 600 86400 3600\n"
                "@ IN NS ns.big.test.\nns IN A 127.0.0.1\n")
        f.write("".join("h%d IN A 10.%d.%d.%d\n" % (i, (i >> 16) & 255, (i >> 8) & 255, i & 255)
                        for i in range(n)))


@pytest.mark.skipif(NAMED is None, reason="named not installed (Debian package bind9)")
def test_named_zone_load_stack_names_libdns_and_libisc(tmp):
    """Issue 16: named loading a large zone was a slow callback with a 1-2 frame stack. named
    starts with no zone; once every loop is watched, the zone is added to its configuration
    and SIGHUP makes it load it: one callback on one of its loops (threads isc-net-NNNN)."""
    conf = os.path.join(tmp, "named.conf")
    base = NAMED_CONF % {"dir": tmp, "port": tpp.free_loopback_port()}
    with open(conf, "w") as f:
        f.write(base)
    write_zone(os.path.join(tmp, "big.db"), ZONE_RECORDS)
    sock = os.path.join(tmp, "s")
    log = os.path.join(tmp, "named.log")

    def named_log():
        with open(log, "rb") as f:
            return f.read().decode(errors="replace")

    def wait_log(line):  # hang guard only
        deadline = time.monotonic() + 60
        while re.search(r"^\S+ \S+ %s$" % re.escape(line), named_log(), re.M) is None:
            assert p.poll() is None, "named exited: %s" % named_log()
            assert time.monotonic() < deadline, "named never logged %r: %s" % (line, named_log())
            time.sleep(0.05)

    clients = []
    with open(log, "wb") as out:
        p = subprocess.Popen([NAMED, "-g", "-4", "-c", conf, "-u", "root"], cwd=tmp,
                             env=shim_env(sock), stdin=subprocess.DEVNULL, stdout=out,
                             stderr=subprocess.STDOUT)
    try:
        wait_log("running")  # every loop made and watched
        wait_socket(sock, p)
        c = atclient.Client(sock)
        loops = c.hello()["loops"]
        c.close()
        for loop in loops:  # one client per loop: the load runs on one of them
            lc = atclient.Client(sock)
            lc.hello()
            lc.subscribe(100, what=["slow"], loop=loop[0])
            lc.recv_type("update")
            clients.append(lc)
        with open(conf, "w") as f:
            f.write(base + NAMED_ZONE)
        maps = read_maps(p.pid)
        p.send_signal(signal.SIGHUP)
        # The load's own callback: one of its profile's stacks (`stack` is the heaviest) lies in
        # dns_master_loadfile. named runs other slow callbacks around a load (walking the new
        # tree: dns_rbtnodechain_next under isc_task_run), and one may come first: each slow
        # event's stacks are checked (frames()) and the load's is looked for among them.
        got, seen = None, []
        deadline = time.monotonic() + 60
        while got is None and time.monotonic() < deadline:
            for lc in clients:
                try:
                    u = lc.recv_type("update", timeout=0.2)
                except TimeoutError:
                    continue
                for ev in u.get("slow", []):
                    if ev.get("stack") is None or got is not None:
                        continue
                    sids = [ev["stack"]] + [s for s, _ in ev.get("profile", {}).get("stacks", [])]
                    for sid in sids:
                        fr = frames(lc, sid, maps)
                        seen.append(show(fr))
                        if got is None and any(n == "dns_master_loadfile" for n, _ in fr):
                            got = (ev, lc, fr)
        assert got is not None, ("no slow event's stack in dns_master_loadfile while named loaded "
                                 "the zone; stacks seen:\n" + "\n--\n".join(seen))
        ev, lc, fr = got
        # Loops are named after their threads, which named names once they run (the
        # exporter reads the names again at most once a second: asked after the load).
        c = atclient.Client(sock)
        loops = c.hello()["loops"]
        c.close()
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=60)
    finally:
        for lc in clients:
            lc.close()
        if p.poll() is None:
            p.kill()
            p.wait()
    out = named_log()
    assert p.returncode == 0, out
    assert "zone big.test/IN: loaded serial 1" in out, out
    assert loops and all(re.match(r"^isc-net-\d+$", l[1]) for l in loops), loops
    print("# named zone load (%d records, %.2f s callback), %d frames:\n%s" % (
        ZONE_RECORDS, ev["dur_ns"] / 1e9, len(fr), show(fr)))
    names = [n for n, _ in fr]
    # every frame named by a symbol or by module+offset of the file it lies in (frames())
    order = ["dns_master_loadfile", "isc_task_run", "uv_run", "isc__trampoline_run",
             "start_thread"]
    assert all(n in names for n in order), show(fr)
    assert [names.index(n) for n in order] == sorted(names.index(n) for n in order), show(fr)
    k = names.index("dns_master_loadfile")
    # inside the load: the parser's frames (libdns), maybe libisc, libc or jemalloc under them
    assert all(f for _, f in fr[:k]), show(fr)  # each in a file
    assert any(f.startswith("libdns-") for _, f in fr[:k]), show(fr)
    assert len(fr) >= 15, show(fr)
