#!/usr/bin/python3
"""call_soon_chain.py: the Python peer of bench_loop.c's call_soon_chain_ns — a
chain of N loop.call_soon callbacks, each scheduling the next, on asyncio or
uvloop, debug mode off or on. Prints the median ns per callback of --reps runs.

usage: /usr/bin/python3 bench/peers/call_soon_chain.py [--loop asyncio|uvloop]
           [--debug] [-n N] [--reps R] [--json]"""
import argparse
import asyncio
import json
import logging
import statistics
import sys
import time


def one_run(make_loop, n, debug):
    loop = make_loop()
    loop.set_debug(debug)
    # debug mode logs every callback slower than 100 ms: none here, keep it quiet anyway
    logging.getLogger("asyncio").setLevel(logging.ERROR)
    left = [n]
    done = loop.create_future()

    def cb():
        left[0] -= 1
        if left[0] > 0:
            loop.call_soon(cb)
        else:
            done.set_result(None)

    t0 = time.perf_counter_ns()
    loop.call_soon(cb)
    loop.run_until_complete(done)
    t1 = time.perf_counter_ns()
    loop.close()
    return (t1 - t0) / n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    ap.add_argument("--debug", action="store_true")
    ap.add_argument("-n", type=int, default=200000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if a.loop == "uvloop":
        try:
            import uvloop
        except ImportError:
            sys.exit("uvloop is not installed for %s (use Debian's /usr/bin/python3)" % sys.executable)
        make_loop = uvloop.new_event_loop
    else:
        make_loop = asyncio.new_event_loop
    med = statistics.median(one_run(make_loop, a.n, a.debug) for _ in range(a.reps))
    key = "%s_call_soon_chain%s_ns" % (a.loop, "_debug" if a.debug else "")
    if a.json:
        print(json.dumps({key: med}))
    else:
        print("%-36s %10.1f ns/callback (median of %d x %d)" % (key, med, a.reps, a.n))


if __name__ == "__main__":
    main()
