#!/usr/bin/python3
"""py_peer.py: the Python peers of `make bench` (asyncio and uvloop), one workload per call,
printing one number on stdout. Times are thread CPU time (time.thread_time_ns), as ours are.

usage: /usr/bin/python3 bench/peers/py_peer.py --loop asyncio|uvloop WORKLOAD [-n N] [--debug]
  chain         ns per callback of an N-callback call_soon chain (each schedules the next)
  spawn         ns per task of N x (create_task, the task yields once, await it)
  pending       resident bytes per task of N tasks waiting on one asyncio.Event
  echo-server   prints its port, then echoes on 127.0.0.1 until killed"""
import argparse
import asyncio
import logging
import sys
import time


def rss_bytes():
    with open("/proc/self/statm") as f:
        import os
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def chain(loop, n):
    left = [n]
    done = loop.create_future()

    def cb():
        left[0] -= 1
        if left[0] > 0:
            loop.call_soon(cb)
        else:
            done.set_result(None)

    t0 = time.thread_time_ns()
    loop.call_soon(cb)
    loop.run_until_complete(done)
    return (time.thread_time_ns() - t0) / n


async def yield_once():
    await asyncio.sleep(0)


async def spawner(n):
    t0 = time.thread_time_ns()
    for _ in range(n):
        await asyncio.get_running_loop().create_task(yield_once())
    return (time.thread_time_ns() - t0) / n


async def pending(n):
    ev = asyncio.Event()
    before = rss_bytes()
    tasks = [asyncio.get_running_loop().create_task(ev.wait()) for _ in range(n)]
    await asyncio.sleep(0)  # every task runs to its wait
    await asyncio.sleep(0)
    after = rss_bytes()
    ev.set()
    await asyncio.gather(*tasks)
    return (after - before) / n


async def echo_server():
    async def conn(reader, writer):
        try:
            while True:
                data = await reader.read(4096)
                if not data:
                    break
                writer.write(data)
        finally:
            writer.close()

    srv = await asyncio.start_server(conn, "127.0.0.1", 0, backlog=256)
    print(srv.sockets[0].getsockname()[1], flush=True)
    await srv.serve_forever()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    ap.add_argument("--debug", action="store_true")
    ap.add_argument("-n", type=int, default=200000)
    ap.add_argument("workload", choices=["chain", "spawn", "pending", "echo-server"])
    a = ap.parse_args()
    if a.loop == "uvloop":
        try:
            import uvloop
        except ImportError:
            sys.exit("py_peer: uvloop is not installed for %s (use Debian's /usr/bin/python3 "
                     "with python3-uvloop)" % sys.executable)
        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    loop.set_debug(a.debug)
    logging.getLogger("asyncio").setLevel(logging.ERROR)  # no slow-callback lines here
    if a.workload == "chain":
        v = chain(loop, a.n)
    elif a.workload == "spawn":
        v = loop.run_until_complete(spawner(a.n))
    elif a.workload == "pending":
        v = loop.run_until_complete(pending(a.n))
    else:
        try:
            loop.run_until_complete(echo_server())
        except KeyboardInterrupt:
            pass
        return
    loop.close()
    print("%.3f" % v)


if __name__ == "__main__":
    main()
