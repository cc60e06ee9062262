"""test-tui-profile.py: a stall is profiled (issue 16) — asynctop under tmux attached to
tui_target while one callback spins in crunch_numbers ← parse_request ← on_command: the BLOCKED
view (Loop screen) shows the flame lines live, the slow callback's detail shows them after it
returned, and the share on screen is the one a second, independent client computes from the
process's own profile; `asynctop dump --json` carries the same profile."""
import json
import re
import threading

import pytest

import atclient
from tui_harness import Env, Tui, wait_until

FLAME = re.compile(r"(\d+)% crunch_numbers \u2190 parse_request \u2190 on_command")


@pytest.fixture
def env():
    e = Env()
    yield e
    e.close()


def test_blocked_view_and_slow_detail_show_the_profile(env):
    t = env.real_target()
    c = atclient.Client(t.path)
    c.hello()
    c.subscribe(100)
    tui = Tui(env, [t.pid], 130, 45)
    try:
        tui.wait(r"tui_target\[%d\]\s+live" % t.pid)
        tui.keys("6")
        tui.wait(r"Handles by type")
        # the stall: sent without waiting for its answer (the loop is busy for 3 s)
        done = threading.Thread(target=t.send, args=("spincb 3000",))
        done.start()
        s = tui.wait(r"BLOCKED in on_command: where the time goes", 10)
        s = tui.wait(r"\d+ samples, one every 5(?:\.0)?ms; heaviest first", 10)
        s = tui.wait(FLAME.pattern, 10)
        live = [l for l in s.split("\n") if FLAME.search(l)]
        assert live and int(FLAME.search(live[0]).group(1)) >= 50, s
        done.join(60)
        tui.wait_not(r"BLOCKED", 15)
        # the process's own profile of that callback, read by a second client
        slow = []
        wait_until("the slow event at the second client",
                   lambda: slow.extend(e for e in c.recv_type("update").get("slow", [])
                                       if e.get("name") == "on_command") or slow, 20)
        prof = slow[0]["profile"]
        sid, count = prof["stacks"][0]
        assert [f.split(".")[0] for f in c.stack_funcs(sid)][:3] == [
            "crunch_numbers", "parse_request", "on_command"], c.stack_funcs(sid)
        share = (count * 100 + prof["samples"] // 2) // prof["samples"]
        # asynctop dump --json carries the same profile
        r = env.run("dump", "--json", t.pid)
        assert r.returncode == 0, r.stderr
        ev = [e for e in json.loads(r.stdout)["slow_callbacks"] if e["callback"] == "on_command"]
        jp = ev[-1]["profile"]
        assert (jp["samples"], jp["interval_ns"]) == (prof["samples"], prof["interval_ns"]), jp
        assert jp["stacks"][0]["count"] == count, jp
        assert abs(jp["stacks"][0]["share"] - count / prof["samples"]) < 1e-5, jp  # 6 digits
        assert [f["func"].split(".")[0] for f in jp["stacks"][0]["frames"]][:3] == [
            "crunch_numbers", "parse_request", "on_command"], jp
        # the slow callback's detail
        tui.keys("4")
        tui.wait(r"BY CALL SITE")
        tui.keys("Enter")
        s = tui.wait(r"Where the time went", 10)
        s = tui.wait(r"%d samples, one every 5(?:\.0)?ms" % prof["samples"], 10)
        lines = [l for l in s.split("\n") if FLAME.search(l)]
        assert lines, s
        assert int(FLAME.search(lines[0]).group(1)) == share, (lines, prof)
        tui.keys("Escape")
    finally:
        c.close()
        tui.close()
