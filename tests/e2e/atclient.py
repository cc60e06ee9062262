"""atclient.py: an independent asynctop protocol client written from docs/protocol.md alone
(framing, hello/subscribe/update/request/response/error/bye), on Debian's python3-cbor2.

Used by the end-to-end tests; runs under /usr/bin/python3. It shares no code with the C side.
"""
import os
import select
import socket
import struct
import subprocess
import threading
import time

import cbor2

VERSION = 1
MAX_FRAME = 64 * 1024 * 1024


class Closed(Exception):
    """The server closed the connection."""


class Client:
    def __init__(self, path, timeout=10.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.buf = b""
        self.next_id = 1
        # interned tables, as the spec says: dropped on every full update
        self.sites = {}
        self.stacks = {}
        self.tasks = {}

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    # ---- framing ------------------------------------------------------------------------
    def send_raw(self, data):
        self.sock.sendall(data)

    def send(self, msg):
        msg = dict(msg)
        msg.setdefault("v", VERSION)
        body = cbor2.dumps(msg)
        self.send_raw(struct.pack(">I", len(body)) + body)

    def _fill(self, n, deadline):
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no frame within the timeout")
            r, _, _ = select.select([self.sock], [], [], left)
            if not r:
                continue
            try:
                chunk = self.sock.recv(1 << 20)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                raise Closed("connection closed by the server")
            self.buf += chunk

    def recv(self, timeout=10.0):
        """The next message as a dict (definite-length map, checked)."""
        deadline = time.monotonic() + timeout
        self._fill(4, deadline)
        (n,) = struct.unpack(">I", self.buf[:4])
        assert 0 < n <= MAX_FRAME, "bad frame length %d" % n
        self._fill(4 + n, deadline)
        body, self.buf = self.buf[4:4 + n], self.buf[4 + n:]
        # exactly one data item, a definite-length map: the first byte says so
        assert 0xa0 <= body[0] <= 0xbb, "frame is not a definite-length map: %02x" % body[0]
        msg = cbor2.loads(body)
        assert isinstance(msg, dict)
        assert msg.get("v") == VERSION, msg
        if msg["t"] == "update":
            self._apply(msg)
        return msg

    def recv_type(self, t, timeout=10.0):
        """Skips messages until one of type t (returns it)."""
        deadline = time.monotonic() + timeout
        while True:
            m = self.recv(max(0.01, deadline - time.monotonic()))
            if m["t"] == t:
                return m

    # ---- state from updates -------------------------------------------------------------
    def _apply(self, u):
        if u["full"]:
            self.sites, self.stacks, self.tasks = {}, {}, {}
        for s in u.get("sites", []):
            self.sites[s[0]] = {"addr": s[1], "func": s[2], "file": s[3], "line": s[4],
                                "build_id": s[5] if len(s) > 5 else None}
        for s in u.get("stacks", []):
            self.stacks[s[0]] = s[1]
        for row in u.get("tasks_new", []) + u.get("tasks_changed", []):
            self.tasks[row[0]] = row
        for tid in u.get("tasks_gone", []):
            self.tasks.pop(tid, None)
        # every id referenced must have been defined (spec: "Interned tables")
        for row in u.get("tasks_new", []) + u.get("tasks_changed", []):
            for sid in (row[10], row[11]):
                assert sid == 0 or sid in self.sites, "undefined site %d" % sid
        for ev in u.get("slow", []):
            for k in ("stack", "sched_stack"):
                assert ev.get(k, 0) == 0 or ev[k] in self.stacks, ev
        for sid_list in self.stacks.values():
            for sid in sid_list:
                assert sid in self.sites, "stack references undefined site %d" % sid

    def stack_funcs(self, stack_id):
        return [self.sites[s]["func"] for s in self.stacks.get(stack_id, [])]

    # ---- messages -----------------------------------------------------------------------
    def hello(self, timeout=10.0):
        m = self.recv(timeout)
        assert m["t"] == "hello", m
        return m

    def subscribe(self, interval_ms=100, what=None, loop=None):
        msg = {"t": "subscribe", "interval_ms": interval_ms}
        if what is not None:
            msg["what"] = what
        if loop is not None:
            msg["loop"] = loop
        self.send(msg)

    def request(self, op, **kw):
        rid = self.next_id
        self.next_id += 1
        msg = {"t": "request", "id": rid, "op": op}
        msg.update(kw)
        self.send(msg)
        return rid

    def response(self, rid, timeout=10.0):
        deadline = time.monotonic() + timeout
        while True:
            m = self.recv(max(0.01, deadline - time.monotonic()))
            if m["t"] == "response" and m["id"] == rid:
                return m


class Program:
    """A test program driven by line commands on stdin (tests/e2e/*_target.c): it prints
    "READY ..." on stdout once it is up and answers each command with lines ending in
    "OK <command word>"; "quit" makes it close its loop and exit. `ready` holds the words
    after READY; stderr is collected in the background (`stderr`, a list of lines)."""

    def __init__(self, argv, env):
        self.p = subprocess.Popen(list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, env=env)
        line = self.p.stdout.readline().decode()
        assert line.startswith("READY "), "target did not start: %r %r" % (
            line, self.p.stderr.read().decode() if self.p.poll() is not None else "")
        self.ready = line.split()[1:]
        self.stderr = []
        self._t = threading.Thread(target=self._drain, daemon=True)
        self._t.start()

    def _drain(self):
        for line in self.p.stderr:
            self.stderr.append(line.decode(errors="replace"))

    def send(self, line):
        self.p.stdin.write((line + "\n").encode())
        self.p.stdin.flush()

    def cmd(self, line, timeout=60):
        """Sends a command; returns its output up to and including its "OK" line."""
        self.send(line)
        word = line.split()[0]
        end = time.monotonic() + timeout
        lines = []
        while time.monotonic() < end:
            out = self.p.stdout.readline().decode()
            if out == "":
                raise AssertionError("target died during %r: %s" % (line, "".join(self.stderr)))
            lines.append(out)
            if out.startswith("OK " + word):
                return "".join(lines)
        raise AssertionError("no answer to %r" % line)

    def quit(self, timeout=60):
        """Asks the program to exit; asserts it exited 0. Returns its whole stderr."""
        if self.p.poll() is None:
            self.send("quit")
            self.p.stdin.close()
            rest = threading.Thread(target=self.p.stdout.read, daemon=True)
            rest.start()
            try:
                self.p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
                raise AssertionError("target did not exit after quit: %s" % "".join(self.stderr))
            rest.join(timeout=10)
        self._t.join(timeout=10)
        assert self.p.returncode == 0, (self.p.returncode, "".join(self.stderr))
        return "".join(self.stderr)


def frame(obj):
    body = cbor2.dumps(obj)
    return struct.pack(">I", len(body)) + body


def main():
    """Command-line use (the test runs it as another user): connect, print what comes."""
    import sys
    path = sys.argv[1]
    try:
        c = Client(path, timeout=5)
    except OSError as e:
        print("CONNECT-ERROR", e.errno, os.strerror(e.errno))
        return 0
    try:
        while True:
            m = c.recv(5)
            print("MSG", m["t"], m.get("code", ""), m.get("fatal", ""), m.get("reason", ""))
    except Closed:
        print("CLOSED")
    except (TimeoutError, OSError) as e:
        print("ENDED", type(e).__name__)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
