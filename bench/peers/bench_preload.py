#!/usr/bin/python3
"""bench_preload.py: the overhead of libasynctop-preload.so on real uvloop programs (issue 9's
speed target: at most 5%), measured against the same program without the shim in the same run.

Two workloads, each run in child processes alternately with and without LD_PRELOAD (pairs, so
both sides see the same machine load), reporting medians and the median of per-pair ratios:
  call_soon  a chain of N loop.call_soon callbacks, one per loop iteration (ns of CPU and of wall
             time per callback)
  echo       a uvloop echo server (asyncio.Protocol) answering K pipelined clients; the metric is
             the server's CPU time per echoed message (all its threads, /proc schedstat), and the clients'
             wall time per message

usage: /usr/bin/python3 bench/peers/bench_preload.py [--shim build/runtime/libasynctop-preload.so]
           [--shim2 OTHER.so] [--no-floor] [--no-export] [--only call_soon|echo] [--pairs 7]
           [-n 200000] [--msgs 20000] [--clients 8] [--json]
Arms: base (no preload), thread (a preloaded library that only starts one sleeping thread: the
floor of any in-process exporter thread), preload (the shim), noexport (--no-export: the shim
with ASYNCTOP_SOCKET=off, i.e. its instrumentation without the exporter thread), preload2
(--shim2), run in rotating order each round.
The shim's exporter runs as it would in production (a socket in a private directory, no client).
"""
import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

PY = "/usr/bin/python3"

CHAIN = r"""
import sys, time, uvloop
n = int(sys.argv[1])
loop = uvloop.new_event_loop()
def chain(k):
    # one chain: exactly one ready handle, hence one libuv idle callback, per loop iteration
    left = [k]
    done = loop.create_future()
    def cb():
        left[0] -= 1
        if left[0] > 0:
            loop.call_soon(cb)
        else:
            done.set_result(None)
    return cb, done
cb, done = chain(2000)  # warm up (and let the shim's clock calibrate)
loop.call_soon(cb)
loop.run_until_complete(done)
cb, done = chain(n)
w0, c0 = time.perf_counter_ns(), time.process_time_ns()
loop.call_soon(cb)
loop.run_until_complete(done)
w1, c1 = time.perf_counter_ns(), time.process_time_ns()
loop.close()
print((c1 - c0) / n, (w1 - w0) / n)
"""

# The floor: a preloaded library that only starts one sleeping thread, as the shim's exporter
# does (glibc and the kernel leave their single-thread fast paths for good).
THREAD_ONLY_C = r"""
#include <pthread.h>
#include <unistd.h>
static void *sleeper(void *a) { (void)a; for (;;) pause(); return 0; }
__attribute__((constructor)) static void start(void)
{
    pthread_t t;
    if (pthread_create(&t, 0, sleeper, 0) == 0)
        pthread_detach(t);
}
"""

SERVER = r"""
import asyncio, sys, uvloop
class Echo(asyncio.Protocol):
    def connection_made(self, t):
        self.t = t
    def data_received(self, d):
        self.t.write(d)
async def main():
    loop = asyncio.get_running_loop()
    srv = await loop.create_server(Echo, "127.0.0.1", 0)
    print(srv.sockets[0].getsockname()[1], flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)
uvloop.install()
asyncio.run(main())
"""


def cpu_ns(pid):
    """CPU time of every thread of pid, in ns (schedstat: exact, unlike the tick counts)."""
    total = 0
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
                total += int(f.read().split()[0])
        except OSError:
            pass
    return float(total)


def env_for(shim, tmp):
    """shim: None, a library path, or "off:PATH" (the shim with ASYNCTOP_SOCKET=off: no exporter
    thread, the instrumentation alone)."""
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    if shim and shim.startswith("off:"):
        env["LD_PRELOAD"] = shim[4:]
        env["ASYNCTOP_SOCKET"] = "off"
    elif shim:
        env["LD_PRELOAD"] = shim
        env["ASYNCTOP_SOCKET"] = os.path.join(tmp, "s%d" % time.monotonic_ns())
    return env


def build_thread_only(tmp):
    """The thread-only library, or None when there is no C compiler."""
    src, so = os.path.join(tmp, "thread_only.c"), os.path.join(tmp, "thread_only.so")
    with open(src, "w") as f:
        f.write(THREAD_ONLY_C)
    cc = os.environ.get("CC", "cc")
    try:
        subprocess.run([cc, "-O2", "-shared", "-fPIC", "-o", so, src, "-lpthread"], check=True,
                       capture_output=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return so


def run_chain(shim, tmp, n):
    out = subprocess.run([PY, "-c", CHAIN, str(n)], env=env_for(shim, tmp), check=True,
                         capture_output=True, text=True).stdout.split()
    return float(out[0]), float(out[1])


def run_echo(shim, tmp, clients, msgs):
    p = subprocess.Popen([PY, "-c", SERVER], env=env_for(shim, tmp), stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
    try:
        port = int(p.stdout.readline())
        socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(clients)]
        payload = b"x" * 64
        for s in socks:  # warm up
            s.sendall(payload)
            s.recv(4096)
        c0, w0 = cpu_ns(p.pid), time.perf_counter_ns()
        for _ in range(msgs // clients):
            for s in socks:
                s.sendall(payload)
            for s in socks:
                got = 0
                while got < len(payload):
                    got += len(s.recv(4096))
        c1, w1 = cpu_ns(p.pid), time.perf_counter_ns()
        for s in socks:
            s.close()
        total = (msgs // clients) * clients
        return (c1 - c0) / total, (w1 - w0) / total
    finally:
        p.stdin.write("\n")
        p.stdin.close()
        p.wait(timeout=30)


def measure(name, fn, arms, pairs):
    """Run fn(preload) for every arm (label, preload or None; the first is the baseline) once
    per round, in an order that rotates, for `pairs` rounds; medians and the median of the
    per-round ratios to the baseline."""
    runs = {label: [] for label, _ in arms}
    for i in range(pairs):
        order = arms[i % len(arms):] + arms[:i % len(arms)]
        if i % 2:
            order = order[::-1]
        for label, pre in order:
            runs[label].append(fn(pre))
    base = arms[0][0]
    res = {}
    for label, _ in arms:
        sfx = "" if label == base else "_" + label
        for j, unit in enumerate(("cpu", "wall")):
            res["%s_%s%s_ns" % (name, unit, sfx)] = statistics.median(x[j] for x in runs[label])
            if label != base:
                res["%s_%s%s_ratio" % (name, unit, sfx)] = statistics.median(
                    y[j] / x[j] for x, y in zip(runs[base], runs[label]))
    return res


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--shim", default=os.path.join(here, "..", "..", "build", "runtime",
                                                   "libasynctop-preload.so"))
    ap.add_argument("--pairs", type=int, default=7)
    ap.add_argument("-n", type=int, default=200000, help="call_soon chain length")
    ap.add_argument("--msgs", type=int, default=20000, help="echo messages per run")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--no-floor", action="store_true",
                    help="skip the thread-only arm (a preloaded library that starts one thread)")
    ap.add_argument("--shim2", help="a second shim build to compare in the same run (e.g. main's)")
    ap.add_argument("--no-export", action="store_true",
                    help="add an arm: the shim with ASYNCTOP_SOCKET=off (no exporter thread)")
    ap.add_argument("--only", choices=("call_soon", "echo"), help="run one workload only")
    a = ap.parse_args()
    shim = os.path.abspath(a.shim)
    if not os.path.exists(shim):
        sys.exit("no shim at %s (meson compile -C build)" % shim)
    with tempfile.TemporaryDirectory(prefix="at-bench-preload-") as tmp:
        arms = [("base", None)]
        thr = None if a.no_floor else build_thread_only(tmp)
        if thr:
            arms.append(("thread", thr))
        arms.append(("preload", shim))
        if a.no_export:
            arms.append(("noexport", "off:" + shim))
        if a.shim2:
            arms.append(("preload2", os.path.abspath(a.shim2)))
        res = {}
        if a.only != "echo":
            res.update(measure("uvloop_call_soon", lambda pre: run_chain(pre, tmp, a.n), arms,
                               a.pairs))
        if a.only != "call_soon":
            res.update(measure("uvloop_echo", lambda pre: run_echo(pre, tmp, a.clients, a.msgs),
                               arms, a.pairs))
    if a.json:
        print(json.dumps(res))
        return
    for k in sorted(res):
        print("%-40s %10.3f" % (k, res[k]))
    print()
    for name in ("uvloop_call_soon", "uvloop_echo"):
        for label, what in (("thread", "a sleeping thread only (floor)"), ("preload", "the shim"),
                            ("noexport", "the shim, no exporter thread"),
                            ("preload2", "the second shim")):
            if name + "_cpu_" + label + "_ratio" not in res:
                continue
            print("%-17s %-31s (median of %d round ratios): cpu %+.1f%%  wall %+.1f%%"
                  % (name, what, a.pairs, (res[name + "_cpu_" + label + "_ratio"] - 1) * 100,
                     (res[name + "_wall_" + label + "_ratio"] - 1) * 100))
    print("(target for the shim: <= +5%)")


if __name__ == "__main__":
    main()
