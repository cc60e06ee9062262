#!/usr/bin/python3
"""run_peers.py: `make bench` — runs asynctop-bench and, in the same run on the same machine,
the peers on the same workloads (Python asyncio and uvloop, Node.js, raw libuv in C), then
prints our figures, theirs, and the ratios. A missing peer is an error (exit 1), not a
skipped row.

usage: /usr/bin/python3 bench/peers/run_peers.py [BUILD_DIR] [--json-out FILE] [--quick]
  BUILD_DIR   meson build directory (default: build)
  --json-out  also write every figure (ours and the peers') as one JSON object to FILE
  --quick     fewer repetitions (a smoke test of the harness, not figures to publish)"""
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PY = "/usr/bin/python3"


def die(msg):
    sys.stderr.write("make bench: %s\n" % msg)
    sys.exit(1)


def note(msg):
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()


def run(cmd, **kw):
    """One number from a peer's stdout; a failure is fatal."""
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           timeout=300, **kw)
    except (OSError, subprocess.TimeoutExpired) as e:
        die("%s: %s" % (" ".join(cmd), e))
    if p.returncode != 0:
        die("%s failed (exit %d):\n%s" % (" ".join(cmd), p.returncode, p.stderr.strip()))
    try:
        return float(p.stdout.split()[-1])
    except (ValueError, IndexError):
        die("%s printed no number: %r" % (" ".join(cmd), p.stdout))


def median_of(cmd, reps):
    return statistics.median(run(cmd) for _ in range(reps))


def check_peers(build):
    need = {
        "asynctop-bench": os.path.join(build, "bench", "asynctop-bench"),
        "uv-peer (raw libuv)": os.path.join(build, "bench", "peers", "uv-peer"),
        "at-echo-server": os.path.join(build, "bench", "peers", "at-echo-server"),
    }
    for what, path in need.items():
        if not os.access(path, os.X_OK):
            die("%s is missing at %s: build first (meson compile -C %s)" % (what, path, build))
    if not os.access(PY, os.X_OK):
        die("Debian's %s is missing (apt-get install python3)" % PY)
    p = subprocess.run([PY, "-c", "import uvloop"], stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        die("uvloop is missing for %s (apt-get install python3-uvloop)" % PY)
    node = shutil.which("node")
    if not node:
        die("node is missing from PATH (apt-get install nodejs)")
    return need, node


def proc_cpu_ns(pid):
    """CPU time of every thread of a process, in ns (schedstat: on-CPU time)."""
    total = 0
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total


class Server:
    def __init__(self, name, cmd, env=None):
        self.name = name
        self.p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                  env=env)
        line = self.p.stdout.readline()
        if not line.strip().isdigit():
            self.p.kill()
            die("echo server %s (%s) did not print its port" % (name, " ".join(cmd)))
        self.port = int(line)

    def stop(self):
        self.p.terminate()
        try:
            self.p.wait(5)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()


def echo_round(uvpeer, srv, conns, reqs):
    """(requests per server CPU second, requests per wall second) of one client run."""
    c0 = proc_cpu_ns(srv.p.pid)
    wall = run([uvpeer, "echo-client", str(srv.port), str(conns), str(reqs)])
    c1 = proc_cpu_ns(srv.p.pid)
    n = conns * reqs
    return n / ((c1 - c0) / 1e9), n / wall


def main():
    args = sys.argv[1:]
    build, json_out, quick = "build", None, False
    while args:
        a = args.pop(0)
        if a == "--json-out" and args:
            json_out = args.pop(0)
        elif a == "--quick":
            quick = True
        elif a in ("-h", "--help"):
            print(__doc__)
            return
        elif a.startswith("-"):
            die("unknown option %s" % a)
        else:
            build = a
    need, node = check_peers(build)
    bench, uvpeer, atecho = need["asynctop-bench"], need["uv-peer (raw libuv)"], need["at-echo-server"]
    reps = 1 if quick else 3
    t_start = time.time()

    note("make bench: asynctop-bench (every benchmark of the project)...")
    p = subprocess.run([bench, "--json"] + (["--reps", "1"] if quick else []),
                       stdout=subprocess.PIPE, text=True)
    if p.returncode != 0:
        die("asynctop-bench failed (exit %d); see the messages above" % p.returncode)
    ours = json.loads(p.stdout)
    peers = {}

    note("make bench: call-soon chains (asyncio, uvloop, node, raw libuv)...")
    peers["asyncio_chain_ns"] = median_of([PY, HERE + "/py_peer.py", "chain", "-n", "200000"], reps)
    peers["asyncio_chain_debug_ns"] = median_of(
        [PY, HERE + "/py_peer.py", "chain", "--debug", "-n", "20000"], reps)
    peers["uvloop_chain_ns"] = median_of(
        [PY, HERE + "/py_peer.py", "--loop", "uvloop", "chain", "-n", "200000"], reps)
    peers["uvloop_chain_debug_ns"] = median_of(
        [PY, HERE + "/py_peer.py", "--loop", "uvloop", "chain", "--debug", "-n", "20000"], reps)
    peers["node_chain_ns"] = median_of([node, HERE + "/node_peer.js", "chain", "1000000"], reps)
    peers["libuv_chain_ns"] = median_of([uvpeer, "chain", "1000000"], reps)

    note("make bench: task spawn + yield + join (asyncio, uvloop, node)...")
    peers["asyncio_spawn_ns"] = median_of([PY, HERE + "/py_peer.py", "spawn", "-n", "100000"], reps)
    peers["uvloop_spawn_ns"] = median_of(
        [PY, HERE + "/py_peer.py", "--loop", "uvloop", "spawn", "-n", "100000"], reps)
    peers["node_spawn_ns"] = median_of([node, HERE + "/node_peer.js", "spawn", "1000000"], reps)

    note("make bench: memory per pending task, 100k (asyncio, uvloop, node)...")
    peers["asyncio_pending_bytes"] = run([PY, HERE + "/py_peer.py", "pending", "-n", "100000"])
    peers["uvloop_pending_bytes"] = run(
        [PY, HERE + "/py_peer.py", "--loop", "uvloop", "pending", "-n", "100000"])
    peers["node_pending_bytes"] = run([node, HERE + "/node_peer.js", "pending", "100000"])

    note("make bench: TCP echo, 100 connections (ours, raw libuv, uvloop, asyncio, node)...")
    tmp = tempfile.mkdtemp(prefix="at-bench-")
    env = dict(os.environ, ASYNCTOP_SOCKET=os.path.join(tmp, "echo.sock"))
    servers = [
        Server("asynctop", [atecho], env),
        Server("libuv", [uvpeer, "echo-server"]),
        Server("uvloop", [PY, HERE + "/py_peer.py", "--loop", "uvloop", "echo-server"]),
        Server("asyncio", [PY, HERE + "/py_peer.py", "echo-server"]),
        Server("node", [node, HERE + "/node_peer.js", "echo-server"]),
    ]
    conns, nreq = 100, (100 if quick else 400)
    cpu = {s.name: [] for s in servers}
    wall = {s.name: [] for s in servers}
    try:
        for s in servers:
            echo_round(uvpeer, s, conns, 20)  # warm-up: connections, JIT, allocator
        for _ in range(reps):
            for s in servers:  # interleaved: load from the neighbours hits every server alike
                c, w = echo_round(uvpeer, s, conns, nreq)
                cpu[s.name].append(c)
                wall[s.name].append(w)
    finally:
        for s in servers:
            s.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    for name in cpu:
        peers["%s_echo_rps_cpu" % name] = statistics.median(cpu[name])
        peers["%s_echo_rps_wall" % name] = statistics.median(wall[name])

    report(ours, peers)
    note("make bench: done in %.0f s" % (time.time() - t_start))
    if json_out:
        with open(json_out, "w") as f:
            json.dump({"ours": ours, "peers": peers}, f, indent=1, sort_keys=True)


def fmt(v):
    if v is None:
        return "-"
    if v >= 100000:
        return "%.3g" % v
    if v >= 100:
        return "%.0f" % v
    if v >= 10:
        return "%.1f" % v
    return "%.2f" % v


def report(o, p):
    def g(k):
        if k not in o:
            die("asynctop-bench gave no %s (is that benchmark built?)" % k)
        return o[k]

    cols = ["asynctop", "raw libuv", "uvloop", "asyncio", "node"]
    # (workload, unit, lower is better, {column: value})
    rows = [
        ("call-soon chain, 1M", "ns/callback", True,
         {"asynctop": g("call_soon_chain_ns"), "raw libuv": p["libuv_chain_ns"],
          "uvloop": p["uvloop_chain_ns"], "asyncio": p["asyncio_chain_ns"],
          "node": p["node_chain_ns"]}),
        ("call-soon chain, debug mode on", "ns/callback", True,
         {"asynctop": g("call_soon_chain_debug_ns"), "uvloop": p["uvloop_chain_debug_ns"],
          "asyncio": p["asyncio_chain_debug_ns"]}),
        ("task spawn + 1 yield + join", "ns/task", True,
         {"asynctop": g("task_spawn_yield_join_ns"), "uvloop": p["uvloop_spawn_ns"],
          "asyncio": p["asyncio_spawn_ns"], "node": p["node_spawn_ns"]}),
        ("memory per pending task (100k)", "bytes/task", True,
         {"asynctop": g("task_pending_rss_bytes"), "uvloop": p["uvloop_pending_bytes"],
          "asyncio": p["asyncio_pending_bytes"], "node": p["node_pending_bytes"]}),
        ("TCP echo, 100 conns", "req/cpu-s", False,
         {c: p["%s_echo_rps_cpu" % k] for c, k in
          zip(cols, ["asynctop", "libuv", "uvloop", "asyncio", "node"])}),
        ("TCP echo, 100 conns (wall)", "req/s", False,
         {c: p["%s_echo_rps_wall" % k] for c, k in
          zip(cols, ["asynctop", "libuv", "uvloop", "asyncio", "node"])}),
    ]
    w0 = 32
    print()
    print("asynctop against its peers (same run, same machine; medians)")
    print("%-*s %-12s" % (w0, "workload", "unit") + "".join("%11s" % c for c in cols))
    for name, unit, _, vals in rows:
        print("%-*s %-12s" % (w0, name, unit) + "".join("%11s" % fmt(vals.get(c)) for c in cols))
    print()
    print("ratios: how many times better asynctop is (peer/ours for time and memory,")
    print("ours/peer for throughput); below 1 means the peer wins")
    print("%-*s %-12s" % (w0, "workload", "") + "".join("%11s" % c for c in cols[1:]))
    for name, unit, lower, vals in rows:
        ours = vals["asynctop"]
        cells = []
        for c in cols[1:]:
            v = vals.get(c)
            if v is None or not ours or not v:
                cells.append("%11s" % "-")
            else:
                cells.append("%10.2fx" % (v / ours if lower else ours / v))
        print("%-*s %-12s" % (w0, name, "") + "".join(cells))

    print()
    print("instrumentation cost (our 8M call-soon chain, ratios to exporter off; loop-thread CPU)")
    print("  exporter off                         %8.2f ns/callback" % g("instr_chain_export_off_ns"))
    print("  exporter on                          %8.2fx" % g("instr_export_on_ratio"))
    print("  exporter on + debug mode             %8.2fx" % g("instr_export_debug_ratio"))
    print("  exporter on + debug + client         %8.2fx" % g("instr_export_debug_client_ratio"))
    print("  timing itself (timed - untimed)      %8.2f ns/callback" % g("call_soon_instrumentation_ns"))
    print("  debug mode on / off (1M chain)       %8.2fx   uvloop %.1fx   asyncio %.1fx" % (
        g("call_soon_chain_debug_ratio"), p["uvloop_chain_debug_ns"] / p["uvloop_chain_ns"],
        p["asyncio_chain_debug_ns"] / p["asyncio_chain_ns"]))
    print()
    print("ours only (baselines in the same run)")
    print("  context switch                       %8.2f ns   (swapcontext %.1f ns)" % (
        g("context_switch_ns"), g("context_switch_swapcontext_ns")))
    print("  wire: encode 100k-task update        %8.2f ms" % g("wire_encode_update_100k_ms"))
    print("  wire: decode 100k-task update        %8.2f ms   (libcbor cbor_load %.1f ms)" % (
        g("wire_decode_update_100k_ms"), g("wire_cbor_load_update_100k_ms")))
    print("  inspector: redraw with 100k tasks    %8.2f ms" % g("inspector_redraw_100k_ms"))
    print()
    print("issue 3 targets")
    chk = [
        ("asyncio chain / ours >= 20", p["asyncio_chain_ns"] / g("call_soon_chain_ns"), 20, True),
        ("raw libuv idle chain / ours >= 1", p["libuv_chain_ns"] / g("call_soon_chain_ns"), 1, True),
        ("instrumentation <= 10 ns/callback", g("call_soon_instrumentation_ns"), 10, False),
        ("debug on / off <= 1.25", g("call_soon_chain_debug_ratio"), 1.25, False),
    ]
    for what, v, lim, ge in chk:
        ok = v >= lim if ge else v <= lim
        print("  %-36s %8.2f  %s" % (what, v, "met" if ok else "NOT met"))


if __name__ == "__main__":
    main()
