"""test_export_tasks.py: the tasks layer's provider end to end — a real program on at_loop + tasks
(tasks_target), its exporter's real socket, and the independent CBOR client (atclient.py).
Run by meson with pytest under /usr/bin/python3; TASKS_TARGET names the program.
"""
import errno
import os
import shutil
import sys
import tempfile
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import atclient  # noqa: E402
from atclient import Client  # noqa: E402

TARGET = os.environ.get("TASKS_TARGET")

# docs/protocol.md: task row fields and numbers
ID, NAME, STATE, WAIT_KIND, WAIT_OBJ, WAIT_SINCE, BUSY, STEPS, PARENT = range(9)
CREATED, CREATE_SITE, ENTRY_SITE = 9, 10, 11
READY, RUNNING, WAITING, DONE, CANCELLED, FAILED = range(6)
W_TASK, W_SLEEP, W_LOCK, W_EVENT, W_SEM, W_QUEUE = 2, 3, 8, 9, 10, 12
NO_SUCH_TASK = 12

NAMED = ["sleeper", "event-waiter", "lock-holder", "lock-waiter", "sem-waiter", "queue-putter",
         "queue-getter", "parent", "child", "deep", "failing", "cancellable", "number-cruncher"]


class Target(atclient.Program):
    """tasks_target.c, on a socket of the test's own: READY <pid>."""

    def __init__(self, tmp, env=None):
        self.path = os.path.join(tmp, "t.sock")
        e = dict(os.environ)
        e["ASYNCTOP_SOCKET"] = self.path
        e.pop("ASYNCTOP_DEBUG", None)
        e.update(env or {})
        super().__init__([TARGET], e)


@pytest.fixture
def env():
    tmp = tempfile.mkdtemp(prefix="at-tasks-")
    os.chmod(tmp, 0o700)
    made = {"targets": [], "clients": []}

    def target(**kw):
        t = Target(tmp, **kw)
        made["targets"].append(t)
        return t

    def client(t, interval_ms=100):
        c = Client(t.path, timeout=30)
        made["clients"].append(c)
        c.hello()
        c.subscribe(interval_ms)
        snap = c.recv_type("update", timeout=30)
        assert snap["full"]
        return c, snap

    yield target, client
    for c in made["clients"]:
        c.close()
    for t in made["targets"]:
        if t.p.poll() is None:
            t.p.kill()
            t.p.wait()
    shutil.rmtree(tmp, ignore_errors=True)


def by_name(c):
    return {row[NAME]: row for row in c.tasks.values()}


def wait_for(c, pred, timeout=20, what="condition"):
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "timed out waiting for " + what
        c.recv_type("update", timeout=max(0.1, deadline - time.monotonic()))


def settled(c):
    """Every named task is in the table and in the state the target puts it in."""
    rows = by_name(c)
    if not all(n in rows for n in NAMED):
        return False
    return rows["failing"][STATE] == FAILED and all(
        rows[n][STATE] == WAITING for n in NAMED if n != "failing")


def funcs(locs):
    # gcc may name a clone "fn.constprop.0"
    return [(f[1] or "").split(".")[0] for f in locs]


def test_snapshot_has_the_tasks_with_states_waits_and_parents(env):
    target, client = env
    t = target()
    c, _ = client(t)
    wait_for(c, lambda: settled(c), what="the named tasks to settle")
    rows = by_name(c)
    expect = {"sleeper": W_SLEEP, "event-waiter": W_EVENT, "lock-holder": W_EVENT,
              "lock-waiter": W_LOCK, "sem-waiter": W_SEM, "queue-putter": W_QUEUE,
              "queue-getter": W_QUEUE, "parent": W_TASK, "child": W_EVENT, "deep": W_EVENT,
              "cancellable": W_SLEEP, "number-cruncher": W_EVENT}
    for name, kind in expect.items():
        assert rows[name][WAIT_KIND] == kind, (name, rows[name])
        assert rows[name][WAIT_SINCE] > 0, (name, rows[name])
    assert rows["failing"][WAIT_KIND] == 0
    # the parent waits on its child, which it spawned
    assert rows["parent"][WAIT_OBJ] == rows["child"][ID]
    assert rows["child"][PARENT] == rows["parent"][ID]
    assert rows["sleeper"][PARENT] == 0
    # the lock waiter names the lock, and the putter and getter their (different) queues
    assert rows["lock-waiter"][WAIT_OBJ] != 0
    assert rows["queue-putter"][WAIT_OBJ] != rows["queue-getter"][WAIT_OBJ]
    # the entry site is the task's function, the create site where it was spawned
    assert c.sites[rows["sleeper"][ENTRY_SITE]]["func"] == "sleeper"
    assert c.sites[rows["deep"][ENTRY_SITE]]["func"] == "deep"
    assert c.sites[rows["deep"][CREATE_SITE]]["func"].split(".")[0] == "spawn_deep_task"
    assert rows["queue-putter"][STEPS] >= 1 and rows["queue-putter"][CREATED] > 0
    # a client that connects now gets the same table in its first snapshot
    c2, snap = client(t)
    assert {r[NAME] for r in snap["tasks_new"]} >= set(NAMED)
    t.quit()


def test_deltas_for_spawn_and_finish(env):
    target, client = env
    t = target()
    c, _ = client(t)
    wait_for(c, lambda: settled(c), what="the named tasks to settle")
    t.cmd("spawn 5")
    new = {}
    deadline = time.monotonic() + 20
    while len(new) < 5:
        assert time.monotonic() < deadline, new
        u = c.recv_type("update")
        assert not u["full"]
        for row in u.get("tasks_new", []):
            if row[NAME].startswith("short-"):
                new[row[ID]] = row
    assert sorted(r[NAME] for r in new.values()) == ["short-%d" % i for i in range(5)]
    t.cmd("finish")
    gone = set()
    deadline = time.monotonic() + 20
    while not set(new) <= gone:
        assert time.monotonic() < deadline, gone
        u = c.recv_type("update")
        gone |= set(u.get("tasks_gone", []))
    assert not any(n.startswith("short-") for n in by_name(c))
    assert "short_done=5" in t.cmd("status")
    t.quit()


def test_task_detail_stacks_wait_and_error(env):
    target, client = env
    t = target(env={"ASYNCTOP_DEBUG": "1"})
    c, _ = client(t)
    wait_for(c, lambda: settled(c), what="the named tasks to settle")
    rows = by_name(c)

    def detail(name):
        r = c.response(c.request("task_detail", task=rows[name][ID]), timeout=20)
        assert r["status"] == 0, r
        assert r["detail"]["task"][ID] == rows[name][ID]
        return r["detail"]

    d = detail("deep")
    f = funcs(d["suspend"])
    # the suspension stack, innermost first, starts in the application's frames
    assert f[:3] == ["deep_level_three", "deep_level_two", "deep_level_one"], f
    assert all(loc[2] for loc in d["suspend"][:3]), d["suspend"]  # file names too
    # debug mode: the whole creation traceback, innermost first
    cf = funcs(d["create"])
    assert cf[0] == "spawn_deep_task", cf
    assert "setup_tasks" in cf and cf.index("setup_tasks") > 0, cf
    assert "main" in cf, cf
    assert d["wait_desc"].startswith("event #"), d["wait_desc"]
    assert detail("sleeper")["wait_desc"] == "sleep 5.000 s"
    assert detail("lock-waiter")["wait_desc"] == "lock #%d" % rows["lock-waiter"][WAIT_OBJ]
    assert detail("queue-putter")["wait_desc"] == "queue #%d (full)" % rows["queue-putter"][
        WAIT_OBJ]
    assert detail("queue-getter")["wait_desc"] == "queue #%d (empty)" % rows["queue-getter"][
        WAIT_OBJ]
    assert detail("parent")["wait_desc"] == "task #%d" % rows["child"][ID]
    assert detail("sem-waiter")["wait_desc"].startswith("semaphore #")
    fd = detail("failing")
    assert "disk on fire (test)" in fd.get("error", ""), fd
    assert fd.get("suspend", []) == []
    r = c.response(c.request("task_detail", task=10 ** 9))
    assert r["status"] == NO_SUCH_TASK
    err = t.quit()
    # reading the detail did not count as retrieving the failing task's error
    assert "Task exception was never retrieved" in err, err


def test_creation_site_without_debug_mode(env):
    target, client = env
    t = target()
    c, _ = client(t)
    wait_for(c, lambda: settled(c), what="the named tasks to settle")
    r = c.response(c.request("task_detail", task=by_name(c)["deep"][ID]), timeout=20)
    assert r["status"] == 0, r
    assert funcs(r["detail"].get("create", [])) == ["spawn_deep_task"]
    t.quit()


def test_cancel_from_the_client(env):
    target, client = env
    t = target()
    c, _ = client(t)
    wait_for(c, lambda: settled(c), what="the named tasks to settle")
    tid = by_name(c)["cancellable"][ID]
    r = c.response(c.request("cancel", task=tid), timeout=20)
    assert r["status"] == 0, r
    states = []
    deadline = time.monotonic() + 20
    while True:
        assert time.monotonic() < deadline, states
        u = c.recv_type("update")
        states += [row[STATE] for row in u.get("tasks_changed", []) + u.get("tasks_new", [])
                   if row[ID] == tid]
        if tid in u.get("tasks_gone", []):
            break
    assert tid not in c.tasks
    assert "cancel_seen=1" in t.cmd("status")
    # a second cancel finds nothing to cancel
    r = c.response(c.request("cancel", task=tid), timeout=20)
    assert r["status"] != 0
    t.quit()


def test_spinning_task_reported_blocked_with_its_name(env):
    target, client = env
    t = target()
    c, _ = client(t)
    wait_for(c, lambda: settled(c), what="the named tasks to settle")
    spinner = by_name(c)["number-cruncher"][ID]
    r = c.response(c.request("set_config", config={"slow_ns": 100_000_000}))
    assert r["status"] == 0
    t0 = time.monotonic()
    t.send("spin 4000")
    blocked = None
    while time.monotonic() - t0 < 3.5:
        u = c.recv_type("update")
        run = u.get("running")
        if run and run.get("task") == spinner and u["ts_ns"] - run["since_ns"] > 1_000_000_000:
            blocked = run
            break
    assert blocked is not None, "no live BLOCKED state for the spinning task"
    assert time.monotonic() - t0 < 4.0, "reported only after the step returned"
    # the callback is the task's function, the task is named from the table
    assert blocked["name"] == "spinner", blocked
    assert c.tasks[blocked["task"]][NAME] == "number-cruncher"
    if not os.environ.get("AT_E2E_TSAN"):
        deadline = time.monotonic() + 3
        while not blocked.get("stack") and time.monotonic() < deadline:
            blocked = c.recv_type("update").get("running") or {}
        assert "crunch_numbers" in c.stack_funcs(blocked.get("stack", 0)), blocked
    t.cmd("status")  # the loop is back
    # a plain callback stuck in a function: reported under the callback's name
    t.send("spincb 2500")
    seen = None
    t0 = time.monotonic()
    while time.monotonic() - t0 < 2.4 and seen is None:
        u = c.recv_type("update")
        run = u.get("running")
        if run and run.get("name") == "on_command" and u["ts_ns"] - run["since_ns"] > 5e8:
            seen = run
    assert seen is not None and not seen.get("task"), seen
    t.cmd("status")
    t.quit()


# Under ThreadSanitizer every task is a TSan fiber with a shadow stack of its own and every step
# is instrumented: 10,000 tasks there (the plain and ASan builds run the full 100,000).
MANY = 10000 if os.environ.get("AT_E2E_TSAN") else 100000


def hist_lower(i):
    """Lower bound (ns) of wire histogram bucket i (docs/protocol.md "Histogram")."""
    return i if i < 4 else (4 + i % 4) << (i // 4 - 1)


def test_task_detail_has_its_step_durations(env):
    """Issue 14: the detail's step_hist was always empty. The spinner runs one step per
    "spin N" (woken, spins N ms, waits again): after 5 x 30 ms its histogram counts every step
    the task's own counter counts, the 5 long ones in buckets that hold 30 ms or a little more
    (the spin ends on the clock, it cannot be shorter; a loaded machine may stretch it), and
    the buckets bracket the task's own busy time."""
    target, client = env
    t = target()
    c, _ = client(t)
    wait_for(c, lambda: settled(c), what="the named tasks to settle")
    tid = by_name(c)["number-cruncher"][ID]
    for _ in range(5):
        t.send("spin 30")
        t.cmd("status")  # the step has ended: the loop answers again
    r = c.response(c.request("task_detail", task=tid), timeout=20)
    assert r["status"] == 0, r
    d = r["detail"]
    hist, row = d["step_hist"], d["task"]
    assert sum(hist) == row[STEPS] >= 6, (hist, row)  # the first step, then one per spin
    long_steps = [(i, n) for i, n in enumerate(hist) if n and hist_lower(i) >= 20_000_000]
    assert sum(n for _, n in long_steps) == 5, hist
    for i, _ in long_steps:
        assert hist_lower(i + 1) > 30_000_000 and hist_lower(i) < 200_000_000, (i, hist)
    lo = sum(hist_lower(i) * n for i, n in enumerate(hist) if i > 28)  # 28: "256 ns or less"
    hi = sum(hist_lower(i + 1) * n for i, n in enumerate(hist))
    assert lo <= row[BUSY] <= hi, (lo, row[BUSY], hi)
    t.quit()


def test_100k_tasks_snapshot_complete(env):
    target, client = env
    t = target()
    c, _ = client(t, interval_ms=1000)
    t.cmd("many %d" % MANY, timeout=120)
    n_expected = MANY + len(NAMED)

    def bulk_waiting(rows):
        return sum(1 for r in rows if r[NAME] == "bulk" and r[STATE] == WAITING
                   and r[WAIT_KIND] == W_EVENT)

    # (the spawns overflow the event ring: the exporter resyncs, at most once a second)
    wait_for(c, lambda: len(c.tasks) == n_expected and bulk_waiting(c.tasks.values()) == MANY,
             timeout=120, what="%d waiting tasks" % MANY)
    c2 = Client(t.path, timeout=60)
    try:
        c2.hello()
        c2.subscribe(1000)
        seen = []
        try:
            while True:
                snap = c2.recv(timeout=60)
                seen.append(snap["t"] if snap["t"] != "error" else snap)
                if snap["t"] == "update":
                    break
        except Exception as e:
            raise AssertionError("second client: %r after %r; target said: %s" % (
                e, seen, "".join(t.stderr)))
        assert snap["full"]
        rows = snap["tasks_new"]
        assert len(rows) == n_expected, len(rows)
        assert bulk_waiting(rows) == MANY
    finally:
        c2.close()
    t.quit()


STACK = 12


def test_tasks_waiting_at_the_same_place_share_one_suspension_stack(env):
    target, client = env
    t = target()
    c, _ = client(t)
    wait_for(c, lambda: settled(c), what="the named tasks to settle")
    t.cmd("many 500")

    def bulk_rows():
        return [r for r in c.tasks.values() if r[NAME] == "bulk"]

    def stacked():
        rows = bulk_rows()
        return len(rows) == 500 and all(len(r) > STACK and r[STACK] for r in rows) and \
            by_name(c)["deep"][STACK]
    wait_for(c, stacked, what="suspension stacks of the bulk tasks")
    ids = {r[STACK] for r in bulk_rows()}
    assert len(ids) == 1, ids
    f = [x.split(".")[0] for x in c.stack_funcs(ids.pop())]
    assert "bulk" in f and "at_event_wait" not in f[1:], f
    deep = [x.split(".")[0] for x in c.stack_funcs(by_name(c)["deep"][STACK])]
    assert deep[:3] == ["deep_level_three", "deep_level_two", "deep_level_one"], deep
    assert by_name(c)["sleeper"][STACK] != by_name(c)["deep"][STACK]
    # a new client gets the same ids in its first snapshot
    c2, snap = client(t)
    assert {r[STACK] for r in snap["tasks_new"] if r[NAME] == "bulk"} == {bulk_rows()[0][STACK]}
    t.quit()


EXC_NEVER_RETRIEVED, EXC_DESTROYED_PENDING = 1, 3


def test_exception_kinds_end_to_end(env):
    target, client = env
    t = target()
    c, _ = client(t)
    wait_for(c, lambda: settled(c), what="the named tasks to settle")
    # core: failed futures dropped unread; the target says what each error object holds
    said = {}
    for cmd in ("futfail", "appfail"):
        out = [l for l in t.cmd(cmd).split("\n") if l.startswith("ERROR ")]
        assert out, cmd
        said[cmd] = (int(out[0].split()[1]), out[0].split()[2])
    # the runtime's own error: AT_EIO keeps libuv's value, the negated errno, in its domain
    assert said["futfail"] == (-errno.EIO, "asynctop"), said
    assert said["appfail"] == (-4242, "myapp"), said
    t.cmd("lostfail")  # tasks: a failed task nobody holds (at_task_raise(AT_EIO, ...))
    exc = []

    def have(text, evs):
        return [e for e in evs if text in e.get("message", "")]

    deadline = time.monotonic() + 20
    while not (have("lost future error", exc) and have("lost app error", exc) and
               have("Task exception", exc)):
        assert time.monotonic() < deadline, [(e["kind"], e["message"][:70]) for e in exc]
        exc += c.recv_type("update").get("exc", [])
    # each event carries its error's own code and domain, and its severity in a key of its own
    # (issue 14: the domain used to hold the severity, and no code was sent)
    for text, (code, domain) in (("lost future error", said["futfail"]),
                                 ("lost app error", said["appfail"]),
                                 ("Task exception", said["futfail"])):
        e = have(text, exc)[0]
        assert e["kind"] == EXC_NEVER_RETRIEVED, e
        assert e.get("code") == code and e.get("domain") == domain, e
        assert e.get("severity") == "error", e
    assert "lost future error (test)" in have("Future exception", exc)[0]["message"]
    assert "lost-failing" in have("Task exception", exc)[0]["message"]

    # a second loop closed while a task still waits on it, watched by a client of its own
    out = t.cmd("doomed")
    if "DOOMED" not in out:
        out += t.p.stdout.readline().decode()
    tid = int(out.split("DOOMED ")[1].split()[0])
    d = Client(t.path, timeout=30)
    try:
        hello = d.hello()
        lid = [l[0] for l in hello.get("loops", []) if l[2] == tid]
        assert lid, hello
        d.subscribe(100, loop=lid[0])
        assert d.recv_type("update", timeout=30)["full"]
        t.cmd("closedoomed")
        dexc = []
        deadline = time.monotonic() + 20
        while not have("destroyed", dexc):
            assert time.monotonic() < deadline, [(e["kind"], e["message"][:70]) for e in dexc]
            dexc += d.recv_type("update").get("exc", [])
        e = have("destroyed", dexc)[0]
        assert e["kind"] == EXC_DESTROYED_PENDING, e
        # a warning: its severity says so, and it is about no error object (no code, no domain)
        assert e.get("severity") == "warning" and "code" not in e and "domain" not in e, e
        assert "doomed" in e["message"], e
    finally:
        d.close()
    t.quit()


W_ACCEPT = 7


def test_task_in_accept_waits_on_accept(env):
    target, client = env
    t = target()
    c, _ = client(t)
    wait_for(c, lambda: settled(c), what="the named tasks to settle")
    t.cmd("accept")
    wait_for(c, lambda: "acceptor" in by_name(c) and by_name(c)["acceptor"][STATE] == WAITING,
             what="the acceptor to wait")
    row = by_name(c)["acceptor"]
    assert row[WAIT_KIND] == W_ACCEPT, row
    r = c.response(c.request("task_detail", task=row[ID]), timeout=20)
    assert r["detail"]["wait_desc"] == "accept #%d" % row[WAIT_OBJ], r["detail"]
    t.quit()


WAIT_DESC = 13


def test_rows_carry_wait_desc_like_the_detail(env):
    target, client = env
    t = target()
    c, _ = client(t)
    wait_for(c, lambda: settled(c) and all(len(by_name(c)[n]) > WAIT_DESC for n in
                                           ("sleeper", "queue-putter")),
             what="rows with wait_desc")
    rows = by_name(c)
    assert rows["sleeper"][WAIT_DESC] == "sleep 5.000 s", rows["sleeper"]
    assert rows["queue-putter"][WAIT_DESC] == "queue #%d (full)" % rows["queue-putter"][WAIT_OBJ]
    assert rows["queue-getter"][WAIT_DESC] == "queue #%d (empty)" % rows["queue-getter"][
        WAIT_OBJ]
    assert rows["lock-waiter"][WAIT_DESC] == "lock #%d" % rows["lock-waiter"][WAIT_OBJ]
    assert rows["parent"][WAIT_DESC] == "task #%d" % rows["child"][ID]
    for name in ("deep", "sem-waiter", "cancellable"):
        r = c.response(c.request("task_detail", task=rows[name][ID]), timeout=20)
        assert rows[name][WAIT_DESC] == r["detail"]["wait_desc"], (name, rows[name], r)
    # an ended task has no wait text
    assert len(rows["failing"]) <= WAIT_DESC or rows["failing"][WAIT_DESC] in (None, ""), \
        rows["failing"]
    t.quit()


def test_first_snapshot_right_after_start_has_the_tasks(env):
    # asynctop ps right after the program starts: the first snapshot waits (briefly) for the
    # tasks provider's resync instead of going out without the tasks
    target, client = env
    for _ in range(3):
        t = target()
        c = Client(t.path, timeout=30)
        try:
            c.hello()
            c.subscribe(100)
            snap = c.recv_type("update", timeout=30)
            assert snap["full"]
            names = {r[NAME] for r in snap.get("tasks_new", [])}
            assert {"sleeper", "deep", "parent", "number-cruncher"} <= names, names
        finally:
            c.close()
        t.quit()
