#!/usr/bin/python3
"""fake_target.py: a stand-in for a process running the asynctop runtime, written from
docs/protocol.md alone (framing, hello, subscribe, update, request/response, bye), so the
inspector's end-to-end tests run before the real exporter exists. It binds where a real
target would ($ASYNCTOP_SOCKET, else $XDG_RUNTIME_DIR/asynctop/<pid>.sock, else
/tmp/asynctop-<uid>/<pid>.sock; directory 0700, socket 0600), says hello, sends a snapshot
then deltas at the subscribed interval, and answers task_detail, set_config, cancel,
loop_stack, pause and resume. Options simulate a blocked loop, many tasks, an exit in the
middle of a session, a protocol version the inspector does not speak, and a hostile program
(--hostile: terminal escapes, C1 and bidi controls in every text it sends; --refuse: an error
instead of hello; --comm: any bytes as /proc/<pid>/comm).

Every request it receives is appended as one JSON line to --log (if given), so a test can
check what the inspector asked for; what the inspector shows is what this sends back."""
import argparse
import json
import os
import selectors
import signal
import socket
import stat
import struct
import sys
import time

import cbor2

VERSION = 1
MS = 1_000_000
START = time.monotonic_ns()


def now_ns():
    """Process time: ns since this process started (protocol.md, "Process time")."""
    return time.monotonic_ns() - START


def socket_path(pid):
    env = os.environ.get("ASYNCTOP_SOCKET")
    if env and env != "off":
        return env
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and xdg.startswith("/"):
        d = os.path.join(xdg, "asynctop")
    else:
        d = "/tmp/asynctop-%d" % os.getuid()
    return os.path.join(d, "%d.sock" % pid)


def frame(msg):
    body = cbor2.dumps(msg)
    return struct.pack(">I", len(body)) + body


# ---- the simulated program -------------------------------------------------------

SITES = {  # id: [id, addr, func, file, line(, build_id)]
    1: [1, 0x401000, "main", "demo/main.c", 40, "not hex\u001b[2J"],  # dropped by the inspector
    2: [2, 0x401100, "server_run", "demo/server.c", 88, "0c29039453e58b2d265acc2804db911e2f346e33"],
    3: [3, 0x401200, "handle_conn", "demo/server.c", 120],
    4: [4, 0x401300, "at_stream_read", "runtime/io.c", 310],
    5: [5, 0x401400, "producer", "demo/queue.c", 30],
    6: [6, 0x401500, "consumer", "demo/queue.c", 52],
    7: [7, 0x401600, "at_queue_get", "runtime/sync.c", 200],
    8: [8, 0x401700, "at_sleep", "runtime/timer.c", 77],
    9: [9, 0x401800, "ticker", "demo/main.c", 70],
    10: [10, 0x401900, "parse_request", "demo/server.c", 201],
    11: [11, 0x401a00, "slow_handler", "demo/slow.c", 12],
    12: [12, 0x401b00, "at_spawn", "runtime/task.c", 90],
    13: [13, 0x401c00, "at_future_set_error", "runtime/future.c", 140],
    14: [14, 0x401d00, "looper", "demo/cycle.c", 9],
    15: [15, 0x401e00, "short_job", "demo/jobs.c", 15],
}
# --hostile: what a program could put in any text it sends: a title-setting OSC (ESC ] 0 ; ..
# BEL), CSI as a C1 control (U+009B, UTF-8), bidi overrides/isolates/marks. The '|' between
# them stay visible, so a test can see each one's replacement.
HOSTILE = "\x1b]0;pwned\x07|\u009b31m|\u202e|\u2066|\u200f|"
HOSTILE_SITE = [16, 0x402000, "evil_fn" + HOSTILE, "demo/evil" + HOSTILE + ".c", 66]
STACKS = {  # id: [id, [site ids innermost first]]
    1: [1, [4, 3, 2]],      # conn tasks waiting in read
    2: [2, [7, 6]],         # consumer waiting on the queue
    3: [3, [8, 9]],         # ticker sleeping
    4: [4, [8, 5]],         # producer sleeping
    5: [5, [10, 11, 1]],    # where the loop blocks
    6: [6, [12, 2, 1]],     # a spawn site stack (creation)
    7: [7, [13, 3]],        # raise site
    8: [8, [8, 14]],        # cycle tasks
    9: [9, [4, 10, 1]],     # --split-stack: a read from another caller (same top frame)
}


class Task:
    __slots__ = ("id", "name", "state", "wait_kind", "wait_obj", "wait_since_us", "busy_ns",
                 "steps", "parent", "created_us", "create_site", "entry_site", "stack",
                 "wait_desc")

    def __init__(self, tid, name, parent, wait_kind, wait_obj, stack, entry, create_site=12):
        self.id, self.name, self.parent = tid, name, parent
        self.state = 2 if wait_kind else 0
        self.wait_kind, self.wait_obj = wait_kind, wait_obj
        t = now_ns() // 1000
        self.wait_since_us = t if wait_kind else 0
        self.created_us = t
        self.busy_ns, self.steps = 1000 * tid % 7_000_000, tid % 50
        self.create_site, self.entry_site, self.stack = create_site, entry, stack
        self.wait_desc = None  # optional row element 13

    def row(self):
        row = [self.id, self.name, self.state, self.wait_kind, self.wait_obj, self.wait_since_us,
               self.busy_ns, self.steps, self.parent, self.created_us, self.create_site,
               self.entry_site, self.stack]
        return row + [self.wait_desc] if self.wait_desc else row


class Program:
    def __init__(self, ntasks, hostile=False):
        self.tasks = {}
        self.changed, self.gone = set(), []
        self.new = []
        self.slow_ns = int(os.environ.get("ASYNCTOP_SLOW_MS", "100")) * MS
        self.debug = os.environ.get("ASYNCTOP_DEBUG") == "1"
        self.slow_events, self.exc_events = [], []
        self.slow_log, self.exc_log = [], []  # --event-log: every event (the exporter's log)
        self.slow_seq = self.exc_seq = 0
        self.ev_seq = 0  # slow and exception events share one sequence, as in the exporter
        self.gap = 0     # --gap: event numbers skipped once (events the runtime lost)
        self.sleep_desc = False  # --sleep-desc
        self.callbacks = self.busy = self.iterations = 0
        self.slow_total = 0
        self.lag = [0] * 90
        self.next_id = 5_000_000  # short-lived tasks; never collides with the ids below
        self.add(Task(1, "main", 0, 1, 77, 6, 1, 1))
        self.add(Task(2, "server", 1, 7, 3, 6, 2))
        self.add(Task(3, "producer", 1, 3, 11, 4, 5))
        self.add(Task(4, "consumer", 1, 12, 5, 2, 6))
        self.tasks[4].wait_desc = "queue empty"  # the runtime's own words
        self.add(Task(5, "ticker", 1, 3, 12, 3, 9))
        # a parent cycle the runtime should never report, but might (bug or race)
        self.add(Task(900, "loop-a", 901, 3, 13, 8, 14))
        self.add(Task(901, "loop-b", 900, 3, 14, 8, 14))
        for i in range(max(0, ntasks - 7)):
            tid = 10 + i if 10 + i < 900 else 1_000_000 + i  # 900/901 are the cycle
            self.add(Task(tid, "conn-%d" % i, 2, 4, 100 + i, 1, 3))
        self.split_stack = False  # --split-stack (set by Server before the first update)
        self.new = list(self.tasks.values())
        for kind, msg, code, dom in ((1, "connection reset by peer", -104, "uv"),
                                     (2, "coroutine fetch_user was never awaited", 0, None),
                                     (3, "task conn-old destroyed while pending", 0, None),
                                     (4, "tcp handle never closed", 0, None),
                                     (5, "at_call_soon called from thread worker-2", 0, None)):
            self.add_exc(kind, msg, code, dom)
        if hostile:
            SITES[16] = HOSTILE_SITE
            STACKS[9] = [9, [16, 3]]
            evil = Task(6, "evil" + HOSTILE, 1, 3, 15, 9, 16)
            evil.wait_desc = "desc" + HOSTILE
            self.add(evil)
            self.new.append(evil)
            wide = Task(7, "wide\u6f22\u5b57e\u0301", 1, 3, 16, 3, 9)  # 2+2 and 0 columns
            self.add(wide)
            self.new.append(wide)
            self.add_exc(6, "hostile" + HOSTILE + "\nsecond line" + HOSTILE, -111, "dom" + HOSTILE,
                         raise_stack=9)

    def add(self, t):
        self.tasks[t.id] = t

    def add_exc(self, kind, message, code=0, domain=None, raise_stack=7):
        self.exc_seq += 1
        self.ev_seq += 1
        e = {"seq": self.ev_seq, "time_ns": now_ns(), "kind": kind, "message": message,
             "object": 40 + self.exc_seq, "obj_type": "future", "task": 10,
             "raise_stack": raise_stack}
        if code:
            e["code"] = code
        if domain:
            e["domain"] = domain
        if self.debug:
            e["create_stack"] = 6
        self.exc_events.append(e)
        self.exc_log.append(e)

    def add_slow(self, dur_ns, name="slow_handler", site=11, stack=5):
        self.slow_total += 1
        self.slow_seq += 1
        self.ev_seq += 1
        if self.slow_seq == 2 and self.gap:  # the second slow event comes after a gap
            self.ev_seq += self.gap
        ev = {"seq": self.ev_seq, "start_ns": max(0, now_ns() - dur_ns), "dur_ns": dur_ns, "kind": 1,
              "site": site, "name": name, "task": 3, "stack": stack}
        if self.debug:
            ev["sched_stack"] = 6
        self.slow_events.append(ev)
        self.slow_log.append(ev)

    def tick(self, step):
        """One second of program life: callbacks, a slow callback, a short task."""
        self.callbacks += 5000
        self.busy += 300 * MS
        self.iterations += 1200
        # lag samples around 60 us .. 2 ms (buckets of protocol.md's histogram)
        for b, n in ((60, 500), (64, 300), (68, 120), (76, 40), (82, 5)):
            self.lag[b] += n
        # a periodic 150 ms callback: slow only while the threshold is below 150 ms
        if step % 2 == 0 and 150 * MS >= self.slow_ns:
            self.add_slow(150 * MS)
        # a short-lived task: spawned, finished the next second (lingers dimmed)
        tid = self.next_id
        self.next_id += 1
        t = Task(tid, "short-%d" % tid, 1, 3, 0, 3, 15)
        self.add(t)
        self.new.append(t)
        for old in [x for x in self.tasks.values() if x.name.startswith("short-") and x.id != tid]:
            old.state = 3
            self.changed.add(old.id)
            del self.tasks[old.id]
            self.gone.append(old.id)
        # --sleep-desc: the producer's description counts down the time left of its sleep,
        # as the runtime's does ("sleep 0.603 s")
        if self.sleep_desc and 3 in self.tasks:
            self.tasks[3].wait_desc = "sleep %.3f s" % (9.5 - step % 9 - 0.001 * step)
            self.changed.add(3)
        # the ticker wakes up
        tk = self.tasks.get(5)
        if tk:
            tk.steps += 1
            tk.wait_since_us = now_ns() // 1000
            self.changed.add(5)

    def stats(self):
        by_state = [0] * 6
        for t in self.tasks.values():
            by_state[t.state] += 1
        el = now_ns()
        return {"busy_ns": self.busy, "idle_ns": max(0, el - self.busy),
                "iterations": self.iterations, "callbacks": self.callbacks,
                "slow": self.slow_total, "errors": self.exc_seq, "lag": list(self.lag),
                "tasks": by_state,
                "handles": [["tcp", 12], ["timer", 4], ["pipe", 1], ["async", 2]],
                "exec": {"queued": 3, "running": 2, "threads": 4, "done": 120,
                         "wait_ns": 120 * 2 * MS}}


class Conn:
    def __init__(self, sock):
        self.sock, self.buf, self.out = sock, b"", b""
        self.subscribed, self.paused = False, False
        self.ev_sent = 0  # --event-log: newest event seq sent to this client
        self.interval_ms, self.next_at, self.seq = 1000, 0.0, 0
        self.need_full = True
        self.sent_sites, self.sent_stacks = set(), set()


class Server:
    def __init__(self, args):
        self.args = args
        self.prog = Program(args.tasks, args.hostile)
        self.hostile = HOSTILE if args.hostile else ""
        self.prog.gap = args.gap
        self.prog.sleep_desc = args.sleep_desc
        if args.split_stack and 10 in self.prog.tasks:
            self.prog.tasks[10].stack = 9  # conn-0 reads from parse_request, not handle_conn
        for i in range(args.slow_events):  # slow events that happened before anyone attached
            self.prog.add_slow((300 + 10 * i) * MS, "startup_%d" % i)
        self.sel = selectors.DefaultSelector()
        self.conns = {}
        self.path = socket_path(os.getpid())
        self.log = open(args.log, "a", buffering=1) if args.log else None
        self.running_log = open(args.running_log, "a", buffering=1) if args.running_log else None
        self.blocked_since = None
        self.step = 0
        self.resumes = 0

    def bind(self):
        d = os.path.dirname(self.path)
        if not os.environ.get("ASYNCTOP_SOCKET"):
            os.makedirs(d, mode=0o700, exist_ok=True)
            st = os.lstat(d)
            if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
                sys.exit("fake_target: unsafe socket directory %s" % d)
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        # bound and listening under a temporary name, then renamed into place, as the runtime
        # does: a client that sees the path can connect (bound at the path itself, a client
        # connecting between bind and listen got ECONNREFUSED, "nobody answers ... stale socket")
        old = os.umask(0o177)
        self.lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        tmp = "%s.%d.tmp" % (self.path, os.getpid())
        self.lsock.bind(tmp)
        os.umask(old)
        self.lsock.listen(16)
        os.rename(tmp, self.path)
        self.lsock.setblocking(False)
        self.sel.register(self.lsock, selectors.EVENT_READ, None)

    def cleanup(self, *_):
        try:
            os.unlink(self.path)
        except OSError:
            pass
        sys.exit(0)

    # ---- output -----------------------------------------------------------------
    def send(self, c, msg):
        c.out += frame(msg)

    def flush(self, c):
        while c.out:
            try:
                n = c.sock.send(c.out)
            except BlockingIOError:
                return
            except OSError:
                self.drop(c)
                return
            c.out = c.out[n:]

    def drop(self, c):
        if c.sock.fileno() in self.conns:
            del self.conns[c.sock.fileno()]
            try:
                self.sel.unregister(c.sock)
            except (KeyError, ValueError):
                pass
        c.sock.close()

    def hello(self, c):
        p = self.prog
        if self.args.refuse:
            self.send(c, {"t": "error", "v": VERSION, "code": 4, "fatal": True,
                          "reason": "not you" + self.hostile})
            self.flush(c)
            self.drop(c)
            return
        self.send(c, {"t": "hello", "v": self.args.protocol, "pid": os.getpid(),
                      "program": self.args.program, "argv": [self.args.program, "--fake"],
                      "runtime": "0.1.0-fake", "start_time_ns": time.time_ns() - now_ns(),
                      "now_ns": now_ns(), "config": {"slow_ns": p.slow_ns, "debug": p.debug},
                      "caps": ["tasks", "slow", "exceptions", "loop", "stacks", "sites",
                               "set_config", "cancel", "loop_stack", "pause", "debug"]})

    def running(self):
        if self.blocked_since is None:
            return None
        r = {"since_ns": self.blocked_since, "kind": 1, "site": 10, "name": "parse_request",
             "task": 2}
        if now_ns() - self.blocked_since >= self.prog.slow_ns:
            r["stack"] = 5
        return r

    def update(self, c, full):
        p = self.prog
        u = {"t": "update", "v": VERSION, "seq": c.seq, "ts_ns": now_ns(), "full": full,
             "config": {"slow_ns": p.slow_ns, "debug": p.debug}, "stats": p.stats()}
        c.seq += 1
        if full:
            c.sent_sites, c.sent_stacks = set(), set()
        sites = [s for i, s in SITES.items() if i not in c.sent_sites]
        stacks = [s for i, s in STACKS.items() if i not in c.sent_stacks]
        c.sent_sites.update(SITES)
        c.sent_stacks.update(STACKS)
        if sites:
            u["sites"] = sites
        if stacks:
            u["stacks"] = stacks
        if full:
            u["tasks_new"] = [t.row() for t in p.tasks.values()]
        else:
            if p.new:
                u["tasks_new"] = [t.row() for t in p.new if t.id in p.tasks]
            ch = [p.tasks[i].row() for i in p.changed if i in p.tasks]
            if ch:
                u["tasks_changed"] = ch
            if p.gone:
                u["tasks_gone"] = list(p.gone)
        if self.args.event_log:
            # like the exporter: a snapshot resends the event log, a delta what is new to c
            since = -1 if full else c.ev_sent
            slow = [e for e in p.slow_log if e["seq"] > since]
            exc = [e for e in p.exc_log if e["seq"] > since]
            if slow:
                u["slow"] = slow
            if exc:
                u["exc"] = exc
            c.ev_sent = p.ev_seq
        else:
            if p.slow_events:
                u["slow"] = list(p.slow_events)
            if p.exc_events:
                u["exc"] = list(p.exc_events)
        if self.args.dropped:
            u["dropped"] = [["slow", self.args.dropped], ["exc", 0]]
        r = self.running()
        if r:
            u["running"] = r
        if self.running_log:  # what this update says the running callback has taken so far
            self.running_log.write("%d\n" % (u["ts_ns"] - r["since_ns"] if r else -1))
        self.send(c, u)

    # ---- input ------------------------------------------------------------------
    def request(self, c, m):
        p = self.prog
        if self.log:
            self.log.write(json.dumps({"op": m.get("op"), "task": m.get("task"),
                                       "config": m.get("config")}) + "\n")
        rid, op = m.get("id"), m.get("op")
        resp = {"t": "response", "v": VERSION, "id": rid, "op": op, "status": 0}
        if op == "set_config" and self.hostile:
            resp.update(status=11, reason="refused" + self.hostile)
        elif op == "set_config":
            cfg = m.get("config") or {}
            if "slow_ns" in cfg:
                if not isinstance(cfg["slow_ns"], int) or cfg["slow_ns"] <= 0:
                    resp.update(status=11, reason="slow_ns must be a positive integer")
                    self.send(c, resp)
                    return
                p.slow_ns = cfg["slow_ns"]
            if "debug" in cfg:
                p.debug = bool(cfg["debug"])
            resp["config"] = {"slow_ns": p.slow_ns, "debug": p.debug}
        elif op == "task_detail":
            t = p.tasks.get(m.get("task"))
            if not t:
                resp.update(status=12, reason="no task %s" % m.get("task"))
            else:
                def locs(stack_id):
                    return [SITES[s][1:] for s in STACKS[stack_id][1]]
                desc = t.wait_desc or "read tcp fd %d" % (t.wait_obj % 1000)
                d = {"task": t.row(), "wait_desc": desc,
                     "suspend": locs(t.stack),
                     "children": [x.id for x in p.tasks.values() if x.parent == t.id][:100],
                     "step_hist": [0] * 40 + [5, 9, 3, 1]}
                if p.debug:
                    d["create"] = locs(6)
                resp["detail"] = d
        elif op == "cancel":
            t = p.tasks.get(m.get("task"))
            if not t:
                resp.update(status=12, reason="no task %s%s" % (m.get("task"), self.hostile))
            elif self.hostile:
                resp.update(status=13, reason="not cancelling" + self.hostile)
            else:
                t.state = 4
                p.changed.add(t.id)
                del p.tasks[t.id]
                p.gone.append(t.id)
        elif op == "loop_stack":
            resp["stack"] = [SITES[s][1:] for s in STACKS[5][1]]
            r = self.running()
            if r:
                resp["running"] = r
        elif op == "pause":
            c.paused = True
        elif op == "resume":
            c.paused = False
            c.need_full = True
            if self.args.event_log:  # a mark: a test knows the snapshot after it has come
                self.resumes += 1
                p.add_slow(500 * MS, "resumed_%d" % self.resumes)
        else:
            resp.update(status=13, reason="unsupported op %r" % op)
        self.send(c, resp)

    def handle(self, c, m):
        if not isinstance(m, dict) or m.get("v") != VERSION:
            self.send(c, {"t": "error", "v": VERSION, "code": 3, "reason": "version", "fatal": True})
            self.flush(c)
            self.drop(c)
            return
        t = m.get("t")
        if t == "subscribe":
            c.subscribed = True
            c.interval_ms = max(100, int(m.get("interval_ms", 1000)))
            c.need_full = True
            c.next_at = 0
        elif t == "request" and c.subscribed:
            self.request(c, m)
        elif t == "bye":
            self.drop(c)

    def readable(self, c):
        try:
            data = c.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self.drop(c)
            return
        c.buf += data
        while len(c.buf) >= 4:
            n = struct.unpack(">I", c.buf[:4])[0]
            if n == 0 or n > 65536:
                self.drop(c)
                return
            if len(c.buf) < 4 + n:
                break
            body, c.buf = c.buf[4:4 + n], c.buf[4 + n:]
            try:
                m = cbor2.loads(body)
            except Exception:
                self.drop(c)
                return
            self.handle(c, m)
            if c.sock.fileno() < 0:
                return

    # ---- main loop -----------------------------------------------------------------
    def run(self):
        self.bind()
        print("fake_target: pid %d listening on %s" % (os.getpid(), self.path), flush=True)
        t0 = time.monotonic()
        next_tick = t0 + 1
        while True:
            now = time.monotonic()
            el = now - t0
            if self.args.exit_after and el >= self.args.exit_after:
                for c in list(self.conns.values()):
                    self.send(c, {"t": "bye", "v": VERSION,
                                  "reason": "process exiting" + self.hostile})
                    self.flush(c)
                self.cleanup()
            if self.args.block_at and self.blocked_since is None and el >= self.args.block_at \
                    and el < self.args.block_at + self.args.block_for:
                self.blocked_since = now_ns()
            if self.blocked_since is not None and el >= self.args.block_at + self.args.block_for:
                self.prog.add_slow(now_ns() - self.blocked_since, "parse_request", 10, 5)
                self.blocked_since = None
            if now >= next_tick:
                next_tick += 1
                self.step += 1
                self.prog.tick(self.step)
            # updates: every subscribed, unpaused client at its interval
            sent_any = False
            for c in list(self.conns.values()):
                if c.subscribed and not c.paused and now >= c.next_at:
                    self.update(c, c.need_full)
                    c.need_full = False
                    c.next_at = now + c.interval_ms / 1000
                    sent_any = True
            if sent_any:
                p = self.prog
                p.new, p.changed, p.gone = [], set(), []
                p.slow_events, p.exc_events = [], []
            for c in list(self.conns.values()):
                self.flush(c)
            for key, ev in self.sel.select(timeout=0.05):
                if key.data is None:
                    try:
                        s, _ = self.lsock.accept()
                    except OSError:
                        continue
                    s.setblocking(False)
                    c = Conn(s)
                    self.conns[s.fileno()] = c
                    self.sel.register(s, selectors.EVENT_READ, c)
                    self.hello(c)
                    self.flush(c)
                else:
                    self.readable(key.data)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--program", default="fake-server")
    ap.add_argument("--tasks", type=int, default=40, help="live tasks to simulate (>= 7)")
    ap.add_argument("--protocol", type=int, default=VERSION, help="protocol version in hello")
    ap.add_argument("--block-at", type=float, default=0, help="seconds until the loop blocks")
    ap.add_argument("--block-for", type=float, default=6, help="how long it stays blocked")
    ap.add_argument("--exit-after", type=float, default=0, help="exit after this many seconds")
    ap.add_argument("--dropped", type=int, default=0, help="report this many dropped slow events")
    ap.add_argument("--gap", type=int, default=0,
                    help="skip this many event numbers before the second slow event")
    ap.add_argument("--event-log", action="store_true",
                    help="keep every event and resend them all in each snapshot (full update), "
                    "as the exporter resends its event log; each resume adds a slow event "
                    "resumed_N")
    ap.add_argument("--slow-events", type=int, default=0,
                    help="slow callbacks that happened before anyone attached")
    ap.add_argument("--split-stack", action="store_true",
                    help="conn-0 waits in at_stream_read like the other conns, but called "
                    "from another function (stack 9)")
    ap.add_argument("--sleep-desc", action="store_true",
                    help="the producer (task 3) describes its sleep with the time left, "
                    "changing every second")
    ap.add_argument("--running-log",
                    help="append, per update sent, how long the running callback had run then "
                    "(ns; -1: none running)")
    ap.add_argument("--log", help="append every request received as a JSON line")
    ap.add_argument("--hostile", action="store_true",
                    help="escapes, C1 and bidi controls in names, messages and reasons")
    ap.add_argument("--refuse", action="store_true", help="answer hello with a fatal error")
    ap.add_argument("--comm", help="/proc/<pid>/comm (any bytes but NUL), default: --program")
    args = ap.parse_args()
    # like a real program, /proc/<pid>/comm is the program's name (PR_SET_NAME)
    try:
        import ctypes
        comm = os.fsencode(args.comm if args.comm is not None else args.program)
        ctypes.CDLL(None).prctl(15, comm[:15], 0, 0, 0)
    except (OSError, AttributeError):
        pass
    srv = Server(args)
    signal.signal(signal.SIGTERM, srv.cleanup)
    signal.signal(signal.SIGINT, srv.cleanup)
    srv.run()


if __name__ == "__main__":
    main()
