#!/bin/sh
# run-loop-peers.sh: runs the core loop benchmarks and their Python peers in one session and
# prints same-run ratios (issue 3's speed targets). usage: bench/peers/run-loop-peers.sh [BUILD]
set -eu
build=${1:-build}
here=$(dirname "$0")
py=/usr/bin/python3
ours=$("$build/bench/asynctop-bench" --json --reps 5 call_soon_chain_ns call_soon_chain_debug_ns libuv_idle_chain_ns call_soon_chain_debug_ratio)
a=$($py "$here/call_soon_chain.py" --json --loop asyncio -n 200000)
ad=$($py "$here/call_soon_chain.py" --json --loop asyncio --debug -n 20000)
u=$($py "$here/call_soon_chain.py" --json --loop uvloop -n 200000)
ud=$($py "$here/call_soon_chain.py" --json --loop uvloop --debug -n 20000)
$py - "$ours" "$a" "$ad" "$u" "$ud" <<'PY'
import json, sys
d = {}
for s in sys.argv[1:]:
    d.update(json.loads(s))
for k in sorted(d):
    print("%-36s %10.2f" % (k, d[k]))
ours = d["call_soon_chain_ns"]
print()
print("asyncio / asynctop (target >= 20)        %8.1fx" % (d["asyncio_call_soon_chain_ns"] / ours))
print("uvloop / asynctop                        %8.1fx" % (d["uvloop_call_soon_chain_ns"] / ours))
print("libuv idle / asynctop (target >= 1)      %8.2fx" % (d["libuv_idle_chain_ns"] / ours))
print("asynctop debug on / off (target <= 1.25) %8.2fx  (back-to-back pairs: %.2fx)"
      % (d["call_soon_chain_debug_ns"] / ours, d["call_soon_chain_debug_ratio"]))
print("asyncio debug on / off                   %8.1fx"
      % (d["asyncio_call_soon_chain_debug_ns"] / d["asyncio_call_soon_chain_ns"]))
print("uvloop debug on / off                    %8.1fx"
      % (d["uvloop_call_soon_chain_debug_ns"] / d["uvloop_call_soon_chain_ns"]))
PY
